// Tokenmint through openid-client (discovery, client credentials, refresh) and jose
// (verification from JWKS). Run by tests/api/drivers/interop.rs, which starts the server, creates
// the tenant, client and user, and reads the JSON line printed last.
//
// Last, an admin withdraws the signing key (an emergency): the session refreshes onto the
// fresh key, which jose's remote key set fetches on meeting its unknown kid, and the
// withdrawn key's token no longer verifies from JWKS.
//
// Environment: ISSUER, CLIENT_ID, CLIENT_SECRET, TENANT, USERNAME, PASSWORD, AUDIENCE,
// ADMIN_KEY (an API key with scope admin).

import * as client from 'openid-client';
import * as jose from 'jose';

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const issuer = env('ISSUER');
const audience = env('AUDIENCE');

// Discovery from the issuer alone (plain HTTP is allowed for the local test server only).
const insecure = { execute: [client.allowInsecureRequests] };
const basic = await client.discovery(
  new URL(issuer), env('CLIENT_ID'), undefined, client.ClientSecretBasic(env('CLIENT_SECRET')), insecure);
const post = await client.discovery(
  new URL(issuer), env('CLIENT_ID'), undefined, client.ClientSecretPost(env('CLIENT_SECRET')),
  { ...insecure, algorithm: 'oauth2' });
const metadata = basic.serverMetadata();

// jose refetches on an unknown kid, but not within `cooldownDuration` (30 s by default)
// of its last fetch; this script meets the fresh key seconds after its first fetch.
const jwks = jose.createRemoteJWKSet(new URL(metadata.jwks_uri), { cooldownDuration: 0 });
const verify = async (token) => {
  const { payload, protectedHeader } = await jose.jwtVerify(token, jwks, {
    issuer, audience, typ: 'at+jwt',
  });
  return { alg: protectedHeader.alg, ...payload };
};

// Client credentials, by client_secret_basic and client_secret_post.
const cc = await client.clientCredentialsGrant(basic, { scope: 'jobs:read' });
const ccPost = await client.clientCredentialsGrant(post);

// A user's session, opened through Tokenmint's login with this client, then refreshed by
// the library at the discovered token endpoint.
const login = await fetch(new URL('/api/login', issuer), {
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify({
    username: env('USERNAME'), password: env('PASSWORD'), tenant: env('TENANT'), client_id: env('CLIENT_ID'),
    client_secret: env('CLIENT_SECRET'),
  }),
});
if (login.status !== 200) throw new Error(`login answered ${login.status}: ${await login.text()}`);
const session = await login.json();
const refreshed = await client.refreshTokenGrant(basic, session.refresh_token);
const again = await client.refreshTokenGrant(post, refreshed.refresh_token);

// A refresh token Tokenmint never issued is refused, and the library reports it as an
// OAuth error, not a crash.
let unknown_refresh;
try {
  await client.refreshTokenGrant(basic, 'A'.repeat(43));
  unknown_refresh = 'accepted';
} catch (e) {
  unknown_refresh = e.error ?? String(e);
}

const verified = {
  client_credentials: await verify(cc.access_token),
  client_credentials_post: await verify(ccPost.access_token),
  refreshed: await verify(refreshed.access_token),
  refreshed_again: await verify(again.access_token),
};

// The emergency: the key that signed everything so far is withdrawn.
const withdrawn_kid = jose.decodeProtectedHeader(again.access_token).kid;
const withdrawal = await fetch(new URL(`/api/admin/signing-keys/${withdrawn_kid}/withdraw`, issuer), {
  method: 'POST',
  headers: { 'content-type': 'application/json', 'x-api-key': env('ADMIN_KEY') },
  body: JSON.stringify({ reason: 'interop: a leaked key' }),
});
if (withdrawal.status !== 200) throw new Error(`withdrawal answered ${withdrawal.status}: ${await withdrawal.text()}`);
const after = await client.refreshTokenGrant(basic, again.refresh_token);
const after_withdrawal = { ...(await verify(after.access_token)), kid: jose.decodeProtectedHeader(after.access_token).kid };
let withdrawn_verifies;
try {
  await verify(again.access_token);
  withdrawn_verifies = true;
} catch (e) {
  if (e.code !== 'ERR_JWKS_NO_MATCHING_KEY') throw e;
  withdrawn_verifies = false;
}

console.log(JSON.stringify({
  token_endpoint: metadata.token_endpoint,
  ...verified,
  withdrawn_kid,
  after_withdrawal,
  withdrawn_verifies,
  rotated: refreshed.refresh_token !== session.refresh_token && again.refresh_token !== refreshed.refresh_token,
  expires_in: cc.expires_in,
  unknown_refresh,
}));
