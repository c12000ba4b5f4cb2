// Signing keys. The first key signs; every key in the list is published in
// the JWKS. Rotation puts a new key first and keeps or drops the others.

import * as crypto from 'node:crypto';

let counter = 0;

function newSigningKey() {
  counter += 1;
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const kid = `rsa-${counter}-${crypto.randomBytes(4).toString('hex')}`;
  const jwk = { ...privateKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' };
  return { kid, keyObject: privateKey, jwk };
}

let keys = [newSigningKey()];

// The key that signs new tokens: { kid, keyObject, jwk }.
export function currentKey() {
  return keys[0];
}

// Private JWKs for the Provider's `jwks` configuration (signing key first).
export function providerJwks() {
  return { keys: keys.map((key) => key.jwk) };
}

export function kids() {
  return keys.map((key) => key.kid);
}

// Make a new key the signing key; the old ones stay published unless retired.
export function rotate(retireOld) {
  const key = newSigningKey();
  keys = retireOld ? [key] : [key, ...keys];
  return key.kid;
}
