// The client's state machine against a fake Tokenmint (node --test).
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { createClient, TokenmintError } from '../src/index.js';

/** The fake's access token number `n` of session `sid`: JWT-shaped, so that the client
 * can read its `sid` (never verified here; the server verifies every use). */
const b64 = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
const tok = (n, sid = 's1') => `${b64({ alg: 'ES256' })}.${b64({ sid, n })}.a${n}`;

let issuers = 0;
const freshIssuer = () => `https://id${(issuers += 1)}.test`;

/** A fake Tokenmint: rotation with the "spent token leads to the current one" rule, an
 * API at /api/me that refuses expired or revoked tokens, and switches to break things. */
function fakeTokenmint({ cookieMode = false } = {}) {
  const state = {
    rotations: 0,
    refreshCalls: 0,
    current: 'r0', // the session's current refresh token
    spent: new Set(),
    cookie: null, // the browser's cookie jar, in cookie mode
    expired: new Set(), // access tokens the API now calls expired
    revoked: new Set(),
    loseNextRefreshAnswers: 0, // answers lost after the server rotated
    refuseRefreshWith: null, // an error code
    apiCalls: [],
    refreshBodies: [],
    loginBodies: [],
    tokens: 0,
    sessions: ['s1', 's2', 's3'], // the user's live sessions, newest first
    sessionCalls: [],
  };
  const json = (status, body, headers = {}) =>
    new Response(JSON.stringify(body), {
      status,
      headers: { 'content-type': 'application/json', ...headers },
    });
  const pair = () => {
    state.tokens += 1;
    return {
      access_token: tok(state.tokens),
      token: tok(state.tokens),
      token_type: 'Bearer',
      expires_in: 900,
      refresh_expires_in: 604800,
      scope: 'read',
      session_id: 's1',
      device_proof: `dp${state.tokens}`,
      ...(cookieMode ? {} : { refresh_token: state.current }),
    };
  };
  async function fetch(input, init = {}) {
    const request = input instanceof Request ? input : new Request(input, init);
    const url = new URL(request.url);
    const body = await request.text();
    switch (url.pathname) {
      case '/api/login': {
        state.loginBodies.push({ body: JSON.parse(body), credentials: init.credentials });
        if (cookieMode) state.cookie = state.current;
        return json(200, pair());
      }
      case '/api/refresh-token': {
        state.refreshCalls += 1;
        state.refreshBodies.push({ body, credentials: init.credentials });
        if (state.refuseRefreshWith) {
          return json(401, { error: state.refuseRefreshWith, message: 'refused' });
        }
        const presented = cookieMode ? state.cookie : JSON.parse(body).refresh_token;
        if (presented === state.current) {
          state.spent.add(state.current);
          state.rotations += 1;
          state.current = `r${state.rotations}`;
        } else if (!state.spent.has(presented)) {
          return json(401, { error: 'AUTHENTICATION_FAILED', message: 'invalid' });
        }
        // Cookies are set as the answer passes the network stack, even if it is lost later.
        if (cookieMode) state.cookie = state.current;
        if (state.loseNextRefreshAnswers > 0) {
          state.loseNextRefreshAnswers -= 1;
          throw new TypeError('Failed to fetch');
        }
        return json(200, pair());
      }
      case '/api/me': {
        const token = (request.headers.get('authorization') || '').replace(/^Bearer /, '');
        state.apiCalls.push({ token, body });
        if (state.revoked.has(token)) {
          return json(401, { error: 'TOKEN_REVOKED', message: 'revoked' }, {
            'www-authenticate': 'Bearer error="invalid_token"',
          });
        }
        if (state.expired.has(token)) {
          return json(401, { error: 'TOKEN_EXPIRED', message: 'expired' }, {
            'www-authenticate': 'Bearer error="invalid_token"',
          });
        }
        return json(200, { sub: 'u1', body });
      }
      case '/api/tickets': {
        const token = (request.headers.get('authorization') || '').replace(/^Bearer /, '');
        if (state.expired.has(token)) return json(401, { error: 'TOKEN_EXPIRED' });
        return json(201, { ticket: `t-for-${JSON.parse(body).audience}`, expires_in: 30 });
      }
      case '/api/logout':
        return new Response(null, { status: 204 });
      case '/api/sessions': {
        // Pages of two, the cursor the id to start after.
        const authorization = request.headers.get('authorization');
        state.sessionCalls.push({ method: request.method, path: url.pathname + url.search, authorization });
        const after = url.searchParams.get('cursor');
        const start = after ? state.sessions.indexOf(after) + 1 : 0;
        const items = state.sessions.slice(start, start + 2).map((id) => ({ id, current: id === 's1' }));
        const more = start + 2 < state.sessions.length;
        return json(200, { items, next_cursor: more ? items[1].id : null });
      }
      case '/api/sessions/revoke-others': {
        const authorization = request.headers.get('authorization');
        state.sessionCalls.push({ method: request.method, path: url.pathname, authorization });
        const revoked = state.sessions.length - 1;
        state.sessions = ['s1'];
        return json(200, { revoked });
      }
      default: {
        const ended = url.pathname.match(/^\/api\/sessions\/([^/]+)$/);
        if (ended && request.method === 'DELETE') {
          const authorization = request.headers.get('authorization');
          state.sessionCalls.push({ method: request.method, path: url.pathname, authorization });
          if (!state.sessions.includes(ended[1])) {
            return json(404, { error: 'NOT_FOUND', message: 'no such session' });
          }
          state.sessions = state.sessions.filter((id) => id !== ended[1]);
          return new Response(null, { status: 204 });
        }
        return json(404, { error: 'NOT_FOUND' });
      }
    }
  }
  return { fetch, state };
}

