// DPoP in Chromium: the client library with `dpop: true` on an app of another origin
// than Tokenmint. Driven from tests/api/drivers/browser.rs (which serves the app page and
// a control endpoint that moves Tokenmint's clock and reads a session). Prints one JSON
// line of figures.
//
// Environment: APP (the app's origin), ISSUER (Tokenmint, also its public URL),
// CONTROL, USERNAME, PASSWORD.
import { env, launch } from './lib.mjs';
const ISSUER = env('ISSUER');
const CONTROL = env('CONTROL');
const credentials = { username: env('USERNAME'), password: env('PASSWORD') };

const control = async (path, method = 'GET') => (await fetch(`${CONTROL}${path}`, { method })).json();
// Tokenmint's clock is moved forward to expire tokens; proofs carry the page's clock,
// and Tokenmint refuses proofs more than 300 s old, so the pages' clocks move with it
// (each client reads `window.shift`).
let shift = 0;
const pages = new Set();
const advance = async (secs) => {
  await control(`/advance/${secs}`, 'POST');
  shift += secs * 1000;
  await Promise.all([...pages].filter((p) => !p.isClosed()).map((p) => p.evaluate((s) => { window.shift = s; }, shift)));
};
const session = (sid) => control(`/session/${sid}`);

/** The app in a new tab with a DPoP client. Its fetch records what a malicious script
 * on the page could copy: every token pair Tokenmint answers. */
async function openTab(context, cookie) {
  const page = await context.newPage();
  pages.add(page);
  await page.goto(env('APP'));
  await page.waitForFunction(() => window.ready === true);
  await page.evaluate(
    (issuer, cookie, shift) => {
      window.shift = shift;
      window.stolen = [];
      window.refreshes = 0;
      window.ended = [];
      const spying = async (input, init) => {
        const url = typeof input === 'string' ? input : input.url;
        if (url.includes('/api/refresh-token')) window.refreshes += 1;
        const response = await fetch(input, init);
        if (url.includes('/api/login') || url.includes('/api/refresh-token')) {
          response
            .clone()
            .json()
            .then((body) => window.stolen.push(body))
            .catch(() => {});
        }
        return response;
      };
      window.client = window.tokenmint.createClient({
        issuer,
        cookie,
        dpop: true,
        fetch: spying,
        now: () => Date.now() + window.shift,
      });
      window.client.addEventListener('session-ended', (e) => window.ended.push(e.detail.code));
    },
    ISSUER,
    cookie,
    shift,
  );
  return page;
}

const login = (page) =>
  page.evaluate((c) => window.client.login(c).then((r) => r.sessionId), credentials);
const me = (page) =>
  page.evaluate((issuer) =>
    window.client
      .fetch(`${issuer}/api/me`)
      .then(async (r) => ({ status: r.status, code: r.ok ? null : (await r.json()).error }))
      .catch((e) => ({ status: 0, code: String(e) })),
    ISSUER,
  );

const result = {};
const browser = await launch();
try {
  // 1. A script copies the tokens out of the page and replays them from elsewhere
  //    (Node's fetch, no key): refused, each.
  {
    const context = await browser.createBrowserContext();
    const tab = await openTab(context, false);
    await login(tab);
    const ok = await me(tab);
    const stolen = await tab.evaluate(() => window.stolen.at(-1));
    const replay = async (init, path) => {
      const response = await fetch(`${ISSUER}${path}`, init);
      let code = null;
      try {
        code = (await response.json()).error;
      } catch {
        // no body
      }
      return { status: response.status, code };
    };
    result.copied = {
      token_type: stolen.token_type,
      in_page: ok,
      access_as_dpop: await replay({ headers: { authorization: `DPoP ${stolen.access_token}` } }, '/api/me'),
      access_as_bearer: await replay({ headers: { authorization: `Bearer ${stolen.access_token}` } }, '/api/me'),
      refresh: await replay(
        {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ refresh_token: stolen.refresh_token }),
        },
        '/api/refresh-token',
      ),
      // The private key cannot be read out of the page either.
      key_exportable: await tab.evaluate(
        () =>
          new Promise((resolve) => {
            const open = indexedDB.open('tokenmint');
            open.onsuccess = () => {
              const get = open.result.transaction('dpop-keys').objectStore('dpop-keys').getAll();
              get.onsuccess = async () => {
                try {
                  await crypto.subtle.exportKey('jwk', get.result[0].privateKey);
                  resolve(true);
                } catch {
                  resolve(false);
                }
              };
            };
          }),
      ),
    };
    await context.close();
  }

  // 2. Five tabs (cookie mode: one session, one key in IndexedDB) refresh at once, for
  //    three rounds: all answered, no session revoked.
  {
    const context = await browser.createBrowserContext();
    const tabs = [await openTab(context, true)];
    const sid = await login(tabs[0]);
    for (let i = 1; i < 5; i += 1) tabs.push(await openTab(context, true));
    await Promise.all(tabs.slice(1).map((t) => t.evaluate(() => window.client.getAccessToken())));
    const rounds = [];
    for (let round = 0; round < 3; round += 1) {
      await advance(16 * 60); // every access token has expired for the server
      const answers = await Promise.all(tabs.flatMap((tab) => [0, 1, 2].map(() => me(tab))));
      rounds.push({
        ok: answers.filter((a) => a.status === 200).length,
        failures: answers.filter((a) => a.status !== 200),
      });
    }
    const chain = await session(sid);
    const ended = (await Promise.all(tabs.map((t) => t.evaluate(() => window.ended)))).flat();

    // 3. A reload keeps the key (IndexedDB) and so the bound session: a fresh page of
    //    the app (a new client, nothing in memory) refreshes with it.
    await tabs[0].reload();
    await tabs[0].waitForFunction(() => window.ready === true);
    for (const tab of tabs.slice(1)) await tab.close();
    const reloaded = await openTab(context, true);
    await advance(16 * 60);
    const afterReload = await me(reloaded);
    result.tabs = {
      rounds,
      rotations: chain.rotations,
      revoked: chain.revoked,
      session_ended: ended,
      after_reload: afterReload,
      revoked_after_reload: (await session(sid)).revoked,
    };
    await context.close();
  }
  console.log(JSON.stringify(result));
} finally {
  await browser.close();
}
