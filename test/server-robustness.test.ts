// The server in the field (issue 17): requests that used to lock everyone out, work that went on
// after the client left, web pages driving the API, remote images reaching internal addresses,
// and the smaller findings (slow image → 500, lost `param`, literal image tokens, file paths in
// errors). Each test is one repro from the issue.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import sharp from 'sharp';
import type { RunningServer } from '../src/server/server.js';
import { fetchRemoteImage, isBlockedAddress, RemoteImageError } from '../src/server/remote-image.js';
import { fixturePath } from './helpers.js';
import { postJson, startTestServer, testImage, waitFor } from './server-helpers.js';

const chat = (model: string, messages: unknown, extra: object = {}) => ({ model, messages, max_tokens: 2, ...extra });
let text: RunningServer;
let vlm: RunningServer;
let images: Server;
let imagesUrl: string;
/** Requests seen by the image server, by path. */
const imageHits = new Map<string, number>();

before(async () => {
  text = await startTestServer({ parallel: 2, maxQueue: 2, context: 64, corsOrigin: 'https://app.example,https://other.example' });
  vlm = await startTestServer({
    modelPath: fixturePath('tiny-vlm'), parallel: 1, maxQueue: 8, allowRemoteImages: true, imageFetchTimeoutMs: 400,
    maxImagePixels: 1_000_000, maxInflightPixels: 3_000_000,
  });
  const square = testImage('square.png').bytes;
  images = createServer((req, res) => {
    imageHits.set(req.url!, (imageHits.get(req.url!) ?? 0) + 1);
    if (req.url === '/square.png') res.writeHead(200, { 'Content-Type': 'image/png' }).end(square);
    else if (req.url === '/to-loopback') res.writeHead(302, { Location: `http://127.0.0.2:${(images.address() as AddressInfo).port}/square.png` }).end();
    else if (req.url === '/slow.png') setTimeout(() => res.writeHead(200).end(square), 3000);
    else res.writeHead(404).end();
  });
  await new Promise<void>((ok) => images.listen(0, '127.0.0.1', ok));
  imagesUrl = `http://127.0.0.1:${(images.address() as AddressInfo).port}`;
});
after(async () => {
  await text?.close();
  await vlm?.close();
  images?.closeAllConnections();
  await new Promise((ok) => images?.close(ok));
});

async function status(server: RunningServer, path: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; json: any }> {
  const res = await postJson(server, path, body, headers);
  return { status: res.status, json: await res.json().catch(() => null) };
}

test('roles named after Object.prototype members are 400s and never hold a slot (25 in a row, then a normal request)', async () => {
  for (let i = 0; i < 25; i++) {
    const role = ['constructor', 'toString', '__proto__', 'hasOwnProperty', 'valueOf'][i % 5]!;
    const r = await status(text, '/v1/chat/completions', chat('tiny-text', [{ role, content: 'x' }]));
    assert.equal(r.status, 400, role);
    assert.equal(r.json.error.param, 'messages[0].role');
    const o = await status(text, '/api/chat', { model: 'tiny-text', stream: false, messages: [{ role, content: 'x' }] });
    assert.equal(o.status, 400, `ollama ${role}`);
  }
  assert.equal(text.engine.outstanding, 0);
  const ok = await status(text, '/v1/chat/completions', chat('tiny-text', [{ role: 'user', content: 'Hi' }]));
  assert.equal(ok.status, 200);
});

test('a job that cannot reach the worker gives its slot back', async () => {
  const before = text.engine.outstanding;
  const job = { kind: 'chat', messages: [{ role: () => 'user', content: 'x' }], options: {} } as any;
  assert.throws(() => text.engine.submit(job), /could not be cloned|DataCloneError/);
  assert.equal(text.engine.outstanding, before);
});

