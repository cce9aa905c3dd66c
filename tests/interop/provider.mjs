// A real OpenID provider (panva/oidc-provider) for tollgate's interoperability test.
//
// PORT=4000 node provider.mjs
//
// - issuer http://127.0.0.1:$PORT, discovery, JWKS, token endpoint;
// - clients allowed client_credentials: `rs-client` (RS256 access tokens, orders:read and
//   orders:write), `es-client` (ES256, orders:read only), both client_secret_basic;
//   `pkjwt-client` (private_key_jwt; its private JWK is served at /__client_key for the test);
//   `dpop-client` (client_secret_basic, DPoP-bound tokens only);
// - resource indicators on: access tokens are JWTs (typ at+jwt) for the requested resource,
//   https://api.tollgate.test or https://other.tollgate.test, and opaque for
//   https://opaque.tollgate.test;
// - introspection (RFC 7662) and revocation (RFC 7009) on; `introspector` is the resource
//   server's client for introspection (client_secret_basic);
// - mutual TLS (RFC 8705) when TLS_PORT, TLS_CERT, TLS_KEY and TLS_CA are set: the same
//   provider over HTTPS on TLS_PORT as well, asking clients for a certificate of TLS_CA;
//   `mtls-client` authenticates with its certificate (tls_client_auth, subject
//   CN=tollgate-mtls-client) and gets tokens bound to it (cnf.x5t#S256);
// - POST /__rotate: a new RSA and EC key sign from now on, the old ones stay published;
//   POST /__drop_old: only the newest keys stay published.
import http from 'node:http';
import https from 'node:https';
import { readFileSync } from 'node:fs';
import { X509Certificate, generateKeyPairSync, randomUUID } from 'node:crypto';
import Provider, { errors } from 'oidc-provider';

const port = Number(process.env.PORT || 4000);
const issuer = `http://127.0.0.1:${port}`;
const RESOURCES = ['https://api.tollgate.test', 'https://other.tollgate.test', 'https://opaque.tollgate.test'];

function key(kind) {
  const options = kind === 'rsa' ? { modulusLength: 2048 } : { namedCurve: 'P-256' };
  const { privateKey } = generateKeyPairSync(kind, options);
  return { ...privateKey.export({ format: 'jwk' }), kid: `${kind}-${randomUUID().slice(0, 8)}`, use: 'sig' };
}

// The private_key_jwt client's key pair: the public half registered, the private half served
// (PEM) to the test, which signs its client assertions with it.
const clientPair = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const clientPublic = { ...clientPair.publicKey.export({ format: 'jwk' }), kid: 'pkjwt-1', use: 'sig' };
const clientPem = clientPair.privateKey.export({ format: 'pem', type: 'pkcs8' });
let keys = [key('rsa'), key('ec')];

function makeProvider() {
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: 'rs-client', client_secret: 'rs-client-secret-0123456789abcdef',
        grant_types: ['client_credentials'], redirect_uris: [], response_types: [],
        token_endpoint_auth_method: 'client_secret_basic', scope: 'orders:read orders:write',
      },
      {
        client_id: 'es-client', client_secret: 'es-client-secret-0123456789abcdef',
        grant_types: ['client_credentials'], redirect_uris: [], response_types: [],
        token_endpoint_auth_method: 'client_secret_basic', scope: 'orders:read',
      },
      {
        // DPoP (RFC 9449, on by default in oidc-provider): every token of this client is
        // bound to the key of the proof its token request carries.
        client_id: 'dpop-client', client_secret: 'dpop-client-secret-0123456789abcdef',
        grant_types: ['client_credentials'], redirect_uris: [], response_types: [],
        token_endpoint_auth_method: 'client_secret_basic', scope: 'orders:read orders:write',
        dpop_bound_access_tokens: true,
      },
      {
        client_id: 'mtls-client', grant_types: ['client_credentials'], redirect_uris: [],
        response_types: [], token_endpoint_auth_method: 'tls_client_auth',
        tls_client_auth_subject_dn: 'CN=tollgate-mtls-client',
        tls_client_certificate_bound_access_tokens: true, scope: 'orders:read orders:write',
      },
      {
        client_id: 'introspector', client_secret: 'introspector-secret-0123456789abcdef',
        grant_types: ['client_credentials'], redirect_uris: [], response_types: [],
        token_endpoint_auth_method: 'client_secret_basic',
      },
      {
        client_id: 'pkjwt-client', grant_types: ['client_credentials'], redirect_uris: [],
        response_types: [], token_endpoint_auth_method: 'private_key_jwt',
        token_endpoint_auth_signing_alg: 'ES256', jwks: { keys: [clientPublic] },
        scope: 'orders:read orders:write',
      },
    ],
    jwks: { keys },
    clientAuthMethods: ['client_secret_basic', 'client_secret_post', 'private_key_jwt', 'tls_client_auth'],
    scopes: ['openid', 'orders:read', 'orders:write'],
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      revocation: { enabled: true },
      mTLS: {
        enabled: true,
        certificateBoundAccessTokens: true,
        tlsClientAuth: true,
        // The certificate of the TLS connection, checked against TLS_CA by Node.
        getCertificate: (ctx) => {
          const peer = ctx.socket.getPeerCertificate?.(true);
          return peer?.raw ? new X509Certificate(peer.raw) : undefined;
        },
        certificateAuthorized: (ctx) => ctx.socket.authorized === true,
        certificateSubjectMatches: (ctx, property, expected) => property === 'tls_client_auth_subject_dn'
          && new X509Certificate(ctx.socket.getPeerCertificate().raw).subject === expected,
      },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => RESOURCES[0],
        useGrantedResource: () => true,
        getResourceServerInfo: (ctx, resource, client) => {
          if (!RESOURCES.includes(resource)) throw new errors.InvalidTarget();
          return {
            scope: 'orders:read orders:write',
            audience: resource,
            accessTokenTTL: 300,
            accessTokenFormat: resource === 'https://opaque.tollgate.test' ? 'opaque' : 'jwt',
            jwt: { sign: { alg: client.clientId === 'es-client' ? 'ES256' : 'RS256' } },
          };
        },
      },
    },
  });
  provider.on('server_error', (ctx, err) => console.error('server_error', err));
  return provider;
}

let callback = makeProvider().callback();

const server = http.createServer((req, res) => {
  if (req.method === 'POST' && req.url === '/__rotate') {
    keys = [key('rsa'), key('ec'), ...keys];
    callback = makeProvider().callback();
    res.end(JSON.stringify({ kids: keys.map((k) => k.kid) }));
  } else if (req.method === 'POST' && req.url === '/__drop_old') {
    keys = keys.slice(0, 2);
    callback = makeProvider().callback();
    res.end(JSON.stringify({ kids: keys.map((k) => k.kid) }));
  } else if (req.url === '/__client_key') {
    res.setHeader('content-type', 'application/x-pem-file');
    res.end(clientPem);
  } else {
    callback(req, res);
  }
});

server.listen(port, '127.0.0.1', () => console.log(`oidc-provider listening on ${issuer}`));
if (process.env.TLS_PORT) {
  const tls = https.createServer({
    cert: readFileSync(process.env.TLS_CERT),
    key: readFileSync(process.env.TLS_KEY),
    ca: readFileSync(process.env.TLS_CA),
    requestCert: true,
    rejectUnauthorized: false,
  }, server.listeners('request')[0]);
  tls.listen(Number(process.env.TLS_PORT), '127.0.0.1');
}
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => process.exit(0));
