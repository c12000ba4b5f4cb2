// oidc-provider configuration: accounts, pre-registered clients, features.

import * as crypto from 'node:crypto';

import { errors } from 'oidc-provider';

import { providerJwks } from './keys.mjs';
import { SharedAdapter } from './storage.mjs';

function positiveIntFromEnv(name, fallback) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new Error(`${name} must be a positive integer, got ${JSON.stringify(raw)}`);
  }
  return value;
}

const ACCESS_TOKEN_TTL = positiveIntFromEnv('IDP_ACCESS_TOKEN_TTL', 3600);
const ID_TOKEN_TTL = positiveIntFromEnv('IDP_ID_TOKEN_TTL', 3600);
const DAY = 24 * 60 * 60;

export const ROUTES = {
  authorization: '/auth',
  end_session: '/session/end',
  introspection: '/token/introspection',
  jwks: '/jwks',
  pushed_authorization_request: '/request',
  registration: '/reg',
  revocation: '/token/revocation',
  token: '/token',
  userinfo: '/me',
};

// Cookie signing keys must outlive a Provider swap, or sessions would be lost.
const COOKIE_KEYS = [crypto.randomBytes(32).toString('base64url')];

// ---------------------------------------------------------------------------
// Accounts: whatever login name is typed on the dev login page becomes `sub`.

const GROUPS = { alice: ['admins', 'analysts'], bob: ['analysts'] };

function findAccount(_ctx, sub) {
  return {
    accountId: sub,
    async claims() {
      return {
        sub,
        name: sub.charAt(0).toUpperCase() + sub.slice(1),
        email: `${sub}@example.com`,
        email_verified: true,
        groups: GROUPS[sub] ?? [],
      };
    },
  };
}

// ---------------------------------------------------------------------------
// Clients.

const CLIENT_BASE = {
  redirect_uris: ['http://127.0.0.1:9/cb'],
  post_logout_redirect_uris: ['http://127.0.0.1:9/logged-out'],
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
  response_modes: ['query', 'form_post'],
};

const STATIC_CLIENTS = [
  {
    ...CLIENT_BASE,
    client_id: 'conf-basic',
    client_secret: 'conf-basic-secret',
    token_endpoint_auth_method: 'client_secret_basic',
  },
  {
    ...CLIENT_BASE,
    client_id: 'conf-post',
    client_secret: 'conf-post-secret',
    token_endpoint_auth_method: 'client_secret_post',
  },
  { ...CLIENT_BASE, client_id: 'public', token_endpoint_auth_method: 'none' },
  {
    ...CLIENT_BASE,
    client_id: 'par-required',
    client_secret: 'par-required-secret',
    token_endpoint_auth_method: 'client_secret_basic',
    require_pushed_authorization_requests: true,
  },
];

// Extra client metadata: `access_token_ttl` (seconds) overrides the global
// access-token lifetime for one client.
function validateClientMetadata(_ctx, key, value) {
  if (key === 'access_token_ttl' && value !== undefined
      && !(Number.isSafeInteger(value) && value > 0)) {
    throw new errors.InvalidClientMetadata('access_token_ttl must be a positive integer');
  }
}

// Consent is automatic: the session's grant for the client (or a new one) is
// extended with whatever OIDC scopes and claims the request asks for, so the
// consent prompt never finds anything missing and never shows.
async function loadExistingGrant(ctx) {
  const { oidc } = ctx;
  const { clientId } = oidc.client;
  const { accountId } = oidc.session;
  const grantId = oidc.result?.consent?.grantId || oidc.session.grantIdFor(clientId);
  let grant = grantId ? await oidc.provider.Grant.find(grantId) : undefined;
  if (!grant || grant.accountId !== accountId || grant.clientId !== clientId) {
    grant = new oidc.provider.Grant({ accountId, clientId });
  }
  const scopes = [...oidc.requestParamOIDCScopes];
  if (scopes.length) grant.addOIDCScope(scopes.join(' '));
  const claims = [...oidc.requestParamClaims];
  if (claims.length) grant.addOIDCClaims(claims);
  await grant.save();
  return grant;
}

// A fresh configuration object for each Provider instance (oidc-provider
// takes ownership of what it is given), with the current signing keys.
export function configuration() {
  return {
    adapter: SharedAdapter,
    clients: STATIC_CLIENTS.map((client) => ({ ...client })),
    jwks: providerJwks(),
    cookies: { keys: COOKIE_KEYS },
    routes: ROUTES,
    findAccount,
    loadExistingGrant,
    scopes: ['openid', 'profile', 'email', 'offline_access', 'groups'],
    claims: {
      acr: null,
      auth_time: null,
      iss: null,
      sid: null,
      openid: ['sub'],
      profile: ['name'],
      email: ['email', 'email_verified'],
      groups: ['groups'],
    },
    // Put the scope claims in the ID token too, not only in userinfo.
    conformIdTokenClaims: false,
    responseTypes: ['code'],
    // PKCE (S256 only) required for public clients; for confidential clients
    // it is optional, and verified when a challenge was sent.
    pkce: { required: (_ctx, client) => client.clientAuthMethod === 'none' },
    // Refresh tokens for every code grant (not only with offline_access),
    // rotated on every use.
    issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
    rotateRefreshToken: true,
    extraClientMetadata: { properties: ['access_token_ttl'], validator: validateClientMetadata },
    clientBasedCORS: () => false,
    // The relying parties under test listen on loopback, which oidc-provider's
    // SSRF protection refuses for its outgoing requests (logout tokens); this
    // provider is for tests on one machine only, so its fetches may reach them.
    fetch: (url, { dispatcher: _ssrfGuard, ...options }) => globalThis.fetch(url, options),
    ttl: {
      AccessToken: (_ctx, _token, client) => client?.access_token_ttl ?? ACCESS_TOKEN_TTL,
      AuthorizationCode: 60,
      IdToken: ID_TOKEN_TTL,
      RefreshToken: 14 * DAY,
      Interaction: 60 * 60,
      Session: 14 * DAY,
      Grant: 14 * DAY,
    },
    features: {
      devInteractions: { enabled: true },
      pushedAuthorizationRequests: { enabled: true },
      claimsParameter: { enabled: true },
      revocation: { enabled: true },
      introspection: {
        enabled: true,
        // A client may introspect its own tokens only.
        allowedPolicy: async (_ctx, client, token) => token.clientId === client.clientId,
      },
      userinfo: { enabled: true },
      rpInitiatedLogout: { enabled: true },
      // OpenID Connect Back-Channel Logout 1.0: when a session ends at the
      // end-session endpoint, a logout token is POSTed to every client of the
      // session that registered a backchannel_logout_uri.
      backchannelLogout: { enabled: true },
      // Open dynamic client registration (RFC 7591), no initial access token.
      registration: { enabled: true, initialAccessToken: false },
      resourceIndicators: { enabled: false },
    },
  };
}
