// POST at the end-session endpoint, as RP-Initiated Logout 1.0 §2 asks of
// every OP ("MUST support the use of the HTTP GET and POST methods").
//
// oidc-provider 9 serves that POST only with `enableHttpPostMethods`, which it
// allows only when its session cookie is `SameSite=None` (a cross-site POST
// carries no Lax cookie), and browsers keep such a cookie only when it is
// `Secure`, which this plain-HTTP loopback provider cannot set.  So the test
// provider reads a form POST to the endpoint and hands its fields to the GET
// handler: the browser sends the POST a relying party sends a conforming OP,
// and nothing of it appears in the browser's URL or history.

import { ROUTES } from './config.mjs';

const MAX_BODY = 64 * 1024;

export async function endSessionPost(ctx, next) {
  if (ctx.method === 'POST' && ctx.path === ROUTES.end_session
      && ctx.is('application/x-www-form-urlencoded')) {
    const chunks = [];
    let size = 0;
    for await (const chunk of ctx.req) {
      size += chunk.length;
      if (size > MAX_BODY) ctx.throw(413, 'request body too large');
      chunks.push(chunk);
    }
    ctx.method = 'GET';
    ctx.querystring = Buffer.concat(chunks).toString('utf8');
  }
  await next();
}
