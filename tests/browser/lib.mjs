// Shared pieces of the browser tests: Debian's Chromium under puppeteer-core (which never
// downloads a browser), a seeded random source, and response interception through the
// DevTools protocol, so that a response can be delayed or dropped after the server
// answered it, as a flaky network or a closed tab would.
import puppeteer from 'puppeteer-core';

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** A setting the Rust driver passes in the environment; missing is an error. */
export const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};

/** Debian's Chromium, headless. As root it needs --no-sandbox; background networking is
 * off because this machine refuses outside connections. */
export async function launch() {
  return puppeteer.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/** mulberry32: a small seeded generator, so a failing run can be replayed. */
export function random(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A proxy in front of `target` (an http://host:port origin) that can hold or drop the
 * answers to some requests after the server has answered them: the browser then applies
 * their `Set-Cookie` only when they arrive (late), or never (dropped; the connection is
 * closed). Browsers apply cookies in their network stack as responses arrive, so the
 * disturbance has to happen on the wire. `decide(request)` returns `{}`, `{delayMs}` or
 * `{drop: true}`. Resolves to `{url, seen, close}`. */
export async function disturbingProxy(target, decide) {
  const { createServer, request } = await import('node:http');
  const upstream = new URL(target);
  const seen = { passed: 0, delayed: 0, dropped: 0 };
  const server = createServer((req, res) => {
    const chunks = [];
    req.on('data', (chunk) => chunks.push(chunk));
    req.on('end', () => {
      const forward = request(
        {
          host: upstream.hostname,
          port: upstream.port,
          method: req.method,
          path: req.url,
          headers: req.headers,
        },
        (answer) => {
          const body = [];
          answer.on('data', (chunk) => body.push(chunk));
          answer.on('end', async () => {
            const choice = decide(req);
            if (choice.drop) {
              seen.dropped += 1;
              req.socket.destroy();
              return;
            }
            if (choice.delayMs) {
              seen.delayed += 1;
              await sleep(choice.delayMs);
            } else {
              seen.passed += 1;
            }
            res.writeHead(answer.statusCode, answer.headers);
            res.end(Buffer.concat(body));
          });
        },
      );
      forward.on('error', () => req.socket.destroy());
      forward.end(Buffer.concat(chunks));
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

/** Runs fetch in the page and reports status and JSON body (or the network error). */
export async function fetchIn(page, url, init) {
  return page.evaluate(
    async (url, init) => {
      try {
        const response = await fetch(url, init);
        const text = await response.text();
        let body = null;
        try {
          body = JSON.parse(text);
        } catch {
          body = text;
        }
        return { status: response.status, body };
      } catch (error) {
        return { status: 0, error: String(error) };
      }
    },
    url,
    init,
  );
}

/** The cookies a browser context holds for `url`. */
export async function cookiesOf(page, url) {
  const cdp = await page.createCDPSession();
  const { cookies } = await cdp.send('Network.getCookies', { urls: [url] });
  await cdp.detach();
  return cookies;
}