test('cross-origin pages cannot drive the API: foreign Origin (even text/plain, no preflight), null Origin → 403', async () => {
  const body = JSON.stringify(chat('tiny-text', [{ role: 'user', content: 'Hi' }]));
  for (const [path, origin] of [['/v1/chat/completions', 'https://evil.example'], ['/api/generate', 'https://evil.example'], ['/v1/completions', 'null']] as const) {
    const res = await fetch(text.url + path, { method: 'POST', headers: { 'Content-Type': 'text/plain', Origin: origin }, body });
    assert.equal(res.status, 403, `${path} from ${origin}`);
    const json: any = await res.json();
    assert.match(JSON.stringify(json), /not allowed/);
  }
  // The server's own page, and origins allowed by --cors-origin, may.
  const own = await fetch(text.url + '/v1/chat/completions', { method: 'POST', headers: { Origin: text.url, 'Content-Type': 'application/json' }, body });
  assert.equal(own.status, 200);
  const allowed = await fetch(text.url + '/v1/chat/completions', { method: 'POST', headers: { Origin: 'https://other.example', 'Content-Type': 'application/json' }, body });
  assert.equal(allowed.status, 200);
  assert.equal(allowed.headers.get('access-control-allow-origin'), 'https://other.example');
  const preflight = await fetch(text.url + '/v1/chat/completions', { method: 'OPTIONS', headers: { Origin: 'https://app.example' } });
  assert.equal(preflight.status, 204);
  const foreignPreflight = await fetch(text.url + '/v1/chat/completions', { method: 'OPTIONS', headers: { Origin: 'https://evil.example' } });
  assert.equal(foreignPreflight.status, 403);
});

/** A raw request with a chosen Host header (fetch does not let us set it). */
function withHost(server: RunningServer, path: string, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(`${server.url}${path}`, { headers: { Host: host } }, (res) => {
      res.resume();
      resolve(res.statusCode!);
    });
    req.on('error', reject);
    req.end();
  });
}

test('DNS rebinding: a foreign Host name is refused on every route; IP addresses and localhost are not', async () => {
  const port = text.port;
  for (const path of ['/v1/models', '/health', '/', '/api/tags']) assert.equal(await withHost(text, path, `evil.example:${port}`), 403, path);
  assert.equal(await withHost(text, '/v1/models', `rebind.127.0.0.1.nip.io:${port}`), 403);
  for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`, `app.localhost:${port}`, 'localhost']) {
    assert.equal(await withHost(text, '/v1/models', host), 200, host);
  }
});

test('remote images: internal addresses are refused, however they are written, with one message for all', async () => {
  const port = (images.address() as AddressInfo).port;
  const urls = [
    `${imagesUrl}/square.png`, `http://2130706433:${port}/square.png`, `http://0:${port}/square.png`, `http://[::1]:${port}/x.png`,
    `http://localhost:${port}/square.png`, 'http://169.254.169.254/latest/meta-data/', `http://127.0.0.1:1/closed.png`,
    `http://[::ffff:127.0.0.1]:${port}/square.png`, `http://10.0.0.1:${port}/x.png`,
  ];
  const messages = new Set<string>();
  for (const url of urls) {
    const r = await status(vlm, '/v1/chat/completions', chat('tiny-vlm', [{ role: 'user', content: [{ type: 'image_url', image_url: { url } }] }]));
    assert.equal(r.status, 400, url);
    assert.equal(r.json.error.param, 'messages[0].content[0].image_url');
    messages.add(r.json.error.message.replace(url.slice(0, 80), 'URL'));
  }
  assert.equal(messages.size, 1, [...messages].join('\n'));
  assert.equal(imageHits.get('/square.png') ?? 0, 0, 'nothing reached the internal server');
  for (const a of ['127.0.0.1', '10.1.2.3', '172.16.0.1', '192.168.1.1', '169.254.169.254', '0.0.0.0', '100.64.0.1', '::1', '::', 'fe80::1',
    'fd00::1', '::ffff:127.0.0.1', '::ffff:7f00:1', '64:ff9b::a9fe:a9fe']) assert.ok(isBlockedAddress(a), a);
  for (const a of ['8.8.8.8', '1.1.1.1', '2606:4700::1111', '::ffff:8.8.8.8', '64:ff9b::808:808']) assert.ok(!isBlockedAddress(a), a);
});

