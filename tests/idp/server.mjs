// OpenID provider for the dash_oauth_otel test suite.
//
// Runs panva's oidc-provider on 127.0.0.1 with the features the library
// speaks to (code flow + PKCE, PAR, form_post, RFC 9207 `iss`, refresh-token
// rotation, revocation, introspection, userinfo, RP-initiated logout by GET
// or POST (end_session_post.mjs), dynamic client registration) and adds a test-only fault API under /__test/: make
// the next token/userinfo/JWKS requests fail, delay token responses, tamper
// with the next ID token, rotate the signing keys, or make a (possibly
// defective) back-channel logout token for a test to POST to its app.
//
// Usage: node server.mjs --port 0     (0 picks a free port)
// Once listening it prints one JSON line on stdout:
//   {"ready": true, "issuer": "http://127.0.0.1:<port>", "port": <port>}
// Everything else (oidc-provider notices and warnings) goes to stderr.
//
// Modules: config.mjs (accounts, clients, features), storage.mjs (adapter
// shared across Provider instances), keys.mjs (signing keys), faults.mjs
// (fault state and the middleware that applies it), logout_tokens.mjs
// (test-only logout tokens).

import * as http from 'node:http';
import { parseArgs } from 'node:util';

import Provider from 'oidc-provider';

import { configuration } from './config.mjs';
import { endSessionPost } from './end_session_post.mjs';
import {
  TAMPER_KINDS, faultMiddleware, faults, received, resetFaults, resetReceived, stripRemoteImports,
} from './faults.mjs';
import { currentKey, kids, rotate } from './keys.mjs';
import { makeLogoutToken } from './logout_tokens.mjs';

// oidc-provider prints its configuration notices with console.info (stdout);
// stdout is reserved for the ready line, so send them to stderr.
console.info = (...args) => console.error(...args);

const HOST = '127.0.0.1';
const { values: cli } = parseArgs({ options: { port: { type: 'string', default: '0' } } });

// ---------------------------------------------------------------------------
// The current Provider instance. A Provider's JWKS is fixed when it is built,
// so key rotation builds a new one; all state lives in the shared storage.

let issuer;
let handle; // Node request handler of the current Provider instance

function installProvider() {
  const provider = new Provider(issuer, configuration());
  provider.use(endSessionPost);
  provider.use(faultMiddleware);
  provider.use(stripRemoteImports);
  // Back-channel logout deliveries, for the log a failed test shows.
  provider.on('backchannel.success', (_ctx, client, _sub, _sid) => {
    console.error(`backchannel logout delivered to ${client.clientId}`);
  });
  provider.on('backchannel.error', (_ctx, err, client) => {
    console.error(`backchannel logout to ${client.clientId} failed: ${err.message}`);
  });
  handle = provider.callback();
}

// ---------------------------------------------------------------------------
// Test-only API: POST /__test/<operation> with a JSON object; answers the
// resulting state (or what the operation returns). Only requests from
// 127.0.0.1 are served.

function count(value, name) {
  const n = value ?? 1;
  if (!Number.isSafeInteger(n) || n < 1) throw new RangeError(`${name} must be a positive integer`);
  return n;
}

function state() {
  return { faults, kids: kids(), signing_kid: currentKey().kid };
}

const TEST_OPERATIONS = {
  token_error({ times }) {
    faults.tokenError = count(times, 'times');
  },
  token_delay({ ms, times }) {
    if (!Number.isSafeInteger(ms) || ms < 0) throw new RangeError('ms must be a non-negative integer');
    faults.tokenDelay = { ms, times: count(times, 'times') };
  },
  tamper_id_token({ what }) {
    if (!TAMPER_KINDS.has(what)) {
      throw new RangeError(`what must be one of ${[...TAMPER_KINDS].join(', ')}`);
    }
    faults.tamper = what;
  },
  userinfo_error({ times }) {
    faults.userinfoError = count(times, 'times');
  },
  jwks_error({ times }) {
    faults.jwksError = count(times, 'times');
  },
  rotate_keys({ retire_old: retireOld = false }) {
    if (typeof retireOld !== 'boolean') throw new RangeError('retire_old must be a boolean');
    rotate(retireOld);
    installProvider();
  },
  logout_token(body) {
    return { logout_token: makeLogoutToken(issuer, body) };
  },
  reset() {
    resetFaults(); // the signing keys stay as they are
  },
  state() {},
  received() {
    return { ...received };
  },
  reset_received() {
    resetReceived();
    return { ...received };
  },
};

function sendJson(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(JSON.stringify(body));
}

async function readJsonObject(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > 64 * 1024) throw new RangeError('request body too large');
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8').trim();
  const body = text ? JSON.parse(text) : {};
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new RangeError('request body must be a JSON object');
  }
  return body;
}

async function handleTestApi(req, res, name) {
  const remote = req.socket.remoteAddress;
  if (remote !== '127.0.0.1' && remote !== '::ffff:127.0.0.1') {
    sendJson(res, 403, { error: 'forbidden', error_description: 'test API is loopback-only' });
    return;
  }
  const operation = Object.hasOwn(TEST_OPERATIONS, name) ? TEST_OPERATIONS[name] : undefined;
  if (!operation) {
    sendJson(res, 404, { error: 'not_found', error_description: `no test operation ${name}` });
    return;
  }
  if (req.method !== 'POST') {
    sendJson(res, 405, { error: 'method_not_allowed', error_description: 'use POST' });
    return;
  }
  let result;
  try {
    result = operation(await readJsonObject(req));
  } catch (err) {
    sendJson(res, 400, { error: 'invalid_request', error_description: err.message });
    return;
  }
  sendJson(res, 200, result ?? state());
}

// ---------------------------------------------------------------------------
// HTTP server.

const server = http.createServer((req, res) => {
  const { pathname } = new URL(req.url, 'http://placeholder');
  if (pathname.startsWith('/__test/')) {
    handleTestApi(req, res, pathname.slice('/__test/'.length)).catch((err) => {
      console.error(err);
      if (!res.headersSent) sendJson(res, 500, { error: 'server_error' });
    });
    return;
  }
  handle(req, res);
});

server.listen(Number(cli.port), HOST, () => {
  const { port } = server.address();
  issuer = `http://${HOST}:${port}`;
  installProvider();
  process.stdout.write(`${JSON.stringify({ ready: true, issuer, port })}\n`);
});

function shutdown() {
  server.close(() => process.exit(0));
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 2000).unref();
}

process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
