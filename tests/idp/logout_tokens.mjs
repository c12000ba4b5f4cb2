// TEST-ONLY: logout tokens (OpenID Connect Back-Channel Logout 1.0 §2.4) made
// on request through the /__test/ API, signed with the provider's real current
// key, or carrying one defect a relying party must refuse (§2.6). The provider
// sends its own, genuine logout tokens when a session ends; these exist only so
// that tests can POST defective ones to the app under test.

import * as crypto from 'node:crypto';

import { currentKey } from './keys.mjs';

const EVENT = 'http://schemas.openid.net/event/backchannel-logout';

export const LOGOUT_TOKEN_DEFECTS = new Set([
  'alg_none', // header alg "none", empty signature
  'wrong_alg', // HS256 keyed with the client secret
  'wrong_aud', // aud is another client
  'wrong_issuer', // iss is another issuer
  'no_event', // no events claim
  'wrong_event', // events without the back-channel logout member
  'with_nonce', // a nonce claim (as an ID token has)
  'no_sid_sub', // neither sid nor sub
  'no_jti',
  'no_iat',
  'wrong_typ', // typ "JWT" (an ID token's type)
  'bad_signature', // a signature byte flipped
]);

const b64json = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');

function text(value, name, { required = false } = {}) {
  if (value === undefined || value === null) {
    if (required) throw new RangeError(`${name} is required`);
    return undefined;
  }
  if (typeof value !== 'string' || !value) throw new RangeError(`${name} must be a non-empty string`);
  return value;
}

// Build one logout token for `client_id` about `sub` and/or `sid`.
export function makeLogoutToken(issuer, body) {
  const clientId = text(body.client_id, 'client_id', { required: true });
  const sub = text(body.sub, 'sub');
  const sid = text(body.sid, 'sid');
  const jti = text(body.jti, 'jti') ?? crypto.randomUUID();
  const { defect } = body;
  if (defect !== undefined && !LOGOUT_TOKEN_DEFECTS.has(defect)) {
    throw new RangeError(`defect must be one of ${[...LOGOUT_TOKEN_DEFECTS].join(', ')}`);
  }
  const now = Math.floor(Date.now() / 1000);
  const payload = {
    iss: issuer, aud: clientId, iat: now, exp: now + 120, jti, events: { [EVENT]: {} },
  };
  if (sub) payload.sub = sub;
  if (sid) payload.sid = sid;
  const key = currentKey();
  const header = { alg: 'RS256', typ: 'logout+jwt', kid: key.kid };
  switch (defect) {
    case 'wrong_aud': payload.aud = `${clientId}-another`; break;
    case 'wrong_issuer': payload.iss = `${issuer}/another-issuer`; break;
    case 'no_event': delete payload.events; break;
    case 'wrong_event': payload.events = { 'http://schemas.openid.net/event/another': {} }; break;
    case 'with_nonce': payload.nonce = crypto.randomBytes(8).toString('hex'); break;
    case 'no_sid_sub': delete payload.sub; delete payload.sid; break;
    case 'no_jti': delete payload.jti; break;
    case 'no_iat': delete payload.iat; break;
    case 'wrong_typ': header.typ = 'JWT'; break;
    default: break;
  }
  if (defect === 'alg_none') {
    return `${b64json({ alg: 'none', typ: 'logout+jwt' })}.${b64json(payload)}.`;
  }
  if (defect === 'wrong_alg') {
    const secret = text(body.client_secret, 'client_secret', { required: true });
    const input = `${b64json({ alg: 'HS256', typ: 'logout+jwt' })}.${b64json(payload)}`;
    const mac = crypto.createHmac('sha256', secret).update(input).digest('base64url');
    return `${input}.${mac}`;
  }
  const input = `${b64json(header)}.${b64json(payload)}`;
  const signature = crypto.sign('sha256', Buffer.from(input), key.keyObject);
  if (defect === 'bad_signature') signature[0] ^= 0xff;
  return `${input}.${signature.toString('base64url')}`;
}
