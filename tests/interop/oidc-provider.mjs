// A certified OpenID Connect provider (panva's oidc-provider) for interop tests:
// the services must verify its tokens exactly as they verify our own issuer's.
//
//   node oidc-provider.mjs <port> <keys.json> <clients.json>
//
// keys.json: private JWKs, the first signs; created with one key if missing.
// With ROTATE=1 a new key is put first: it signs from now on, and the old ones
// stay published. clients.json: [{client_id, client_secret,
// role}], each allowed the client-credentials grant. Access tokens are JWTs
// (RFC 9068) for the audience "aftersales", ES256, 15 minutes, with the role in
// "aftersales_role". OIDC_PROVIDER_MODULE names the installed package's entry.
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

const [port, keysFile, clientsFile] = process.argv.slice(2);
const { default: Provider } = await import(pathToFileURL(process.env.OIDC_PROVIDER_MODULE).href);

const newKey = () => {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { ...privateKey.export({ format: 'jwk' }), alg: 'ES256', use: 'sig' };
};
const keys = existsSync(keysFile) ? JSON.parse(readFileSync(keysFile, 'utf8')) : [newKey()];
if (process.env.ROTATE === '1') keys.unshift(newKey());
writeFileSync(keysFile, JSON.stringify(keys));
const clients = JSON.parse(readFileSync(clientsFile, 'utf8'));
const roles = Object.fromEntries(clients.map((c) => [c.client_id, c.role]));

const provider = new Provider(`http://127.0.0.1:${port}`, {
  jwks: { keys },
  clients: clients.map(({ client_id, client_secret }) => ({
    client_id,
    client_secret,
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'client_secret_basic',
    id_token_signed_response_alg: 'ES256',
  })),
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => 'urn:aftersales',
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({
        scope: 'aftersales',
        audience: 'aftersales',
        accessTokenTTL: 900,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: 'ES256' } },
      }),
    },
  },
  extraTokenClaims: (ctx, token) => ({ aftersales_role: roles[token.clientId] }),
});
provider.listen(Number(port), '127.0.0.1', () => console.log(`listening ${provider.issuer}`));