/** navigator.locks, as far as the client uses it: one holder per name at a time, granted
 * in request order, and `ifAvailable` (decided when asked: the callback gets `null`
 * while the lock is held or promised to another). */
function fakeLocks() {
  const queues = new Map(); // name -> waiting grants; present while held
  const grant = (name, callback, settle) => {
    Promise.resolve()
      .then(() => callback({ name }))
      .then(
        (value) => settle.resolve(value),
        (error) => settle.reject(error),
      )
      .finally(() => {
        const next = queues.get(name).shift();
        if (next) next();
        else queues.delete(name);
      });
  };
  return {
    request(name, optionsOrCallback, maybeCallback) {
      const callback = maybeCallback ?? optionsOrCallback;
      const options = maybeCallback ? optionsOrCallback : {};
      return new Promise((resolve, reject) => {
        const settle = { resolve, reject };
        if (!queues.has(name)) {
          queues.set(name, []);
          grant(name, callback, settle);
        } else if (options.ifAvailable) {
          Promise.resolve(callback(null)).then(resolve, reject);
        } else {
          queues.get(name).push(() => grant(name, callback, settle));
        }
      });
    },
  };
}

test('fetch adds the bearer token and returns other answers untouched', async () => {
  const server = fakeTokenmint();
  const client = createClient({ origins: ['https://api.test'], issuer: freshIssuer(), fetch: server.fetch });
  await client.login({ username: 'u', password: 'p' });
  const response = await client.fetch(`${'https://api.test'}/api/me`);
  assert.equal(response.status, 200);
  assert.equal(server.state.apiCalls[0].token, tok(1));
  assert.equal(server.state.refreshCalls, 0);
});

test('a 401 TOKEN_EXPIRED refreshes once and retries once, body included', async () => {
  const server = fakeTokenmint();
  const client = createClient({ origins: ['https://api.test'], issuer: freshIssuer(), fetch: server.fetch });
  await client.login({ username: 'u', password: 'p' });
  server.state.expired.add(tok(1));
  const response = await client.fetch('https://api.test/api/me', {
    method: 'POST',
    body: 'payload',
  });
  assert.equal(response.status, 200);
  assert.equal(server.state.refreshCalls, 1);
  assert.deepEqual(
    server.state.apiCalls.map((c) => [c.token, c.body]),
    [
      [tok(1), 'payload'],
      [tok(2), 'payload'],
    ],
  );
});

test('any other 401 is returned without a refresh', async () => {
  const server = fakeTokenmint();
  const client = createClient({ origins: ['https://api.test'], issuer: freshIssuer(), fetch: server.fetch });
  await client.login({ username: 'u', password: 'p' });
  server.state.revoked.add(tok(1));
  const response = await client.fetch('https://api.test/api/me');
  assert.equal(response.status, 401);
  assert.equal((await response.json()).error, 'TOKEN_REVOKED');
  assert.equal(server.state.refreshCalls, 0);
  assert.equal(server.state.apiCalls.length, 1);
});

