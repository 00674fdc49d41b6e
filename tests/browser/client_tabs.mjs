// The browser client library (clients/js) in Chromium against the real server. Driven
// from tests/api/drivers/browser.rs, which serves the app page (another origin than Tokenmint)
// and a control endpoint that moves Tokenmint's clock and reports a session's rotation
// chain. Prints one JSON line of figures.
//
// Environment: APP (the app's origin), ISSUER (Tokenmint), CONTROL, USERNAME, PASSWORD.
import { env, launch, cookiesOf, sleep } from './lib.mjs';
const ISSUER = env('ISSUER');
const CONTROL = env('CONTROL');
const credentials = { username: env('USERNAME'), password: env('PASSWORD') };

const control = async (path, method = 'GET') => (await fetch(`${CONTROL}${path}`, { method })).json();
const advance = (secs) => control(`/advance/${secs}`, 'POST');
const session = (sid) => control(`/session/${sid}`);

/** Opens the app in a new tab with a client for `issuer`; counts its refresh requests and
 * session-ended events in the page. */
async function openTab(browser, issuer, cookie) {
  const page = await browser.newPage();
  await page.goto(env('APP'));
  await page.waitForFunction(() => window.ready === true);
  await page.evaluate(
    (issuer, cookie) => {
      window.refreshes = 0;
      window.ended = [];
      const counting = (input, init) => {
        const url = typeof input === 'string' ? input : input.url;
        if (url.includes('/api/refresh-token')) window.refreshes += 1;
        return fetch(input, init);
      };
      window.client = window.tokenmint.createClient({ issuer, cookie, fetch: counting });
      window.client.addEventListener('session-ended', (e) => window.ended.push(e.detail.code));
    },
    issuer,
    cookie,
  );
  return page;
}

const login = (page) =>
  page.evaluate((c) => window.client.login(c).then((r) => r.sessionId), credentials);
const me = (page, issuer = ISSUER) =>
  page.evaluate(
    (issuer) =>
      window.client
        .fetch(`${issuer}/api/me`)
        .then(async (r) => ({ status: r.status, code: r.ok ? null : (await r.json()).error }))
        .catch((e) => ({ status: 0, code: String(e) })),
    issuer,
  );
const pageState = (page) =>
  page.evaluate(() => ({
    refreshes: window.refreshes,
    ended: window.ended,
    cookie: document.cookie,
    localStorage: localStorage.length,
    sessionStorage: sessionStorage.length,
  }));

