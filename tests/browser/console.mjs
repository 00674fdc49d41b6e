// The admin console in Chromium: every step an admin takes with the mouse and keyboard,
// with a screenshot of each screen. Driven from tests/api/drivers/browser.rs, which
// starts Tokenmint, serves a page on another origin (APP) and checks the figures this
// prints as one JSON line.
//
// Environment: ISSUER, APP, ADMIN_PASSWORD, USER (a user, not an admin, with password
// `<USER>-password`), HOSTILE (markup typed as names), SHOTS (a directory).
import { mkdirSync } from 'node:fs';
import { env, launch } from './lib.mjs';

const ISSUER = env('ISSUER');
const APP = env('APP');
const USER = env('USER');
const HOSTILE = env('HOSTILE');
const SHOTS = env('SHOTS');
mkdirSync(SHOTS, { recursive: true });

const result = { dialogs: [], screenshots: [] };
const browser = await launch();

/** A page that records every dialog (an alert fired by injected markup would be one). */
async function openPage(context) {
  const page = await context.newPage();
  await page.setViewport({ width: 1280, height: 860 });
  page.on('dialog', async (dialog) => {
    result.dialogs.push(dialog.message());
    await dialog.dismiss();
  });
  return page;
}

const shot = async (page, name) => {
  await page.screenshot({ path: `${SHOTS}/${name}.png`, fullPage: true });
  result.screenshots.push(name);
};

/** Clicks `selector` and waits for the navigation it starts; the navigation's answer. */
const clickAndWait = async (page, selector) => {
  const [response] = await Promise.all([page.waitForNavigation(), page.click(selector)]);
  return response;
};

/** Images in the page: markup injected by a name would make one. */
const images = (page) => page.evaluate(() => document.querySelectorAll('img').length);

const login = async (page, username, password) => {
  await page.goto(`${ISSUER}/admin/login`);
  await page.type('input[name=username]', username);
  await page.type('input[name=password]', password);
  return clickAndWait(page, 'form[action="/admin/login"] button');
};