test('the retry happens once: a second TOKEN_EXPIRED goes back to the caller', async () => {
  const server = fakeTokenmint();
  const client = createClient({ origins: ['https://api.test'], issuer: freshIssuer(), fetch: server.fetch });
  await client.login({ username: 'u', password: 'p' });
  server.state.expired.add(tok(1));
  server.state.expired.add(tok(2));
  const response = await client.fetch('https://api.test/api/me');
  assert.equal(response.status, 401);
  assert.equal(server.state.refreshCalls, 1);
  assert.equal(server.state.apiCalls.length, 2);
});

test('a burst of expired requests in one tab costs one refresh', async () => {
  const server = fakeTokenmint();
  const client = createClient({ origins: ['https://api.test'], issuer: freshIssuer(), fetch: server.fetch });
  await client.login({ username: 'u', password: 'p' });
  server.state.expired.add(tok(1));
  const answers = await Promise.all(
    Array.from({ length: 10 }, () => client.fetch('https://api.test/api/me')),
  );
  assert.deepEqual(
    answers.map((a) => a.status),
    Array(10).fill(200),
  );
  assert.equal(server.state.refreshCalls, 1);
  assert.equal(server.state.rotations, 1);
});

test('in cookie mode five tabs share one refresh (locks and a channel)', async () => {
  const server = fakeTokenmint({ cookieMode: true });
  const issuer = freshIssuer();
  const locks = fakeLocks();
  const tabs = Array.from({ length: 5 }, () =>
    createClient({ origins: ['https://api.test'], issuer, cookie: true, fetch: server.fetch, locks }),
  );
  try {
    await tabs[0].login({ username: 'u', password: 'p' });
    // The other tabs hold no session yet: they take no token from the channel, and get
    // the shared session's by refreshing (one at a time).
    await Promise.all(tabs.slice(1).map((t) => t.getAccessToken()));
    assert.ok(tabs.every((t) => t.loggedIn));
    // The channel's messages arrive (the tabs are idle a moment, as they would be).
    await new Promise((resolve) => setTimeout(resolve, 50));
    const warmup = server.state.rotations;
    for (let n = 1; n <= server.state.tokens; n += 1) server.state.expired.add(tok(n));
    const answers = await Promise.all(
      tabs.flatMap((tab) => [0, 1, 2].map(() => tab.fetch('https://api.test/api/me'))),
    );
    assert.deepEqual(
      answers.map((a) => a.status),
      Array(15).fill(200),
    );
    assert.equal(
      server.state.rotations - warmup,
      1,
      'one rotation for 15 requests in 5 tabs (the others adopt its token)',
    );
    // Cookie mode: no refresh token in any body, credentials included.
    assert.ok(server.state.refreshBodies.every((r) => r.body === '' && r.credentials === 'include'));
    assert.equal(server.state.loginBodies[0].body.cookie, true);
  } finally {
    tabs.forEach((t) => t.close());
  }
});

test('a refresh whose answer is lost is retried and converges', async () => {
  for (const cookieMode of [false, true]) {
    const server = fakeTokenmint({ cookieMode });
    const client = createClient({ origins: ['https://api.test'], issuer: freshIssuer(), cookie: cookieMode, fetch: server.fetch });
    let ended = 0;
    client.addEventListener('session-ended', () => {
      ended += 1;
    });
    await client.login({ username: 'u', password: 'p' });
    server.state.expired.add(tok(1));
    server.state.loseNextRefreshAnswers = 2;
    const response = await client.fetch('https://api.test/api/me');
    assert.equal(response.status, 200, `cookie mode ${cookieMode}`);
    assert.equal(server.state.refreshCalls, 3);
    // In memory the client presents the same token again and gets the current one; in
    // cookie mode the lost answers' cookies arrived, so each retry moves the chain on.
    // Either way one chain, never a fork or a revocation.
    assert.equal(server.state.rotations, cookieMode ? 3 : 1);
    assert.equal(ended, 0);
    client.close();
  }
});

