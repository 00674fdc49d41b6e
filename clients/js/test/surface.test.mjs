// The package as its users meet it: the exports and client members index.d.ts declares
// are the ones the code has, the options it declares are the ones the code reads, and
// the README's example runs as it is written (node --test).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

import * as exported from '../src/index.js';

const here = new URL('..', import.meta.url);
const read = (path) => readFile(new URL(path, here), 'utf8');

/** The member names of `interface <name> { ... }` in the declarations. */
function members(dts, name) {
  const body = dts.match(new RegExp(`interface ${name}[^{]*\\{([\\s\\S]*?)\\n\\}`))[1];
  return [...body.matchAll(/^ {2}(?:readonly )?(\w+)\??[(:<]/gm)].map((m) => m[1]).sort();
}

test('the runtime exports are the declared ones', async () => {
  const dts = await read('src/index.d.ts');
  const declared = [...dts.matchAll(/^export (?:class|function|const) (\w+)/gm)].map((m) => m[1]);
  assert.deepEqual(Object.keys(exported).sort(), declared.sort());
});

test("a client's members are the declared ones", async () => {
  const dts = await read('src/index.d.ts');
  const client = exported.createClient({ issuer: 'https://id.test', deviceStorage: null });
  const runtime = Object.keys(Object.getOwnPropertyDescriptors(client)).sort();
  assert.deepEqual(runtime, members(dts, 'TokenmintClient'));
  client.close();
});

test('the options the code reads are the declared ones', async () => {
  const [dts, js] = await Promise.all([read('src/index.d.ts'), read('src/index.js')]);
  const used = [...new Set([...js.matchAll(/options\.(\w+)/g)].map((m) => m[1]))].sort();
  assert.deepEqual(used, members(dts, 'ClientOptions'));
});

test("the README's example runs as written", async () => {
  const readme = await read('README.md');
  const example = readme.match(/```js\n([\s\S]*?)```/)[1];
  const source = example.replace(
    "from '@tokenmint/client'",
    `from '${new URL('src/index.js', here).href}'`,
  );
  assert.notEqual(source, example, 'the example imports the package');
  // A fake Tokenmint (cookie mode) and API, through the global fetch the client uses.
  const seen = [];
  const json = (body) =>
    new Response(JSON.stringify(body), { headers: { 'content-type': 'application/json' } });
  const pair = (n) => ({
    access_token: `h.${Buffer.from(JSON.stringify({ sid: 's1', n })).toString('base64url')}.s`,
    token_type: 'Bearer',
    expires_in: 900,
    refresh_expires_in: 604800,
    scope: 'read',
    session_id: 's1',
  });
  // (Node has no Web Locks; without a BroadcastChannel, which would keep Node running,
  // the cookie-mode client coordinates nothing across tabs, as in a one-tab browser.)
  const original = {
    fetch: globalThis.fetch,
    location: globalThis.location,
    BroadcastChannel: globalThis.BroadcastChannel,
  };
  globalThis.BroadcastChannel = undefined;
  let n = 0;
  globalThis.fetch = async (input, init) => {
    const request = input instanceof Request ? input : new Request(input, init);
    seen.push({ url: request.url, authorization: request.headers.get('authorization') });
    const path = new URL(request.url).pathname;
    if (path === '/api/login' || path === '/api/refresh-token') return json(pair((n += 1)));
    return json({ orders: [] });
  };
  globalThis.location = { assign() {} };
  try {
    const dir = await mkdtemp(join(tmpdir(), 'tokenmint-readme-'));
    const file = join(dir, 'example.mjs');
    await writeFile(file, source);
    await import(pathToFileURL(file).href);
  } finally {
    globalThis.fetch = original.fetch;
    globalThis.location = original.location;
    globalThis.BroadcastChannel = original.BroadcastChannel;
  }
  const urls = seen.map((s) => new URL(s.url).pathname);
  assert.deepEqual(urls, ['/api/login', '/orders', '/api/refresh-token']);
  assert.match(seen[1].authorization, /^Bearer h\./, 'the API call carries the token');
});
