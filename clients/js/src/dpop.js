// DPoP (RFC 9449) for the client: one non-extractable ES256 key per issuer and origin,
// kept in IndexedDB (so every tab of the app shares it and a reload keeps it), proofs
// signed with WebCrypto, and the server's nonces remembered per origin.

const DB = 'tokenmint';
const STORE = 'dpop-keys';

const b64url = (bytes) => {
  let s = '';
  for (const b of new Uint8Array(bytes)) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
};
const utf8 = (s) => new TextEncoder().encode(s);
const jsonPart = (value) => b64url(utf8(JSON.stringify(value)));

/** Runs one IndexedDB request to completion. */
const settle = (request) =>
  new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });

function openDb(indexedDB) {
  const request = indexedDB.open(DB, 1);
  request.onupgradeneeded = () => request.result.createObjectStore(STORE);
  return settle(request);
}

/**
 * The key store: IndexedDB when there is one, else this page's memory (a key that dies
 * with the page; Node, Safari's Lockdown Mode).
 */
function keyStore(indexedDB) {
  if (!indexedDB) {
    const memory = new Map();
    return {
      get: async (name) => memory.get(name),
      add: async (name, pair) => {
        if (!memory.has(name)) memory.set(name, pair);
        return memory.get(name);
      },
      delete: async (name) => {
        memory.delete(name);
      },
    };
  }
  const inStore = async (mode, work) => {
    const db = await openDb(indexedDB);
    try {
      return await work(db.transaction(STORE, mode).objectStore(STORE));
    } finally {
      db.close();
    }
  };
  return {
    get: (name) => inStore('readonly', (store) => settle(store.get(name))),
    // Two tabs generating at once: the first key stored wins, both use it.
    add: (name, pair) =>
      inStore('readwrite', async (store) => {
        const existing = await settle(store.get(name));
        if (existing) return existing;
        await settle(store.add(pair, name));
        return pair;
      }).catch(async (error) => {
        const existing = await inStore('readonly', (store) => settle(store.get(name)));
        if (existing) return existing;
        throw error;
      }),
    delete: (name) => inStore('readwrite', (store) => settle(store.delete(name))),
  };
}

/**
 * DPoP for one client: `proof(method, url, accessToken?)` signs a proof with the shared
 * key (made on first use), `remember(response)` keeps the nonce an answer carries, and
 * `forget()` deletes the key (at logout).
 */
export function dpopSigner({ issuer, crypto, indexedDB, now }) {
  const subtle = crypto.subtle;
  const store = keyStore(indexedDB);
  const name = `${issuer}`;
  const nonces = new Map(); // origin -> the newest nonce it sent
  let pair = null; // Promise<{privateKey, publicKey, jwk}>
  // The server's clock minus ours, learned when a proof was refused for its time: a
  // proof's iat must be within minutes of the server's clock, and machines drift.
  let skewMs = 0;

  async function load() {
    let keys = await store.get(name);
    if (!keys) {
      // The private key cannot be exported: script on the page can use it while the
      // page runs, but cannot copy it elsewhere.
      const fresh = await subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, [
        'sign',
        'verify',
      ]);
      keys = await store.add(name, { privateKey: fresh.privateKey, publicKey: fresh.publicKey });
    }
    const { kty, crv, x, y } = await subtle.exportKey('jwk', keys.publicKey);
    return { privateKey: keys.privateKey, jwk: { kty, crv, x, y } };
  }

  function key() {
    if (!pair) {
      pair = load().catch((error) => {
        pair = null;
        throw error;
      });
    }
    return pair;
  }

  return {
    /** A proof for `method` on `url` (its query and fragment left out), with `ath` for
     * `accessToken` at a resource and the origin's last nonce. */
    async proof(method, url, accessToken) {
      const { privateKey, jwk } = await key();
      const target = new URL(url);
      const claims = {
        jti: b64url(crypto.getRandomValues(new Uint8Array(16))),
        htm: method.toUpperCase(),
        htu: `${target.origin}${target.pathname}`,
        iat: Math.floor((now() + skewMs) / 1000),
      };
      const nonce = nonces.get(target.origin);
      if (nonce) claims.nonce = nonce;
      if (accessToken) claims.ath = b64url(await subtle.digest('SHA-256', utf8(accessToken)));
      const signed = `${jsonPart({ typ: 'dpop+jwt', alg: 'ES256', jwk })}.${jsonPart(claims)}`;
      const signature = await subtle.sign(
        { name: 'ECDSA', hash: 'SHA-256' },
        privateKey,
        utf8(signed),
      );
      return `${signed}.${b64url(signature)}`;
    },

    /** Keeps the `DPoP-Nonce` of an answer from `url`; whether it carried a new one. */
    remember(url, response) {
      const nonce = response.headers.get('dpop-nonce');
      if (!nonce) return false;
      const origin = new URL(url).origin;
      const fresh = nonces.get(origin) !== nonce;
      nonces.set(origin, nonce);
      return fresh;
    },

    /**
     * After a refused proof: takes the server's time from the answer's `Date` header.
     * Whether our clock was off by more than 30 s (so that the request is worth sending
     * again with a proof on the server's time).
     */
    learnClock(response) {
      const date = Date.parse(response.headers.get('date') || '');
      if (Number.isNaN(date)) return false;
      const skew = date - now();
      if (Math.abs(skew - skewMs) <= 30_000) return false;
      skewMs = skew;
      return true;
    },

    /** Deletes the key: the next login makes a new one. */
    async forget() {
      pair = null;
      nonces.clear();
      await store.delete(name);
    },
  };
}

/** Whether an answer is the DPoP error `code`: a resource's 401 challenge
 * (`error="<code>"`), or a token endpoint's 400 body (`<code>` or `<CODE>`). */
async function isDpopError(response, code) {
  if (response.status === 401) {
    return (response.headers.get('www-authenticate') || '').includes(`error="${code}"`);
  }
  if (response.status !== 400) return false;
  try {
    const body = await response.clone().json();
    return body.error === code || body.error === code.toUpperCase();
  } catch {
    return false;
  }
}

/** Whether an answer refused the proof itself. */
export const refusesProof = (response) => isDpopError(response, 'invalid_dpop_proof');

/** Whether an answer asks for a proof with the server's nonce. */
export const asksForNonce = (response) => isDpopError(response, 'use_dpop_nonce');
