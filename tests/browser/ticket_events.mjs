// Security events closing live sockets, in a real browser: the example WebSocket service
// (examples/ws_tickets.rs, with EVENTS_API_KEY) polls Tokenmint's security events and
// closes the sockets of what was revoked. A tab holds a socket; the session is refreshed
// (nothing closes); another tab of the same session logs out: the socket closes with
// 4001 within seconds, and another user's socket stays open. Driven from
// tests/api/drivers/browser.rs; prints one JSON line of what happened.
//
// Environment: APP (the service's origin), USERNAME, PASSWORD, OTHER_USERNAME,
// OTHER_PASSWORD.
import { env, launch, sleep } from './lib.mjs';

const browser = await launch();
try {
  const tab = await browser.newPage();
  const otherTab = await browser.newPage();
  // Another user, in a profile of their own.
  const otherContext = await browser.createBrowserContext();
  const otherUser = await otherContext.newPage();
  for (const page of [tab, otherTab, otherUser]) await page.goto(env('APP'));
  const result = {};

  await tab.evaluate((u, p) => window.demo.login(u, p), env('USERNAME'), env('PASSWORD'));
  result.opened = await tab.evaluate(async () => window.demo.watch(await window.demo.ticket()));
  await otherUser.evaluate((u, p) => window.demo.login(u, p), env('OTHER_USERNAME'), env('OTHER_PASSWORD'));
  result.other_opened = await otherUser.evaluate(async () => window.demo.watch(await window.demo.ticket()));

  // A refresh ends nothing: the socket stays open.
  await tab.evaluate(() => window.demo.refreshTokens());
  await sleep(1500);
  result.after_refresh = await tab.evaluate(() => window.demo.watched());

  // The other tab of the same session logs out.
  const shared = await tab.evaluate(() => window.demo.tokens());
  await otherTab.evaluate((t) => window.demo.useTokens(t), shared);
  const loggedOutAt = Date.now();
  await otherTab.evaluate(() => window.demo.logout());
  let state = await tab.evaluate(() => window.demo.watched());
  while (state.open && Date.now() - loggedOutAt < 10000) {
    await sleep(25);
    state = await tab.evaluate(() => window.demo.watched());
  }
  result.after_logout = state;
  result.closed_after_ms = state.open ? null : state.closedAt - loggedOutAt;
  result.other_after_logout = await otherUser.evaluate(() => window.demo.watched());

  console.log(JSON.stringify(result));
} finally {
  await browser.close();
}