test('remote images: every redirect is checked again', async () => {
  // 127.0.0.1 plays a public host here and 127.0.0.2 an internal one.
  const isBlocked = (a: string) => a !== '127.0.0.1';
  const ok = await fetchRemoteImage(`http://localhost:${(images.address() as AddressInfo).port}/square.png`, { maxBytes: 1e6, timeoutMs: 2000, isBlocked });
  assert.ok(ok.length > 0, 'a name resolving to an allowed address is fetched');
  const hits = imageHits.get('/square.png') ?? 0;
  await assert.rejects(fetchRemoteImage(`${imagesUrl}/to-loopback`, { maxBytes: 1e6, timeoutMs: 2000, isBlocked }),
    (e: unknown) => e instanceof RemoteImageError && e.reason === 'unreachable');
  assert.equal(imageHits.get('/square.png') ?? 0, hits, 'the redirect target was not fetched');
});

test('a slow remote image is a 400 (not a 500), and so is one whose host is unreachable', async () => {
  const slow = await startTestServer({ modelPath: fixturePath('tiny-vlm'), allowRemoteImages: true, allowPrivateImageHosts: true, imageFetchTimeoutMs: 300 });
  try {
    const r = await status(slow, '/v1/chat/completions', chat('tiny-vlm', [{ role: 'user', content: [{ type: 'image_url', image_url: { url: `${imagesUrl}/slow.png` } }] }]));
    assert.equal(r.status, 400);
    assert.equal(r.json.error.code, 'invalid_image_url');
    // Many slow URLs share one allowance instead of taking it each.
    const started = Date.now();
    const slowPart = { type: 'image_url', image_url: { url: `${imagesUrl}/slow.png` } };
    const many = await status(slow, '/v1/chat/completions', chat('tiny-vlm', [{ role: 'user', content: Array(10).fill(slowPart) }]));
    assert.equal(many.status, 400);
    assert.ok(Date.now() - started < 2000, `${Date.now() - started} ms for ten slow URLs`);
    const fine = await status(slow, '/v1/chat/completions', chat('tiny-vlm', [{ role: 'user', content: [{ type: 'image_url', image_url: { url: `${imagesUrl}/square.png` } }] }]));
    assert.equal(fine.status, 200, 'private hosts can be allowed explicitly');
  } finally {
    await slow.close();
  }
});

test('one request fetches at most --max-body bytes of remote images in all, however many URLs it names', async () => {
  const big = await sharp({ create: { width: 300, height: 300, channels: 3, background: '#000', noise: { type: 'gaussian', mean: 128, sigma: 60 } } }).png().toBuffer();
  const host = createServer((_req, res) => res.writeHead(200, { 'Content-Type': 'image/png' }).end(big));
  await new Promise<void>((ok) => host.listen(0, '127.0.0.1', ok));
  const url = `http://127.0.0.1:${(host.address() as AddressInfo).port}/big.png`;
  const capped = await startTestServer({
    modelPath: fixturePath('tiny-vlm'), allowRemoteImages: true, allowPrivateImageHosts: true, maxBodyBytes: Math.floor(big.length * 2.5),
  });
  try {
    const part = { type: 'image_url', image_url: { url } };
    const r = await status(capped, '/v1/chat/completions', chat('tiny-vlm', [{ role: 'user', content: Array(40).fill(part) }]));
    assert.equal(r.status, 400);
    assert.equal(r.json.error.param, 'messages[0].content[2].image_url');
    assert.match(r.json.error.message, /larger than \d+ bytes/);
    assert.equal(capped.engine.budget.bytes, 0);
  } finally {
    await capped.close();
    host.closeAllConnections();
    await new Promise((ok) => host.close(ok));
  }
});