test('session-ended fires once when the session is over', async () => {
  const server = fakeTokenmint();
  const client = createClient({ origins: ['https://api.test'], issuer: freshIssuer(), fetch: server.fetch });
  const codes = [];
  client.addEventListener('session-ended', (event) => codes.push(event.detail.code));
  await client.login({ username: 'u', password: 'p' });
  server.state.expired.add(tok(1));
  server.state.refuseRefreshWith = 'REFRESH_TOKEN_REUSED';
  const first = await client.fetch('https://api.test/api/me');
  assert.equal(first.status, 401, 'the original answer goes back');
  assert.equal(client.loggedIn, false);
  await assert.rejects(client.getAccessToken(), TokenmintError);
  server.state.refuseRefreshWith = 'TOKEN_REVOKED';
  await assert.rejects(client.onTokenExpired(), (e) => e.code === 'AUTHENTICATION_FAILED');
  assert.deepEqual(codes, ['REFRESH_TOKEN_REUSED']);
});

test('getAccessToken refreshes shortly before expiry, by this machine\'s clock', async () => {
  const server = fakeTokenmint();
  let clock = 1_000_000;
  const client = createClient({ origins: ['https://api.test'], issuer: freshIssuer(), fetch: server.fetch, now: () => clock });
  await client.login({ username: 'u', password: 'p' });
  clock += 869_000; // 31 s left of 900
  assert.equal(await client.getAccessToken(), tok(1));
  assert.equal(server.state.refreshCalls, 0);
  clock += 2_000; // 29 s left: inside the 30 s margin
  assert.equal(await client.getAccessToken(), tok(2));
  assert.equal(server.state.refreshCalls, 1);
});

test('onTokenExpired gives every caller one fresh token', async () => {
  const server = fakeTokenmint();
  const client = createClient({ origins: ['https://api.test'], issuer: freshIssuer(), fetch: server.fetch });
  await client.login({ username: 'u', password: 'p' });
  const tokens = await Promise.all([1, 2, 3, 4].map(() => client.onTokenExpired()));
  assert.deepEqual(tokens, [tok(2), tok(2), tok(2), tok(2)]);
  assert.equal(server.state.refreshCalls, 1);
});

test('the refresh token never reaches web storage', async () => {
  // Only device proofs may be written, and only outside cookie mode; no token ever.
  const touched = [];
  const written = [];
  const trap = new Proxy(
    {},
    {
      get(_, key) {
        touched.push(String(key));
        if (key === 'getItem') return () => null;
        if (key === 'setItem') return (k, v) => written.push([k, v]);
        return () => {};
      },
    },
  );
  globalThis.localStorage = trap;
  globalThis.sessionStorage = trap;
  try {
    for (const cookieMode of [false, true]) {
      const server = fakeTokenmint({ cookieMode });
      const client = createClient({ origins: ['https://api.test'], issuer: freshIssuer(), cookie: cookieMode, fetch: server.fetch });
      await client.login({ username: 'u', password: 'p' });
      server.state.expired.add(tok(1));
      await client.fetch('https://api.test/api/me');
      await client.logout();
      client.close();
    }
  } finally {
    delete globalThis.localStorage;
    delete globalThis.sessionStorage;
  }
  assert.deepEqual([...new Set(touched)].sort(), ['getItem', 'setItem']);
  assert.equal(written.length, 1, JSON.stringify(written));
  const [[key, value]] = written;
  assert.match(key, /^tokenmint\.device:https:\/\/id\d+\.test:default:u$/);
  assert.equal(value, 'dp1', 'the device proof, and nothing else');
});

test('ticket asks with the bearer token and refreshes on TOKEN_EXPIRED', async () => {
  const server = fakeTokenmint();
  const issuer = freshIssuer();
  const client = createClient({ origins: ['https://api.test'], issuer, fetch: server.fetch });
  await client.login({ username: 'u', password: 'p' });
  server.state.expired.add(tok(1));
  assert.equal(await client.ticket('wss://agents.example'), 't-for-wss://agents.example');
  assert.equal(server.state.refreshCalls, 1);
});