const result = {};
const browser = await launch();
try {
  // 1. Five tabs of one app (cookie mode) with expired access tokens fire at once.
  {
    const context = await browser.createBrowserContext();
    const tabs = [await openTab(context, ISSUER, true)];
    const sid = await login(tabs[0]);
    for (let i = 1; i < 5; i += 1) tabs.push(await openTab(context, ISSUER, true));
    // The new tabs get a token from the shared session: each refreshes once (a tab with no
    // session adopts no token from the channel).
    await Promise.all(tabs.slice(1).map((t) => t.evaluate(() => window.client.getAccessToken())));
    const warmup = await session(sid);
    await advance(16 * 60); // every access token is now expired for the server
    const answers = await Promise.all(
      tabs.flatMap((tab) => [0, 1, 2].map(() => me(tab))),
    );
    const after = await session(sid);
    const states = await Promise.all(tabs.map(pageState));
    result.five_tabs = {
      requests: answers.length,
      ok: answers.filter((a) => a.status === 200).length,
      failures: answers.filter((a) => a.status !== 200),
      warmup_rotations: warmup.rotations,
      burst_rotations: after.rotations - warmup.rotations,
      revoked: after.revoked,
      refresh_requests: states.reduce((n, s) => n + s.refreshes, 0),
      session_ended: states.flatMap((s) => s.ended),
    };
    await context.close();
  }

  // 2. A refresh whose answer is lost after the server answered it: the browser aborts
  //    it at the response stage (DevTools Fetch domain), so the page sees a network
  //    error; the library retries and converges.
  for (const cookie of [false, true]) {
    const context = await browser.createBrowserContext();
    const tab = await openTab(context, ISSUER, cookie);
    const cdp = await tab.createCDPSession();
    let aborted = 0;
    await cdp.send('Fetch.enable', {
      patterns: [{ urlPattern: '*/api/refresh-token*', requestStage: 'Response' }],
    });
    cdp.on('Fetch.requestPaused', async (event) => {
      if (event.request.method === 'POST' && aborted === 0) {
        aborted += 1;
        await cdp.send('Fetch.failRequest', { requestId: event.requestId, errorReason: 'ConnectionReset' });
      } else {
        await cdp.send('Fetch.continueResponse', { requestId: event.requestId });
      }
    });
    const sid = await login(tab);
    await advance(16 * 60);
    const answer = await me(tab);
    const chain = await session(sid);
    const state = await pageState(tab);
    result[cookie ? 'lost_answer_cookie' : 'lost_answer_memory'] = {
      answer,
      aborted,
      refresh_requests: state.refreshes,
      rotations: chain.rotations,
      revoked: chain.revoked,
      session_ended: state.ended,
    };
    await cdp.detach();
    await context.close();
  }

  // 3. Cookie mode: the refresh token is never visible to scripts, survives a reload, and
  //    the app on another origin works with CORS credentials.
  {
    const context = await browser.createBrowserContext();
    const tab = await openTab(context, ISSUER, true);
    await login(tab);
    const before = await pageState(tab);
    const jar = await cookiesOf(tab, `${ISSUER}/api/refresh-token`);
    await tab.reload();
    await tab.waitForFunction(() => window.ready === true);
    const reloaded = await openTab(context, ISSUER, true); // a fresh page of the app
    const afterReload = await me(reloaded);
    const issuerPage = await context.newPage();
    await issuerPage.goto(`${ISSUER}/healthz`);
    result.cookie_mode = {
      app_document_cookie: before.cookie,
      issuer_document_cookie: await issuerPage.evaluate(() => document.cookie),
      http_only: jar.filter((c) => c.name.includes('tokenmint_refresh')).map((c) => c.httpOnly),
      device_http_only: jar
        .filter((c) => c.name.includes('tokenmint_device'))
        .map((c) => c.httpOnly),
      local_storage: before.localStorage,
      session_storage: before.sessionStorage,
      after_reload: afterReload,
    };
    await context.close();
  }

  // 4. A 401 that is not TOKEN_EXPIRED goes back without a refresh; a reuse detection
  //    ends the session, and the app hears it once.
  {
    const context = await browser.createBrowserContext();
    const tab = await openTab(context, ISSUER, true);
    const sid = await login(tab);
    const token = await tab.evaluate(() => window.client.getAccessToken());
    await fetch(`${ISSUER}/api/token/revoke`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ token }),
    });
    const revoked = await me(tab);
    const afterRevoked = await pageState(tab);

    const [stolen] = (await cookiesOf(tab, `${ISSUER}/api/refresh-token`)).filter((c) =>
      c.name.includes('tokenmint_refresh'),
    );
    await tab.evaluate(() => window.client.onTokenExpired());
    await advance(10); // more than the reuse leeway: the next refresh rotates
    await tab.evaluate(() => window.client.onTokenExpired());
    await advance(10); // the stolen copy was spent more than the leeway ago
    // The stolen copy comes back (as if an attacker's browser used it).
    const cdp = await tab.createCDPSession();
    await cdp.send('Network.setCookie', { ...stolen, url: `${ISSUER}/` });
    await cdp.detach();
    const reuse = await tab.evaluate(() =>
      window.client.onTokenExpired().then(
        () => 'accepted',
        (e) => e.code,
      ),
    );
    const later = await me(tab);
    await sleep(50);
    const final = await pageState(tab);
    const chain = await session(sid);
    result.refusals = {
      revoked,
      refreshes_after_revoked: afterRevoked.refreshes,
      reuse,
      later,
      session_ended: final.ended,
      revoked_session: chain.revoked,
    };
    await context.close();
  }
  // 5. Sessions and devices: two browsers (contexts) of one user; the first lists both,
  //    sees which one it is and the other's user agent, and ends the other.
  {
    const laptop = await browser.createBrowserContext();
    const phone = await browser.createBrowserContext();
    const a = await openTab(laptop, ISSUER, true);
    const b = await openTab(phone, ISSUER, true);
    const aSid = await login(a);
    const earlier = await a.evaluate(() => window.client.endOtherSessions());
    const bSid = await login(b);
    const listed = await a.evaluate(() => window.client.listSessions());
    const userAgent = await b.evaluate(() => navigator.userAgent);
    await a.evaluate((id) => window.client.endSession(id), bSid);
    result.sessions = {
      earlier_ended: earlier,
      listed: listed.map((s) => ({
        is_laptop: s.id === aSid,
        is_phone: s.id === bSid,
        current: s.current,
        same_user_agent: s.user_agent === userAgent,
        ip: s.ip,
      })),
      phone_after: await me(b),
      laptop_after: await me(a),
    };
    await laptop.close();
    await phone.close();
  }
  console.log(JSON.stringify(result));
} finally {
  await browser.close();
}
