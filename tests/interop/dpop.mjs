// Tokenmint as a DPoP authorization server and resource server for oauth4webapi (RFC 9449):
// discovery, client credentials with a DPoP proof, `/api/me` with the bound token, and the
// library's own nonce handling (the server requires nonces). Run by
// tests/api/drivers/interop.rs, which reads the JSON line printed last.
//
// Environment: ISSUER, CLIENT_ID, CLIENT_SECRET.

import * as oauth from 'oauth4webapi';

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const issuer = new URL(env('ISSUER'));
// Plain HTTP is allowed for the local test server only.
const insecure = { [oauth.allowInsecureRequests]: true };

const as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, insecure));
const client = { client_id: env('CLIENT_ID') };
const auth = oauth.ClientSecretBasic(env('CLIENT_SECRET'));
const keyPair = await oauth.generateKeyPair('ES256');
const DPoP = oauth.DPoP(client, keyPair);
const nonceRetries = { token: 0, resource: 0 };

/** Runs `request` and retries it once when the library says a fresh nonce is needed. */
async function withNonce(kind, request) {
  try {
    return await request();
  } catch (error) {
    if (!oauth.isDPoPNonceError(error)) throw error;
    nonceRetries[kind] += 1;
    return request();
  }
}

const tokens = await withNonce('token', async () => {
  const response = await oauth.clientCredentialsGrantRequest(as, client, auth, new URLSearchParams(), {
    ...insecure,
    DPoP,
  });
  return oauth.processClientCredentialsResponse(as, client, response);
});

const me = await withNonce('resource', () =>
  oauth.protectedResourceRequest(tokens.access_token, 'GET', new URL('/api/me', issuer), new Headers(), null, {
    ...insecure,
    DPoP,
  }),
);
const meBody = await me.json();

// The same token copied without the key.
const copied = await fetch(new URL('/api/me', issuer), {
  headers: { authorization: `Bearer ${tokens.access_token}` },
});

const claims = JSON.parse(Buffer.from(tokens.access_token.split('.')[1], 'base64url'));
console.log(
  JSON.stringify({
    dpop_algs: as.dpop_signing_alg_values_supported,
    token_type: tokens.token_type,
    cnf_jkt: claims.cnf?.jkt,
    library_jkt: await DPoP.calculateThumbprint(),
    me_status: me.status,
    me_sub: meBody.sub,
    copied_status: copied.status,
    copied_challenge: copied.headers.get('www-authenticate'),
    nonce_retries: nonceRetries,
  }),
);
