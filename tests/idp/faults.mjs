// Injected faults: armed through the /__test/ API, consumed by the Koa
// middleware below, which every Provider instance runs before its routes.

import * as crypto from 'node:crypto';

import { ROUTES } from './config.mjs';
import { currentKey } from './keys.mjs';

export const TAMPER_KINDS = new Set(['nonce', 'aud', 'iss', 'sub', 'exp', 'signature']);

function noFaults() {
  return {
    tokenError: 0, // next N token requests: HTTP 500, unprocessed
    tokenDelay: { times: 0, ms: 0 }, // next N token requests: held ms before processing
    tamper: null, // next ID token from the token endpoint: one of TAMPER_KINDS
    userinfoError: 0, // next N userinfo requests: HTTP 503
    jwksError: 0, // next N JWKS requests: HTTP 503
  };
}

export let faults = noFaults();

export function resetFaults() {
  faults = noFaults();
}

// Requests received per endpoint (test-only), so that tests can bound the
// provider calls a relying party makes.
export const received = { par: 0, token: 0 };

export function resetReceived() {
  received.par = 0;
  received.token = 0;
}

const b64json = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
const unb64json = (part) => JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));

// Change one thing in a compact JWS ID token and re-sign it with the real
// current signing key; "signature" corrupts the signature bytes instead.
export function tamperIdToken(jwt, what, issuer) {
  const [encodedHeader, encodedPayload, encodedSignature] = jwt.split('.');
  if (what === 'signature') {
    const signature = Buffer.from(encodedSignature, 'base64url');
    signature[0] ^= 0xff;
    signature[signature.length - 1] ^= 0xff;
    return `${encodedHeader}.${encodedPayload}.${signature.toString('base64url')}`;
  }
  const payload = unb64json(encodedPayload);
  switch (what) {
    case 'nonce': payload.nonce = `${payload.nonce ?? ''}-tampered`; break;
    case 'aud': payload.aud = 'another-audience'; break;
    case 'iss': payload.iss = `${issuer}/another-issuer`; break;
    case 'sub': payload.sub = `${payload.sub}-another-subject`; break;
    case 'exp': payload.exp = Math.floor(Date.now() / 1000) - 600; break;
    default: throw new Error(`unknown tamper kind ${what}`);
  }
  const key = currentKey();
  const header = { ...unb64json(encodedHeader), alg: 'RS256', kid: key.kid };
  const input = `${b64json(header)}.${b64json(payload)}`;
  const signature = crypto.sign('sha256', Buffer.from(input), key.keyObject);
  return `${input}.${signature.toString('base64url')}`;
}

function failWith(ctx, status, error, description) {
  ctx.status = status;
  ctx.type = 'application/json';
  ctx.body = { error, error_description: `injected fault: ${description}` };
}

export async function faultMiddleware(ctx, next) {
  if (ctx.method === 'POST' && ctx.path === ROUTES.pushed_authorization_request) received.par += 1;
  if (ctx.method === 'POST' && ctx.path === ROUTES.token) received.token += 1;
  if (ctx.path === ROUTES.token && ctx.method === 'POST') {
    if (faults.tokenError > 0) {
      faults.tokenError -= 1;
      failWith(ctx, 500, 'server_error', 'token endpoint failure');
      return;
    }
    if (faults.tokenDelay.times > 0) {
      faults.tokenDelay.times -= 1;
      const { ms } = faults.tokenDelay;
      await new Promise((resolve) => { setTimeout(resolve, ms); });
    }
    await next();
    const what = faults.tamper;
    if (what && ctx.status === 200 && typeof ctx.body?.id_token === 'string') {
      faults.tamper = null;
      ctx.body = { ...ctx.body, id_token: tamperIdToken(ctx.body.id_token, what, ctx.oidc.issuer) };
    }
    return;
  }
  if (ctx.path === ROUTES.userinfo && faults.userinfoError > 0) {
    faults.userinfoError -= 1;
    failWith(ctx, 503, 'temporarily_unavailable', 'userinfo endpoint unavailable');
    return;
  }
  if (ctx.path === ROUTES.jwks && faults.jwksError > 0) {
    faults.jwksError -= 1;
    failWith(ctx, 503, 'temporarily_unavailable', 'jwks endpoint unavailable');
    return;
  }
  await next();
}

// The built-in pages @import a web font; drop it so they render offline.
export async function stripRemoteImports(ctx, next) {
  await next();
  if (typeof ctx.body === 'string' && ctx.response.is('html')) {
    ctx.body = ctx.body.replace(/@import\s+url\([^)]*\)\s*;?/g, '');
  }
}