test('listSessions follows every page; endSession and endOtherSessions end what they say', async () => {
  const server = fakeTokenmint();
  const issuer = freshIssuer();
  const client = createClient({ issuer, fetch: server.fetch });
  await client.login({ username: 'u', password: 'p' });
  const listed = await client.listSessions();
  assert.deepEqual(listed.map((s) => s.id), ['s1', 's2', 's3']);
  assert.deepEqual(listed.map((s) => s.current), [true, false, false]);
  assert.deepEqual(
    server.state.sessionCalls.map((c) => c.path),
    ['/api/sessions?limit=200', '/api/sessions?limit=200&cursor=s2'],
  );

  await client.endSession('s2');
  assert.deepEqual(server.state.sessions, ['s1', 's3']);
  assert.equal(client.loggedIn, true, 'ending another session keeps this one');
  await assert.rejects(client.endSession('s9'), (e) => e instanceof TokenmintError && e.status === 404 && e.code === 'NOT_FOUND');

  assert.equal(await client.endOtherSessions(), 1);
  assert.deepEqual(server.state.sessions, ['s1']);
  assert.ok(
    server.state.sessionCalls.every((c) => c.authorization === `Bearer ${tok(1)}`),
    'every call with the bearer token',
  );

  await client.endSession('s1');
  assert.equal(client.loggedIn, false, 'ending this session logs this client out');
});

test('the token goes only to the issuer and the listed origins', async () => {
  const seen = [];
  const server = fakeTokenmint();
  const recording = async (input, init = {}) => {
    const request = input instanceof Request ? input : new Request(input, init);
    seen.push({ url: request.url, authorization: request.headers.get('authorization') });
    return server.fetch(input, init);
  };
  const issuer = freshIssuer();
  const client = createClient({ issuer, origins: ['https://api.test'], fetch: recording });
  await client.login({ username: 'u', password: 'p' });
  for (const url of [
    `${issuer}/api/me`,
    'https://api.test/api/me',
    'http://api.test/api/me',
    'https://evil.test/api/me',
    'https://api.test.evil.test/api/me',
  ]) {
    await client.fetch(url);
  }
  const sent = Object.fromEntries(
    seen.filter((s) => !s.url.endsWith('/api/login')).map((s) => [s.url, s.authorization]),
  );
  assert.equal(sent[`${issuer}/api/me`], `Bearer ${tok(1)}`);
  assert.equal(sent['https://api.test/api/me'], `Bearer ${tok(1)}`);
  assert.equal(sent['http://api.test/api/me'], null, 'plain http is another origin');
  assert.equal(sent['https://evil.test/api/me'], null);
  assert.equal(sent['https://api.test.evil.test/api/me'], null);
});

test('a token posted on the channel is adopted only if it is of the tab\'s own session', async () => {
  const server = fakeTokenmint({ cookieMode: true });
  const issuer = freshIssuer();
  const locks = fakeLocks();
  const tab = createClient({ issuer, cookie: true, fetch: server.fetch, locks });
  const planter = new BroadcastChannel(`tokenmint-refresh:${issuer}`);
  const settle = () => new Promise((resolve) => setTimeout(resolve, 50));
  try {
    // No session yet: a posted token is not adopted.
    planter.postMessage({ type: 'token', token: tok(99, 'attacker'), remainingMs: 900_000, lifetimeMs: 900_000 });
    await settle();
    assert.equal(tab.loggedIn, false);
    await tab.login({ username: 'u', password: 'p' });
    // Another session's token is not adopted; this session's is.
    planter.postMessage({ type: 'token', token: tok(98, 'attacker'), remainingMs: 900_000, lifetimeMs: 900_000 });
    await settle();
    assert.equal(await tab.getAccessToken(), tok(1));
    planter.postMessage({ type: 'token', token: tok(97, 's1'), remainingMs: 900_000, lifetimeMs: 900_000 });
    await settle();
    assert.equal(await tab.getAccessToken(), tok(97, 's1'));
  } finally {
    planter.close();
    tab.close();
  }
});

test('a login sends the device proof of the last login of that username, and keeps the new one', async () => {
  const server = fakeTokenmint();
  const store = new Map();
  const deviceStorage = {
    getItem: (k) => store.get(k) ?? null,
    setItem: (k, v) => store.set(k, v),
  };
  const client = createClient({ issuer: freshIssuer(), fetch: server.fetch, deviceStorage });
  await client.login({ username: 'Ann', password: 'p' });
  await client.login({ username: 'ann', password: 'p' });
  await client.login({ username: 'bob', password: 'p' });
  await client.login({ username: 'ann', password: 'p', tenant: 'acme' });
  await client.login({ username: 'ann', password: 'p' });
  const sent = server.state.loginBodies.map((l) => l.body.device_proof);
  // Per username (case-insensitively) and tenant; always the newest.
  assert.deepEqual(sent, [undefined, 'dp1', undefined, undefined, 'dp2']);
});

