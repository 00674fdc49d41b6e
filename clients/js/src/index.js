// @tokenmint/client: the browser half of Tokenmint's refresh flow.
//
// - `fetch` adds the bearer token; on a 401 whose code is TOKEN_EXPIRED it refreshes once
//   and retries once. Any other 401 goes back to the caller untouched.
// - One refresh at a time: per tab (one promise), and in cookie mode, where the tabs of an
//   origin share one session, across tabs (Web Locks), with the new access token handed
//   to the other tabs (BroadcastChannel). A tab adopts a token from the channel only if
//   it is of the session the tab holds (its `sid`): anything else on the origin could post
//   one, and a planted token of another session would log the tab into that session. A
//   tab with no session yet refreshes itself. A refresh happens only if the token that
//   failed is still the current one, so a burst of 401s in five tabs costs one rotation.
// - A refresh whose answer is lost (network error) is retried: the server answers a
//   spent refresh token with the session's current one, so nobody is logged out.
// - The access token goes only to the issuer's origin and the origins the app lists
//   (`origins`): never to another origin or a plain-HTTP URL it did not name.
// - Cookie mode: the refresh token lives in an HttpOnly cookie and never reaches
//   JavaScript. Otherwise it is kept in this object's memory only: never in
//   localStorage or sessionStorage.
// - Device proofs: a login's `device_proof` is kept per issuer, tenant and username (in
//   `localStorage`, or the HttpOnly device cookie in cookie mode) and sent with the next
//   login of that username, so that its owner is not slowed down by others' failures.
//   It is no credential: alone it logs nobody in.
// - `session-ended` fires once per session when a refresh is refused for good
//   (REFRESH_TOKEN_REUSED, TOKEN_REVOKED, TOKEN_EXPIRED, AUTHENTICATION_FAILED).
// - `dpop: true` (RFC 9449): every request to Tokenmint and the listed origins carries a
//   proof signed by a non-extractable key kept in IndexedDB (one per origin, shared by
//   the tabs, deleted at logout), so the tokens are bound to it: copied out of the page,
//   they are useless. Nonces are kept from every answer; a nonce challenge is answered
//   once with a fresh proof, and so is a proof refused while this machine's clock was
//   off (the server's `Date` then sets the proofs' clock).
//
// No dependencies; plain ES module.

import { asksForNonce, dpopSigner, refusesProof } from './dpop.js';

const ENDED = new Set([
  'REFRESH_TOKEN_REUSED',
  'TOKEN_REVOKED',
  'TOKEN_EXPIRED',
  'AUTHENTICATION_FAILED',
]);

/** An error from Tokenmint: `code` is API.md's error code, `status` the HTTP status. */
export class TokenmintError extends Error {
  constructor(status, code, message) {
    super(message || code || `HTTP ${status}`);
    this.name = 'TokenmintError';
    this.status = status;
    this.code = code;
  }
}

async function errorOf(response) {
  let body = {};
  try {
    body = await response.clone().json();
  } catch {
    // not JSON: the status says enough
  }
  return new TokenmintError(response.status, body.error, body.message);
}