/** A token pair from the API, outside the browser. */
const apiLogin = async (username, password, userAgent = 'node') => {
  const response = await fetch(`${ISSUER}/api/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'user-agent': userAgent },
    body: JSON.stringify({ username, password }),
  });
  return response.json();
};

const introspectWith = async (apiKey, token) =>
  (
    await fetch(`${ISSUER}/api/token/introspect`, {
      method: 'POST',
      headers: { 'x-api-key': apiKey, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token }),
    })
  ).status;

try {
  const adminContext = await browser.createBrowserContext();
  const page = await openPage(adminContext);

  // Log in.
  await page.goto(`${ISSUER}/admin/login`);
  await shot(page, 'login');
  const loggedIn = await login(page, 'admin', env('ADMIN_PASSWORD'));
  result.login = { status: loggedIn.status(), url: new URL(page.url()).pathname };
  await shot(page, 'users');

  // An API key named with markup: its secret is shown once, a reload does not show it again.
  await page.goto(`${ISSUER}/admin/api-keys`);
  await page.type('form[action="/admin/api-keys"] input[name=name]', HOSTILE);
  await clickAndWait(page, 'form[action="/admin/api-keys"] button');
  const secret = await page.$eval('#secret', (e) => e.textContent);
  result.secret = { shown: secret.startsWith('tmk_'), url: new URL(page.url()).pathname, images: await images(page) };
  await shot(page, 'api-key-created');
  await page.reload();
  result.secret.after_reload = await page.$('#secret').then((e) => e !== null);
  result.secret.after_reload_text = await page.$eval('main', (e, s) => e.textContent.includes(s), secret);

  // The key works; disabled in the console, it is refused at once.
  const someone = await apiLogin(USER, `${USER}-password`);
  result.key = { before: await introspectWith(secret, someone.access_token) };
  await page.goto(`${ISSUER}/admin/api-keys`);
  result.key.listed_as_text = await page.$eval('tbody', (e, h) => e.textContent.includes(h), HOSTILE);
  result.key.images = await images(page);
  await clickAndWait(page, 'form[action^="/admin/api-keys/"][action$="/disable"] button');
  result.key.after = await introspectWith(secret, someone.access_token);
  await shot(page, 'api-keys');

  // A second browser context holds a session of the user (logged in from a hostile
  // User-Agent); the admin ends it from the user's sessions page.
  const userContext = await browser.createBrowserContext();
  const app = await openPage(userContext);
  await app.setUserAgent(HOSTILE);
  await app.goto(APP);
  const held = await app.evaluate(
    async (issuer, username) => {
      const response = await fetch(`${issuer}/api/login`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ username, password: `${username}-password` }),
      });
      return response.json();
    },
    ISSUER,
    USER,
  );
  const me = () =>
    app.evaluate(
      (issuer, token) =>
        fetch(`${issuer}/api/me`, { headers: { authorization: `Bearer ${token}` } }).then((r) => r.status),
      ISSUER,
      held.access_token,
    );
  result.other_session = { before: await me() };
  await page.goto(`${ISSUER}/admin/users?q=${encodeURIComponent(USER)}`);
  await clickAndWait(page, `tbody a`);
  result.user = {
    name_as_text: await page.$eval('main', (e, h) => e.textContent.includes(h), HOSTILE),
    images: await images(page),
  };
  await shot(page, 'user');
  await clickAndWait(page, 'a[href$="/sessions"]');
  result.other_session.user_agent_as_text = await page.$eval('tbody', (e, h) => e.textContent.includes(h), HOSTILE);
  result.other_session.images = await images(page);
  await shot(page, 'user-sessions');
  result.other_session.listed = (await page.$$('form[action$="/end"] button')).length;
  const theirs = await page.evaluateHandle((h) =>
    [...document.querySelectorAll('tbody tr')].find((row) => row.textContent.includes(h)).querySelector('button'),
    HOSTILE,
  );
  await Promise.all([page.waitForNavigation(), theirs.click()]);
  result.other_session.after = await me();
  // The user's other session (the one from outside the browser) is untouched.
  result.other_session.untouched = (
    await fetch(`${ISSUER}/api/me`, { headers: { authorization: `Bearer ${someone.access_token}` } })
  ).status;

  // Not an admin: 403, in a context of its own.
  const userConsole = await openPage(userContext);
  const refused = await login(userConsole, USER, `${USER}-password`);
  result.non_admin = {
    status: refused.status(),
    says: await userConsole.$eval('main', (e) => e.textContent.includes('for admins')),
  };
  await shot(userConsole, 'forbidden');

  // A form posted without its CSRF token: 403, and nothing is created.
  await page.goto(`${ISSUER}/admin/api-keys`);
  const keysBefore = await page.$$eval('tbody tr', (rows) => rows.length);
  await page.type('form[action="/admin/api-keys"] input[name=name]', 'no token');
  await page.$eval('form[action="/admin/api-keys"] input[name=csrf]', (e) => e.remove());
  const withoutToken = await clickAndWait(page, 'form[action="/admin/api-keys"] button');
  result.csrf = { status: withoutToken.status() };
  await shot(page, 'csrf-refused');
  await page.goto(`${ISSUER}/admin/api-keys`);
  result.csrf.keys_unchanged = (await page.$$eval('tbody tr', (rows) => rows.length)) === keysBefore;

  // Withdraw the current signing key through the typed confirmation.
  await page.goto(`${ISSUER}/admin/signing-keys`);
  await shot(page, 'signing-keys');
  const current = await page.$$eval('tbody tr', (rows) =>
    rows
      .filter((row) => row.querySelector('.state.current'))
      .map((row) => row.querySelector('code').textContent)[0],
  );
  await clickAndWait(page, `a[href="/admin/signing-keys/${current}/withdraw"]`);
  await page.type('input[name=reason]', 'a laptop with the key was stolen');
  await page.type('input[name=confirm]', current);
  await shot(page, 'withdraw');
  const withdrawn = await clickAndWait(page, 'form[action$="/withdraw"] button');
  const jwks = await (await fetch(`${ISSUER}/.well-known/jwks.json`)).json();
  result.withdrawal = {
    status: withdrawn.status(),
    url: new URL(page.url()).pathname,
    state: await page.$$eval(
      'tbody tr',
      (rows, kid) => rows.filter((r) => r.querySelector('code').textContent === kid).map((r) => r.querySelector('.state').textContent)[0],
      current,
    ),
    in_jwks: jwks.keys.some((k) => k.kid === current),
  };

  // The other screens, for the record.
  for (const [path, name] of [
    ['/admin/audit?action=signing_key.withdraw', 'audit'],
    ['/admin/clients', 'clients'],
    ['/admin/tenants', 'tenants'],
  ]) {
    const response = await page.goto(`${ISSUER}${path}`);
    result[name] = response.status();
    await shot(page, name);
  }

  // A page of another origin that frames the console gets nothing.
  const framer = await openPage(userContext);
  await framer.goto(APP);
  await framer.evaluate((src) => {
    const frame = document.createElement('iframe');
    frame.src = src;
    document.body.appendChild(frame);
    return new Promise((resolve) => {
      frame.onload = resolve;
      setTimeout(resolve, 3000);
    });
  }, `${ISSUER}/admin/login`);
  const child = framer.frames().find((f) => f !== framer.mainFrame());
  result.framed = {
    frame_url: child ? child.url() : null,
    login_form: child ? await child.$('input[name=password]').then((e) => e !== null).catch(() => false) : false,
  };

  // End the console's own session from its sessions page: the next page is the login page.
  await page.goto(`${ISSUER}/admin/users?q=admin`);
  await clickAndWait(page, 'tbody a');
  await clickAndWait(page, 'a[href$="/sessions"]');
  const own = await page.evaluateHandle(() =>
    [...document.querySelectorAll('tbody tr')].find((row) => row.textContent.includes('this console')).querySelector('button'),
  );
  await Promise.all([page.waitForNavigation(), own.click()]);
  result.own_session = { url: new URL(page.url()).pathname };
  await shot(page, 'logged-out');
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