test('images over the pixel limit are refused from their header, before any decoding', async () => {
  // 4000 x 4000 of one colour: a small file that would decode to 48 MB.
  const big = await sharp({ create: { width: 4000, height: 4000, channels: 3, background: '#808080' } }).png({ compressionLevel: 9 }).toBuffer();
  assert.ok(big.length < 200_000);
  const started = Date.now();
  const r = await status(vlm, '/v1/chat/completions', chat('tiny-vlm', [{
    role: 'user', content: [{ type: 'image_url', image_url: { url: testImage().dataUrl } }, { type: 'image_url', image_url: { url: `data:image/png;base64,${big.toString('base64')}` } }],
  }]));
  assert.equal(r.status, 400);
  assert.equal(r.json.error.code, 'image_too_large');
  assert.equal(r.json.error.param, 'messages[0].content[1].image_url');
  assert.ok(Date.now() - started < 5000);
  const o = await status(vlm, '/api/generate', { model: 'tiny-vlm', prompt: 'x', stream: false, images: [big.toString('base64')] });
  assert.equal(o.status, 400);
  assert.match(o.json.error, /over this server's limit/);
  assert.equal(vlm.engine.budget.pixels, 0);
});

test('pixels in flight are bounded server-wide (429), and given back when requests end or their clients leave', async () => {
  // 1000 x 1000 = 1 MP each; the server holds 3 MP at most.
  const mp = await sharp({ create: { width: 1000, height: 1000, channels: 3, background: '#204080' } }).png().toBuffer();
  const part = { type: 'image_url', image_url: { url: `data:image/png;base64,${mp.toString('base64')}` } };
  const body = chat('tiny-vlm', [{ role: 'user', content: [part, part] }], { max_tokens: 1 });
  const results = await Promise.all(Array.from({ length: 6 }, () => status(vlm, '/v1/chat/completions', body)));
  const codes = results.map((r) => r.status).sort();
  assert.ok(codes.includes(429), `some requests are refused while 3 MP are held: ${codes}`);
  assert.ok(codes.includes(200), `${codes}`);
  await waitFor(() => vlm.engine.outstanding === 0, 30_000, 'the requests to end');
  assert.equal(vlm.engine.budget.pixels, 0);
  assert.equal(vlm.engine.budget.bytes, 0);
});

test('a client that leaves stops its image work: 8 dropped requests of 4 large images free the server at once', async () => {
  const roomy = await startTestServer({ modelPath: fixturePath('tiny-vlm'), parallel: 1, maxQueue: 8, maxImagePixels: 10_000_000, maxInflightPixels: 400_000_000 });
  try {
    // 3000 x 3000 of one colour: a small file, but each takes the model thread real time to decode and resize.
    const large = await sharp({ create: { width: 3000, height: 3000, channels: 3, background: '#a0c0e0' } }).png().toBuffer();
    const part = { type: 'image_url', image_url: { url: `data:image/png;base64,${large.toString('base64')}` } };
    const body = JSON.stringify(chat('tiny-vlm', [{ role: 'user', content: [part, part, part, part] }]));
    const controllers = Array.from({ length: 8 }, () => new AbortController());
    const sent = controllers.map((c) => fetch(`${roomy.url}/v1/chat/completions`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body, signal: c.signal }).catch(() => null));
    await waitFor(() => roomy.engine.outstanding === 8, 10_000, 'all eight to be submitted');
    const dropped = Date.now();
    for (const c of controllers) c.abort();
    await Promise.all(sent);
    await waitFor(() => roomy.engine.outstanding === 0, 60_000, 'the abandoned requests to leave the worker');
    const freed = Date.now() - dropped;
    assert.equal(roomy.engine.budget.pixels, 0);
    assert.equal(roomy.engine.budget.bytes, 0);
    assert.equal((await status(roomy, '/v1/chat/completions', chat('tiny-vlm', [{ role: 'user', content: 'Hi' }]))).status, 200);
    // Undropped, these 32 pictures keep the model thread busy for several seconds.
    assert.ok(freed < 1500, `freed after ${freed} ms`);
  } finally {
    await roomy.close();
  }
});

test('a text that cannot fit the context is refused before it is tokenized', async () => {
  const huge = 'word '.repeat(400_000); // 2 MB
  const started = Date.now();
  const r = await status(text, '/v1/completions', { model: 'tiny-text', prompt: huge, max_tokens: 1 });
  assert.equal(r.status, 400);
  assert.equal(r.json.error.code, 'context_length_exceeded');
  assert.match(r.json.error.message, /characters/);
  assert.ok(Date.now() - started < 2000);
});

