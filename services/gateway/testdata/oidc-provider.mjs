// A real OpenID Connect provider for the gateway's tests: npm oidc-provider
// (a certified implementation) on a loopback port, issuing RFC 9068 access
// tokens (typ at+jwt) for the audience "tokenrelay-api".
//
//   node oidc-provider.mjs [port]
//
// It prints one JSON line, {"issuer": "http://127.0.0.1:<port>"}, once it
// listens, then reads commands on standard input, one a line, answering
// each with a JSON line:
//
//   down    stop listening and drop every connection (the provider is down)
//   up      listen again on the same port
//   rotate  sign with a new key of each type from now on; the old keys stay
//           published, as a provider rotating its keys does
//
// Resource indicators (RFC 8707) pick the signing algorithm:
// https://rs256.tokenrelay.test signs with RS256, https://es256.tokenrelay.test
// with ES256; both have the audience tokenrelay-api and the scopes
// "shop admin". Clients: "batch" (client credentials, client_secret_post,
// secret "batch-secret") and "web" (authorization code with PKCE, public,
// redirect_uri http://127.0.0.1/cb). Any login name signs in through the
// development interactions at /interaction/<uid> (prompt=login, login=<name>;
// then prompt=consent). Nothing is persisted; nothing secret is logged.
import { generateKeyPairSync } from 'node:crypto';
import { createServer } from 'node:http';
import { createInterface } from 'node:readline';

import Provider from 'oidc-provider';

const port = Number(process.argv[2] || 0);
const audience = 'tokenrelay-api';
const resources = {
  'https://rs256.tokenrelay.test': 'RS256',
  'https://es256.tokenrelay.test': 'ES256',
};

let generation = 0;
function newKeys() {
  generation += 1;
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });
  return [
    { ...rsa, kid: `rsa-${generation}`, use: 'sig', alg: 'RS256' },
    { ...ec, kid: `ec-${generation}`, use: 'sig', alg: 'ES256' },
  ];
}

let signing = newKeys();
let retired = [];

function newProvider(issuer) {
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: 'batch', client_secret: 'batch-secret', grant_types: ['client_credentials'],
        response_types: [], redirect_uris: [], token_endpoint_auth_method: 'client_secret_post',
      },
      {
        client_id: 'web', grant_types: ['authorization_code'], response_types: ['code'],
        redirect_uris: ['http://127.0.0.1/cb'], token_endpoint_auth_method: 'none',
      },
    ],
    // The first key of each type signs; the others stay published.
    jwks: { keys: [...signing, ...retired] },
    scopes: ['openid', 'shop', 'admin'],
    findAccount: async (_ctx, sub) => ({ accountId: sub, claims: async () => ({ sub }) }),
    features: {
      devInteractions: { enabled: true },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => 'https://rs256.tokenrelay.test',
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx, indicator) => {
          const alg = resources[indicator];
          if (!alg) {
            throw new Provider.errors.InvalidTarget();
          }
          return {
            scope: 'shop admin', audience, accessTokenTTL: 600, accessTokenFormat: 'jwt', jwt: { sign: { alg } },
          };
        },
      },
    },
    enabledJWA: { idTokenSigningAlgValues: ['RS256', 'ES256'] },
    pkce: { required: () => true },
  });
  provider.on('server_error', (_ctx, err) => process.stderr.write(`oidc-provider server_error: ${err.message}\n`));
  return provider;
}

let handler;
const sockets = new Set();
const server = createServer((req, res) => handler(req, res));
server.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });

function listen(p) {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(p, '127.0.0.1', () => { server.off('error', reject); resolve(server.address().port); });
  });
}

const bound = await listen(port);
const issuer = `http://127.0.0.1:${bound}`;
handler = newProvider(issuer).callback();

const say = (obj) => process.stdout.write(`${JSON.stringify(obj)}\n`);
say({ issuer });

for await (const line of createInterface({ input: process.stdin })) {
  switch (line.trim()) {
    case 'down':
      await new Promise((resolve) => { server.close(resolve); for (const s of sockets) s.destroy(); });
      say({ ok: 'down' });
      break;
    case 'up':
      await listen(bound);
      say({ ok: 'up' });
      break;
    case 'rotate':
      retired = [...signing, ...retired];
      signing = newKeys();
      handler = newProvider(issuer).callback();
      say({ ok: 'rotate', kids: signing.map((k) => k.kid) });
      break;
    case '':
      break;
    default:
      say({ error: 'unknown command' });
  }
}
process.exit(0);