test('in cookie mode the device proof stays in its HttpOnly cookie, out of JavaScript', async () => {
  const server = fakeTokenmint({ cookieMode: true });
  const store = new Map();
  const deviceStorage = {
    getItem: (k) => store.get(k) ?? null,
    setItem: (k, v) => store.set(k, v),
  };
  const client = createClient({
    issuer: freshIssuer(),
    fetch: server.fetch,
    cookie: true,
    deviceStorage,
    locks: null,
    BroadcastChannel: null,
  });
  await client.login({ username: 'ann', password: 'p' });
  await client.login({ username: 'ann', password: 'p' });
  assert.equal(store.size, 0);
  assert.equal(server.state.loginBodies[1].body.device_proof, undefined);
});

/** A fake Tokenmint that speaks DPoP: it checks each proof's signature, htm, htu and (at
 * /api/me) ath with WebCrypto, binds to the proof's key, asks once for a nonce, and
 * refuses a bound token sent as Bearer. */
function fakeDpopTokenmint() {
  const state = { proofs: [], nonceAsked: 0, boundTo: null, authorizations: [] };
  const unb64 = (s) => Buffer.from(s, 'base64url');
  const json = (status, body, headers = {}) =>
    new Response(JSON.stringify(body), {
      status,
      headers: { 'content-type': 'application/json', 'dpop-nonce': 'n-1', ...headers },
    });
  async function verify(proof, method, url, token) {
    const [h, c, s] = proof.split('.');
    const header = JSON.parse(unb64(h));
    const claims = JSON.parse(unb64(c));
    const key = await crypto.subtle.importKey('jwk', header.jwk, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['verify']);
    const ok = await crypto.subtle.verify({ name: 'ECDSA', hash: 'SHA-256' }, key, unb64(s), new TextEncoder().encode(`${h}.${c}`));
    const u = new URL(url);
    const ath = token
      ? Buffer.from(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(token))).toString('base64url')
      : undefined;
    state.proofs.push({ header, claims });
    return ok && header.typ === 'dpop+jwt' && header.alg === 'ES256' && !('d' in header.jwk) &&
      claims.htm === method && claims.htu === `${u.origin}${u.pathname}` && claims.ath === ath
      ? JSON.stringify(header.jwk)
      : null;
  }
  async function fetch(input, init = {}) {
    const request = input instanceof Request ? input : new Request(input, init);
    const url = new URL(request.url);
    const proof = request.headers.get('dpop');
    state.authorizations.push(request.headers.get('authorization'));
    switch (url.pathname) {
      case '/api/login': {
        const jwk = proof && (await verify(proof, 'POST', request.url));
        if (!jwk) return json(400, { error: 'INVALID_DPOP_PROOF', message: 'bad proof' });
        const { claims } = state.proofs.at(-1);
        if (claims.nonce !== 'n-1') {
          state.nonceAsked += 1;
          return json(400, { error: 'USE_DPOP_NONCE', message: 'nonce' });
        }
        state.boundTo = jwk;
        return json(200, { access_token: tok(1), token: tok(1), token_type: 'DPoP', expires_in: 900, refresh_expires_in: 600, scope: '', session_id: 's1', refresh_token: 'r1' });
      }
      case '/api/me': {
        const [scheme, token] = (request.headers.get('authorization') || '').split(' ');
        const jwk = scheme === 'DPoP' && proof && (await verify(proof, 'GET', request.url, token));
        if (jwk !== state.boundTo) {
          return json(401, { error: 'AUTHENTICATION_FAILED', message: 'bound' }, { 'www-authenticate': 'DPoP error="invalid_token"' });
        }
        return json(200, { sub: 'u1' });
      }
      case '/api/logout':
        return new Response(null, { status: 204 });
      default:
        return json(404, { error: 'NOT_FOUND' });
    }
  }
  return { fetch, state };
}