/** Whether a 401 says the access token expired (and only that). */
async function saysExpired(response) {
  if (response.status !== 401) return false;
  try {
    const body = await response.clone().json();
    return body && body.error === 'TOKEN_EXPIRED';
  } catch {
    return false;
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** The `sid` claim of a JWT, read without verifying (the server verifies every use). */
function sidOf(token) {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(atob(part)).sid;
  } catch {
    return undefined;
  }
}

/**
 * Creates a client for the Tokenmint at `issuer` (its base URL).
 *
 * @param {object} options
 * @param {string} options.issuer Tokenmint's base URL, e.g. `https://id.example.com`.
 * @param {boolean} [options.cookie=false] Keep the refresh token in Tokenmint's HttpOnly
 *   cookie (recommended for browsers); the app's origin must be in
 *   `TOKENMINT_CORS_ORIGINS`.
 * @param {number} [options.refreshMarginMs=30000] Refresh this long before the access
 *   token expires (at most a quarter of its lifetime). Measured on this machine's clock
 *   from when the token arrived, so a skewed clock does not matter.
 * @param {number} [options.retries=3] Retries of a refresh whose answer was lost.
 * @param {string[]} [options.origins=[]] Origins besides the issuer's (e.g.
 *   `https://api.example.com`) whose requests `fetch` gives the access token. Any other
 *   URL is fetched without it.
 * @param {Storage|null} [options.deviceStorage] Where device proofs are kept outside
 *   cookie mode (default `localStorage`; `null` keeps none).
 * @param {typeof fetch} [options.fetch] For tests.
 * @param {{request: Function}|null} [options.locks] For tests (`navigator.locks`).
 * @param {typeof BroadcastChannel|null} [options.BroadcastChannel] For tests.
 * @param {() => number} [options.now] For tests (`Date.now`).
 */
export function createClient(options) {
  if (!options || !options.issuer) throw new TypeError('createClient: issuer is required');
  const issuer = options.issuer.replace(/\/+$/, '');
  // Exact origins (scheme, host and port): `http://api.example.com` is not
  // `https://api.example.com`.
  const bearerOrigins = new Set([
    new URL(issuer).origin,
    ...(options.origins ?? []).map((origin) => new URL(origin).origin),
  ]);
  const cookie = Boolean(options.cookie);
  // Where device proofs are kept outside cookie mode (the browser's cookie holds it there).
  const devices =
    options.deviceStorage !== undefined
      ? options.deviceStorage
      : typeof localStorage !== 'undefined'
        ? localStorage
        : null;
  const deviceKey = (username, tenant) =>
    `tokenmint.device:${issuer}:${tenant || 'default'}:${String(username).toLowerCase()}`;
  const storedProof = (key) => {
    try {
      return devices && !cookie ? devices.getItem(key) : null;
    } catch {
      return null; // storage refused (private mode): the login is simply anonymous
    }
  };
  const keepProof = (key, proof) => {
    try {
      if (devices && !cookie && proof) devices.setItem(key, proof);
    } catch {
      // storage refused: nothing kept
    }
  };
  const marginMs = options.refreshMarginMs ?? 30_000;
  const retries = options.retries ?? 3;
  const rawFetch = options.fetch ?? globalThis.fetch.bind(globalThis);
  const now = options.now ?? (() => Date.now());
  // DPoP: tokens bound to a key of this origin that scripts cannot export.
  const signer = options.dpop
    ? dpopSigner({
        issuer,
        crypto: options.crypto ?? globalThis.crypto,
        indexedDB: options.indexedDB !== undefined ? options.indexedDB : globalThis.indexedDB ?? null,
        now,
      })
    : null;
  const scheme = signer ? 'DPoP' : 'Bearer';

  /**
   * Sends a request to Tokenmint or a listed origin: with a DPoP proof when DPoP is on,
   * and `token` (if given) in `Authorization`. Keeps the nonce of every answer, and sends
   * once more, with a fresh proof, when the answer asks for the nonce it just gave.
   */
  async function send(input, init, token) {
    const attempt = async () => {
      if (input instanceof Request) {
        const request = new Request(input.clone(), init);
        if (signer) {
          request.headers.set('dpop', await signer.proof(request.method, request.url, token));
        }
        if (token) request.headers.set('authorization', `${scheme} ${token}`);
        return rawFetch(request);
      }
      const headers = new Headers(init.headers);
      if (signer) headers.set('dpop', await signer.proof(init.method ?? 'GET', String(input), token));
      if (token) headers.set('authorization', `${scheme} ${token}`);
      return rawFetch(input, { ...init, headers });
    };
    const url = input instanceof Request ? input.url : String(input);
    const response = await attempt();
    if (!signer) return response;
    const retry =
      (signer.remember(url, response) && (await asksForNonce(response))) ||
      ((await refusesProof(response)) && signer.learnClock(response));
    if (!retry) return response;
    // Once, with a fresh proof: the new nonce, or our clock set to the server's.
    const retried = await attempt();
    signer.remember(url, retried);
    return retried;
  }
  // Tabs share a session only through the cookie: in memory mode each tab has its own
  // session, and nothing is coordinated or handed between tabs.
  const locks = !cookie
    ? null
    : options.locks !== undefined
      ? options.locks
      : globalThis.navigator?.locks ?? null;
  const Channel = !cookie
    ? null
    : options.BroadcastChannel !== undefined
      ? options.BroadcastChannel
      : globalThis.BroadcastChannel ?? null;

  const events = new EventTarget();
  const lockName = `tokenmint-refresh:${issuer}`;
  const channel = Channel ? new Channel(lockName) : null;

  /** @type {{token: string, expiresAt: number, lifetimeMs: number} | null} */
  let access = null;
  let refreshToken = null; // memory mode only
  let sessionId = null; // the session this tab holds (`session_id` of its last pair)
  let inflight = null;
  let ended = false; // session-ended already fired for this session
  let arrivals = []; // resolvers waiting for another tab's token

  const credentials = cookie ? 'include' : 'same-origin';

  function adopt(token, expiresInSecs, receivedAt = now()) {
    const lifetimeMs = expiresInSecs * 1000;
    access = { token, expiresAt: receivedAt + lifetimeMs, lifetimeMs };
    ended = false;
  }

  function share() {
    if (channel && access) {
      channel.postMessage({
        type: 'token',
        token: access.token,
        remainingMs: access.expiresAt - now(),
        lifetimeMs: access.lifetimeMs,
      });
    }
  }

  function sessionEnded(code, { broadcast = true } = {}) {
    const hadSession = !ended;
    access = null;
    refreshToken = null;
    sessionId = null;
    ended = true;
    if (broadcast && channel) channel.postMessage({ type: 'ended', code });
    if (hadSession) events.dispatchEvent(new CustomEvent('session-ended', { detail: { code } }));
  }

  if (channel) {
    channel.onmessage = (event) => {
      const message = event.data || {};
      if (
        message.type === 'token' &&
        typeof message.token === 'string' &&
        sessionId !== null &&
        sidOf(message.token) === sessionId
      ) {
        // Another tab refreshed: this tab's session's new access token (unless a later
        // one is here already: messages can arrive late).
        const at = now();
        const expiresAt = at + message.remainingMs;
        if (!access || expiresAt > access.expiresAt) {
          access = {
            token: message.token,
            expiresAt,
            lifetimeMs: message.lifetimeMs,
          };
          ended = false;
        }
      } else if (message.type === 'ended') {
        sessionEnded(message.code, { broadcast: false });
      }
      const waiting = arrivals;
      arrivals = [];
      waiting.forEach((resolve) => resolve());
    };
  }

  function fresh() {
    if (!access) return false;
    const margin = Math.min(marginMs, access.lifetimeMs / 4);
    return now() < access.expiresAt - margin;
  }

  async function callRefresh() {
    const init = { method: 'POST', credentials, headers: {} };
    if (!cookie) {
      if (!refreshToken) throw new TokenmintError(401, 'AUTHENTICATION_FAILED', 'not logged in');
      init.headers['content-type'] = 'application/json';
      init.body = JSON.stringify({ refresh_token: refreshToken });
    }
    let lastError;
    for (let attempt = 0; attempt <= retries; attempt += 1) {
      let response;
      try {
        response = await send(`${issuer}/api/refresh-token`, init);
      } catch (error) {
        // The answer was lost (or never came): the server may have rotated. Presenting
        // the same token again gets the session's current one.
        lastError = error;
        await sleep(100 * 2 ** attempt);
        continue;
      }
      if (response.ok) {
        const body = await response.json();
        if (!cookie && body.refresh_token) refreshToken = body.refresh_token;
        if (body.session_id) sessionId = body.session_id;
        adopt(body.access_token, body.expires_in);
        share();
        return access.token;
      }
      const error = await errorOf(response);
      if (response.status === 401 && ENDED.has(error.code)) {
        sessionEnded(error.code);
      }
      throw error;
    }
    throw lastError;
  }

  /**
   * A fresh access token: the current one unless `failed` is the current one (it was
   * refused) or it is about to expire. One refresh at a time, in this tab and across tabs.
   */
  function refresh(failed) {
    const needed = () => !access || (failed ? access.token === failed : !fresh());
    if (!needed()) return Promise.resolve(access.token);
    if (inflight) return inflight;
    const run = async () => (needed() ? callRefresh() : access.token);
    // Across tabs: if no other tab holds the lock, refresh at once. If one does, it is
    // refreshing the shared session: wait for the lock, then for its token to arrive on
    // the channel (it is posted before the lock is let go, but may be delivered after
    // this tab gets the lock), and refresh only if none came.
    const afterOther = async () => {
      if (needed()) {
        await new Promise((resolve) => {
          arrivals.push(resolve);
          setTimeout(resolve, 1000);
        });
      }
      return run();
    };
    const shared = locks
      ? locks
          .request(lockName, { ifAvailable: true }, async (lock) => (lock ? run() : null))
          .then((token) => token ?? locks.request(lockName, afterOther))
      : run();
    inflight = shared.finally(() => {
      inflight = null;
    });
    return inflight;
  }

  /** Logs in; the token pair is kept (the refresh token in the cookie, or in memory). */
  async function login({ username, password, tenant, client_id: clientId, scope }) {
    const body = { username, password };
    if (tenant) body.tenant = tenant;
    if (clientId) body.client_id = clientId;
    if (scope) body.scope = scope;
    if (cookie) body.cookie = true;
    const device = deviceKey(username, tenant);
    const proof = storedProof(device);
    if (proof) body.device_proof = proof;
    const response = await send(`${issuer}/api/login`, {
      method: 'POST',
      credentials,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    if (!response.ok) throw await errorOf(response);
    const pair = await response.json();
    keepProof(device, pair.device_proof);
    refreshToken = cookie ? null : pair.refresh_token;
    sessionId = pair.session_id ?? null;
    adopt(pair.access_token, pair.expires_in);
    share();
    return { scope: pair.scope, sessionId: pair.session_id };
  }

  /** Forgets this tab's session (and tells the other tabs): it was ended on purpose. */
  function forget() {
    access = null;
    refreshToken = null;
    sessionId = null;
    ended = true;
    if (channel) channel.postMessage({ type: 'ended', code: 'LOGGED_OUT' });
  }

  /** Ends the session at Tokenmint (refresh token and access token) and here; with
   * DPoP, the key goes too (the next login makes a new one). */
  async function logout() {
    const token = access ? access.token : undefined;
    const body = !cookie && refreshToken ? { refresh_token: refreshToken } : {};
    forget();
    const response = await send(
      `${issuer}/api/logout`,
      {
        method: 'POST',
        credentials,
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      },
      token,
    );
    if (signer) await signer.forget();
    if (!response.ok && response.status !== 401) throw await errorOf(response);
  }

  /** The access token, refreshed first if it is missing or about to expire. */
  async function getAccessToken() {
    return fresh() ? access.token : refresh();
  }

  /**
   * For libraries that call back when a token expired and retry with what it returns:
   * a fresh token (one refresh, however many callers ask at once).
   */
  async function onTokenExpired() {
    return refresh(access ? access.token : undefined);
  }

  /**
   * `fetch` with the bearer token (for the issuer's origin and the listed `origins` only;
   * other URLs are fetched without it). On a 401 TOKEN_EXPIRED it refreshes once and
   * retries once; any other answer is returned as it is. A body that is a stream cannot be sent
   * twice: pass strings, FormData, Blobs or a Request.
   */
  async function authorizedFetch(input, init = {}) {
    const target = new Request(input instanceof Request ? input.clone() : input, init);
    if (!bearerOrigins.has(new URL(target.url).origin)) {
      // Not the issuer's nor a listed origin: the token stays here.
      return rawFetch(input, init);
    }
    const attempt = (token) => send(input, init, token);
    const token = await getAccessToken();
    const response = await attempt(token);
    if (!(await saysExpired(response))) return response;
    let next;
    try {
      next = await refresh(token);
    } catch {
      return response;
    }
    return attempt(next);
  }

  /** A connect ticket for `audience` (see Tokenmint's "WebSockets and other URLs"). */
  async function ticket(audience, scope) {
    const body = scope ? { audience, scope } : { audience };
    const response = await authorizedFetch(`${issuer}/api/tickets`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    if (response.status !== 201) throw await errorOf(response);
    return (await response.json()).ticket;
  }

  /** The user's live sessions (every page), newest first; `current` marks this one. */
  async function listSessions() {
    const sessions = [];
    let cursor = null;
    do {
      const query = cursor ? `?limit=200&cursor=${encodeURIComponent(cursor)}` : '?limit=200';
      const response = await authorizedFetch(`${issuer}/api/sessions${query}`);
      if (response.status !== 200) throw await errorOf(response);
      const page = await response.json();
      sessions.push(...page.items);
      cursor = page.next_cursor;
    } while (cursor);
    return sessions;
  }

  /**
   * Ends one of the user's sessions (its tokens fail at once everywhere). Ending this
   * tab's own session logs it out here too, as `logout` does.
   */
  async function endSession(id) {
    const response = await authorizedFetch(
      `${issuer}/api/sessions/${encodeURIComponent(id)}`,
      { method: 'DELETE' },
    );
    if (response.status !== 204) throw await errorOf(response);
    if (id === sessionId) forget();
  }

  /** Ends every session of the user but this one; how many it ended. */
  async function endOtherSessions() {
    const response = await authorizedFetch(`${issuer}/api/sessions/revoke-others`, {
      method: 'POST',
    });
    if (response.status !== 200) throw await errorOf(response);
    return (await response.json()).revoked;
  }

  return {
    login,
    logout,
    listSessions,
    endSession,
    endOtherSessions,
    fetch: authorizedFetch,
    getAccessToken,
    onTokenExpired,
    ticket,
    /** Whether this tab holds an access token now. */
    get loggedIn() {
      return access !== null;
    },
    addEventListener: events.addEventListener.bind(events),
    removeEventListener: events.removeEventListener.bind(events),
    /** Stops listening to other tabs. */
    close() {
      if (channel) channel.close();
    },
  };
}
