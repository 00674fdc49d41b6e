// Issue 18: five tabs of an app on another origin share one cookie jar and refresh in
// cookie mode at the same moment, three rounds 200 ms apart, while some responses are
// delayed or dropped; then a reload, a wait longer than the leeway, and one more refresh.
// No refresh may fail and no session may be revoked. Then the theft case: a copy of an
// old cookie, replayed after the tabs moved on, is detected.
//
// Environment: ISSUER (Tokenmint's address, reached through a disturbing proxy), APP (the app's origin, any page), USERNAME,
// PASSWORD, LEEWAY_MS, REPS (default 30), SEED. Prints one JSON summary line.
import { cookiesOf, disturbingProxy, fetchIn, launch, random, sleep } from './lib.mjs';

const server = process.env.ISSUER;
const app = process.env.APP;
const username = process.env.USERNAME;
const password = process.env.PASSWORD;
const leewayMs = Number(process.env.LEEWAY_MS || 1000);
const reps = Number(process.env.REPS || 30);
const next = random(Number(process.env.SEED || 18));

const refresh = (page) => fetchIn(page, `${issuer}/api/refresh-token`, { method: 'POST', credentials: 'include' });
const summary = {
  repetitions: 0,
  refreshes: 0,
  answered: 0,
  lost: 0,
  ok: 0,
  dropped: 0,
  delayed: 0,
  failures: [],
  theft: null,
};

async function login(page) {
  const answer = await fetchIn(page, `${issuer}/api/login`, {
    method: 'POST',
    credentials: 'include',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username, password, cookie: true }),
  });
  if (answer.status !== 200 || answer.body.refresh_token !== undefined) {
    throw new Error(`login: ${JSON.stringify(answer)}`);
  }
  return answer.body;
}

function count(rep, round, answer) {
  summary.refreshes += 1;
  if (answer.status === 0) {
    // Dropped on the way and not retried by the browser: the page saw a network error.
    summary.lost += 1;
    return;
  }
  summary.answered += 1;
  if (answer.status === 200) {
    summary.ok += 1;
  } else {
    summary.failures.push({ rep, round, status: answer.status, error: answer.body?.error });
  }
}

// The tabs reach Tokenmint through a proxy that holds some refresh answers and drops
// others after the server answered them: a late Set-Cookie can put an older token back
// into the jar, and a dropped one leaves the jar with a token the server already spent.
let disturb = true;
const proxy = await disturbingProxy(server, (req) => {
  if (!disturb || !req.url.startsWith('/api/refresh-token')) return {};
  const roll = next();
  if (roll < 0.1) return { drop: true };
  if (roll < 0.35) return { delayMs: Math.floor(next() * 900) };
  return {};
});
const issuer = proxy.url;

const browser = await launch();
try {
  // One browser context: one cookie jar, shared by five tabs of the app.
  const context = await browser.createBrowserContext();
  const tabs = [];
  for (let i = 0; i < 5; i += 1) {
    const page = await context.newPage();
    await page.goto(`${app}/`);
    tabs.push(page);
  }
  for (let rep = 0; rep < reps; rep += 1) {
    // A new session for this repetition: the login replaces the jar's cookie.
    await login(tabs[rep % tabs.length]);
    disturb = true;
    // Three rounds 200 ms apart, each starting on time whatever is still in flight: a
    // round can leave before the previous one's responses arrive, and a delayed response
    // can arrive after later ones (the last Set-Cookie wins).
    const rounds = [0, 1, 2].map(async (round) => {
      await sleep(round * 200);
      const answers = await Promise.all(tabs.map((tab) => refresh(tab)));
      answers.forEach((answer) => count(rep, round, answer));
    });
    await Promise.all(rounds);
    await Promise.all(tabs.map((tab) => tab.reload()));
    // A quiet spell longer than the leeway, then a refresh with whatever the jar holds.
    disturb = false;
    await sleep(leewayMs + 500);
    const last = await fetchIn(tabs[2], `${issuer}/api/refresh-token`, { method: 'GET', credentials: 'include' });
    count(rep, 'after the leeway', last);
    if (last.status === 200) {
      const me = await fetchIn(tabs[2], `${issuer}/api/me`, {
        headers: { authorization: `Bearer ${last.body.access_token}` },
      });
      if (me.status !== 200) summary.failures.push({ rep, round: 'me', status: me.status });
    }
    summary.repetitions += 1;
  }
  summary.dropped = proxy.seen.dropped;
  summary.delayed = proxy.seen.delayed;
  await context.close();

  // Theft: a copy of the cookie, taken now, replayed once the tabs moved on twice.
  const thefts = await browser.createBrowserContext();
  const tab = await thefts.newPage();
  await tab.goto(`${app}/`);
  await login(tab);
  const first = await refresh(tab);
  const copied = (await cookiesOf(tab, `${issuer}/api/refresh-token`)).find((c) => c.name.endsWith('tokenmint_refresh'));
  await sleep(leewayMs + 300);
  const second = await refresh(tab);
  await sleep(leewayMs + 300);
  const third = await refresh(tab);
  const replay = await fetch(`${server}/api/refresh-token`, {
    method: 'POST',
    headers: { cookie: `${copied.name}=${copied.value}` },
  });
  const replayBody = await replay.json();
  const victim = await refresh(tab);
  summary.theft = {
    cookie_name: copied.name,
    before: [first.status, second.status, third.status],
    replay: { status: replay.status, error: replayBody.error },
    victim_after: { status: victim.status, error: victim.body?.error },
  };
  await thefts.close();
} finally {
  await browser.close();
  await proxy.close();
}
console.log(JSON.stringify(summary));