test('request bytes in flight are bounded server-wide (429) and given back', async () => {
  const small = await startTestServer({ maxBodyBytes: 200_000, maxInflightBytes: 300_000, context: 64, parallel: 1, maxQueue: 8 });
  try {
    const body = chat('tiny-text', [{ role: 'user', content: 'Hi' }], { user: 'x'.repeat(150_000) });
    const results = await Promise.all(Array.from({ length: 6 }, () => status(small, '/v1/chat/completions', body)));
    const codes = results.map((r) => r.status);
    assert.ok(codes.includes(429), `${codes}`);
    await waitFor(() => small.engine.outstanding === 0, 10_000, 'requests to end');
    assert.equal(small.engine.budget.bytes, 0);
    assert.equal((await status(small, '/v1/chat/completions', chat('tiny-text', [{ role: 'user', content: 'Hi' }]))).status, 200);
  } finally {
    await small.close();
  }
});

test('image errors found by the model thread keep the request field', async () => {
  const broken = Buffer.from(testImage().bytes);
  broken.fill(7, 60, 300);
  const r = await status(vlm, '/v1/chat/completions', chat('tiny-vlm', [{
    role: 'user', content: [{ type: 'image_url', image_url: { url: testImage().dataUrl } }, { type: 'text', text: 'and' },
      { type: 'image_url', image_url: { url: `data:image/png;base64,${broken.toString('base64')}` } }],
  }]));
  assert.equal(r.status, 400);
  assert.equal(r.json.error.param, 'messages[0].content[2].image_url');
  const o = await status(vlm, '/api/chat', { model: 'tiny-vlm', stream: false, messages: [{ role: 'user', content: 'x', images: [testImage().base64, broken.toString('base64')] }] });
  assert.equal(o.status, 400);
});

test('image markers written as text are refused (they would become image positions without an image)', async () => {
  for (const marker of ['<image_soft_token>', '<start_of_image>']) {
    const r = await status(vlm, '/v1/chat/completions', chat('tiny-vlm', [{ role: 'user', content: `look ${marker} here` }]));
    assert.equal(r.status, 400, marker);
    assert.equal(r.json.error.code, 'reserved_token');
    assert.equal(r.json.error.param, 'messages[0].content');
  }
  assert.equal((await status(text, '/v1/completions', { model: 'tiny-text', prompt: 'a <image_soft_token> b' })).status, 400);
  assert.equal((await status(text, '/v1/completions', { model: 'tiny-text', prompt: [2, 262144, 5] })).status, 400);
  assert.equal((await status(text, '/api/generate', { model: 'tiny-text', prompt: '<image_soft_token>', stream: false })).status, 400);
});

test('chat-template errors do not send the server\'s file paths to clients', async () => {
  const r = await status(text, '/v1/chat/completions', chat('tiny-text', [{ role: 'user', content: 'a' }, { role: 'user', content: 'b' }]));
  assert.equal(r.status, 400);
  assert.match(r.json.error.message, /alternate/);
  assert.ok(!r.json.error.message.includes(fixturePath()), r.json.error.message);
  assert.ok(!/\/test\/fixtures|\/root\/|\/home\//.test(r.json.error.message), r.json.error.message);
});

test('extreme temperature and repetition_penalty give near-greedy text, not degenerate tokens', async () => {
  const messages = [{ role: 'user', content: 'Tell me a story' }];
  const greedy = await status(text, '/v1/chat/completions', chat('tiny-text', messages, { temperature: 0, max_tokens: 6 }));
  const tiny = await status(text, '/v1/chat/completions', chat('tiny-text', messages, { temperature: 1e-300, max_tokens: 6, seed: 1 }));
  assert.equal(tiny.json.choices[0].message.content, greedy.json.choices[0].message.content);
  const penalty = await status(text, '/v1/completions', { model: 'tiny-text', prompt: [2, 100, 200, 300], temperature: 0, repetition_penalty: 1e-300, max_tokens: 4 });
  assert.equal(penalty.status, 200);
});