test('with dpop, every request carries a proof by one non-extractable key, tokens go as DPoP, a nonce challenge is answered once', async () => {
  const server = fakeDpopTokenmint();
  const issuer = freshIssuer();
  const client = createClient({ issuer, dpop: true, indexedDB: null, fetch: server.fetch, origins: ['https://api.test'] });
  await client.login({ username: 'u', password: 'p' });
  assert.equal(server.state.nonceAsked, 1, 'the first login was asked for a nonce');
  const [first, second] = server.state.proofs;
  assert.equal(first.claims.nonce, undefined);
  assert.equal(second.claims.nonce, 'n-1', 'the retry carries the nonce');
  assert.notEqual(first.claims.jti, second.claims.jti, 'a fresh proof');
  assert.deepEqual(Object.keys(first.header.jwk).sort(), ['crv', 'kty', 'x', 'y'], 'a public key only');

  const me = await client.fetch(`${issuer}/api/me`);
  assert.equal(me.status, 200);
  const last = server.state.proofs.at(-1);
  assert.equal(last.claims.htm, 'GET');
  assert.equal(last.claims.nonce, 'n-1', 'the nonce kept from earlier answers');
  assert.deepEqual(last.header.jwk, first.header.jwk, 'the same key throughout');
  assert.match(server.state.authorizations.at(-1), /^DPoP /);

  // Another origin gets neither the token nor a proof.
  const seen = [];
  const elsewhere = createClient({
    issuer,
    dpop: true,
    indexedDB: null,
    fetch: async (input, init) => {
      const request = input instanceof Request ? input : new Request(input, init);
      seen.push([request.url, request.headers.get('authorization'), request.headers.get('dpop')]);
      return server.fetch(input, init);
    },
  });
  await elsewhere.login({ username: 'u', password: 'p' });
  await elsewhere.fetch('https://other.test/x');
  assert.deepEqual(seen.at(-1), ['https://other.test/x', null, null]);

  // Logout deletes the key: the next login is by a new one.
  await client.logout();
  await client.login({ username: 'u', password: 'p' });
  assert.notDeepEqual(server.state.proofs.at(-1).header.jwk, first.header.jwk);
});

test("with dpop, a proof refused because this machine's clock is off is sent again on the server's time, once", async () => {
  const serverAhead = 10 * 60 * 1000; // the server's clock is ten minutes ahead
  const seen = [];
  const fetch = async (input, init = {}) => {
    const request = input instanceof Request ? input : new Request(input, init);
    const proof = request.headers.get('dpop');
    const claims = JSON.parse(Buffer.from(proof.split('.')[1], 'base64url'));
    const serverNow = Date.now() + serverAhead;
    seen.push(claims.iat);
    const date = new Date(serverNow).toUTCString();
    if (Math.abs(claims.iat - serverNow / 1000) > 60) {
      return new Response(JSON.stringify({ error: 'INVALID_DPOP_PROOF', message: 'the DPoP proof is too old' }), {
        status: 400,
        headers: { 'content-type': 'application/json', date },
      });
    }
    return new Response(
      JSON.stringify({ access_token: tok(1), token_type: 'DPoP', expires_in: 900, refresh_expires_in: 600, scope: '', session_id: 's1', refresh_token: 'r1' }),
      { status: 200, headers: { 'content-type': 'application/json', date } },
    );
  };
  const client = createClient({ issuer: freshIssuer(), dpop: true, indexedDB: null, fetch });
  await client.login({ username: 'u', password: 'p' });
  assert.equal(seen.length, 2, 'refused once, then accepted');
  assert.ok(seen[1] - seen[0] >= 590, 'the second proof is on the server clock');
  // A refusal that the clock does not explain is not retried.
  const refusing = async (input, init) => {
    seen.push('refused');
    return new Response(JSON.stringify({ error: 'INVALID_DPOP_PROOF', message: 'bad' }), {
      status: 400,
      headers: { 'content-type': 'application/json', date: new Date().toUTCString() },
    });
  };
  const other = createClient({ issuer: freshIssuer(), dpop: true, indexedDB: null, fetch: refusing });
  await assert.rejects(other.login({ username: 'u', password: 'p' }), (e) => e.code === 'INVALID_DPOP_PROOF');
  assert.equal(seen.filter((s) => s === 'refused').length, 1);
});
