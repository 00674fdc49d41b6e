// Connect tickets in a real browser: the example WebSocket service (examples/ws_tickets.rs)
// serves a page on its own origin; the page logs in to Tokenmint across origins (CORS),
// asks for tickets and opens WebSockets with them. Driven from tests/api/drivers/browser.rs, which
// starts Tokenmint and the service; prints one JSON line of what happened.
//
// Environment: APP (the service's origin), USERNAME, PASSWORD, OTHER_AUDIENCE, TTL_MS.
import { env, launch, sleep } from './lib.mjs';

const browser = await launch();
try {
  const page = await browser.newPage();
  await page.goto(env('APP'));
  const run = (fn, ...args) => page.evaluate(fn, ...args);

  await run((u, p) => window.demo.login(u, p), env('USERNAME'), env('PASSWORD'));
  const result = {};

  // A ticket opens the socket once; the same ticket again is refused.
  const ticket = await run(() => window.demo.ticket());
  result.first = await run((t) => window.demo.connect(t, '/ws'), ticket);
  result.again = await run((t) => window.demo.connect(t, '/ws'), ticket);

  // Offline verification from JWKS accepts a fresh ticket.
  const offline = await run(() => window.demo.ticket());
  result.offline = await run((t) => window.demo.connect(t, '/ws-offline'), offline);

  // A ticket for another service, and an access token in ?ticket=: refused both ways.
  const other = await run((a) => window.demo.ticket(a), env('OTHER_AUDIENCE'));
  result.other_audience = await run((t) => window.demo.connect(t, '/ws'), other);
  result.other_audience_offline = await run((t) => window.demo.connect(t, '/ws-offline'), other);
  const access = await run(() => window.demo.accessToken());
  result.access_token = await run((t) => window.demo.connect(t, '/ws'), access);
  result.access_token_offline = await run((t) => window.demo.connect(t, '/ws-offline'), access);

  // An expired ticket: refused both ways.
  const stale = await run(() => window.demo.ticket());
  await sleep(Number(env('TTL_MS')) + 1100);
  result.expired = await run((t) => window.demo.connect(t, '/ws'), stale);
  result.expired_offline = await run((t) => window.demo.connect(t, '/ws-offline'), stale);

  // After logout, a fresh, unredeemed ticket of that session: redemption refuses it.
  // (Offline verification cannot know of the logout: it accepts it until it expires.)
  const orphan = await run(() => window.demo.ticket());
  await run(() => window.demo.logout());
  result.after_logout = await run((t) => window.demo.connect(t, '/ws'), orphan);
  result.after_logout_offline = await run((t) => window.demo.connect(t, '/ws-offline'), orphan);

  console.log(JSON.stringify(result));
} finally {
  await browser.close();
}
