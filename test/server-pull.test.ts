// The server's model management over HTTP, against the local fake hub: POST /api/pull streams
// Ollama-shaped NDJSON progress (status, digest, total, completed) and only with allowPull;
// DELETE /api/delete; /api/tags lists the cached models after the loaded one; names that are not
// hub references (paths, '..') are refused with 400.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { convertCheckpoint } from '../src/convert/convert.js';
import type { RunningServer } from '../src/server/server.js';
import { FakeHub } from './fake-hub.js';
import { fixturePath } from './helpers.js';
import { ndjson, startTestServer } from './server-helpers.js';
import { tempDir } from './st-writer.js';

const tmp = tempDir('server-pull');
after(() => tmp.cleanup());
const GGUF_DIR = join(tmp.dir, 'gguf-src');
mkdirSync(GGUF_DIR);
convertCheckpoint(fixturePath('tiny-vlm'), join(GGUF_DIR, 'q8.gguf'), { type: 'q8_0', mmprojOut: join(GGUF_DIR, 'mmproj.gguf') });
const Q8 = readFileSync(join(GGUF_DIR, 'q8.gguf'));
const MMPROJ = readFileSync(join(GGUF_DIR, 'mmproj.gguf'));
const REPO = 'ggml-org/gemma-3-tiny-it-GGUF';

const hub = new FakeHub({
  [REPO]: { files: { 'gemma-3-tiny-it-Q8_0.gguf': Q8, 'mmproj-gemma-3-tiny-it-f16.gguf': MMPROJ, 'README.md': Buffer.from('# tiny\n') } },
  'google/gemma-3-tiny-gated': { gated: true, files: { 'config.json': readFileSync(fixturePath('tiny-text', 'config.json')), 'model.safetensors': Buffer.alloc(20_000) } },
});
await hub.start();
after(() => hub.close());

const CACHE = join(tmp.dir, 'cache');
const hubOptions = { cacheDir: CACHE, endpoint: hub.url, token: undefined, tokenSource: undefined, offline: false };
const server: RunningServer = await startTestServer({ allowPull: true, hub: hubOptions, parallel: 1 });
const locked: RunningServer = await startTestServer({ hub: hubOptions, parallel: 1 });
const switching: RunningServer = await startTestServer({ hub: hubOptions, parallel: 1, switchModels: true, allowPull: true });
after(() => Promise.all([server.close(), locked.close(), switching.close()]));

function call(s: RunningServer, method: string, path: string, body: unknown): Promise<Response> {
  return fetch(s.url + path, { method, headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
}

describe('/api/pull, /api/tags, /api/delete', () => {
  test('without --allow-pull, pull and delete answer 403 with how to allow them', async () => {
    for (const [method, path] of [['POST', '/api/pull'], ['DELETE', '/api/delete']] as const) {
      const r = await call(locked, method, path, { model: REPO });
      assert.equal(r.status, 403);
      assert.match(((await r.json()) as any).error, /disabled on this server; start it with --allow-pull/);
    }
    assert.equal(hub.log.length, 0, 'the hub was not contacted');
  });

  test('a streamed pull: Ollama NDJSON from "pulling manifest" to "success", with digest, total and completed', async () => {
    hub.cutOnce.set('gemma-3-tiny-it-Q8_0.gguf', 200_000); // and a cut connection on the way, resumed
    const r = await call(server, 'POST', '/api/pull', { model: `${REPO}:Q8_0` });
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type') ?? '', /application\/x-ndjson/);
    const lines = ndjson(await r.text());
    assert.deepEqual(lines[0], { status: 'pulling manifest' });
    assert.deepEqual(lines.slice(-3).map((l) => l.status), ['verifying sha256 digest', 'writing manifest', 'success']);
    const digest = `sha256:${createHash('sha256').update(Q8).digest('hex')}`;
    const file = lines.filter((l) => l.digest === digest);
    assert.ok(file.length >= 2, 'progress lines for the model file');
    for (const l of file) assert.equal(l.total, Q8.length);
    const completed = file.map((l) => l.completed as number);
    assert.equal(completed.at(-1), Q8.length);
    assert.ok(lines.some((l) => /connection lost/.test(l.status ?? '')), 'the resume is reported');
    assert.ok(lines.some((l) => l.digest === `sha256:${createHash('sha256').update(MMPROJ).digest('hex')}` && l.completed === MMPROJ.length));
    assert.ok(!lines.some((l) => 'error' in l));
    const snapshot = join(CACHE, 'models--ggml-org--gemma-3-tiny-it-GGUF', 'snapshots', hub.commitOf(REPO));
    assert.ok(readFileSync(join(snapshot, 'gemma-3-tiny-it-Q8_0.gguf')).equals(Q8));
  });

  test('stream: false answers one {"status": "success"} (nothing fetched again)', async () => {
    const before = hub.downloads().length;
    const r = await call(server, 'POST', '/api/pull', { model: `${REPO}:q8_0`, stream: false });
    assert.equal(r.status, 200);
    assert.deepEqual(await r.json(), { status: 'success' });
    assert.equal(hub.downloads().length, before);
  });

  test('/api/tags lists the loaded model, then the cached ones', async () => {
    const { models } = await (await fetch(`${server.url}/api/tags`)).json() as { models: any[] };
    assert.equal(models.length, 2);
    const cached = models[1];
    assert.equal(cached.name, `${REPO}:Q8_0`);
    assert.equal(cached.size, Q8.length + MMPROJ.length);
    assert.equal(cached.digest, `sha256:${createHash('sha256').update(Q8).digest('hex')}`);
    assert.deepEqual([cached.details.format, cached.details.family, cached.details.quantization_level], ['gguf', 'gemma3', 'Q8_0']);
  });

  test('errors keep their status: unknown repository 404, gated 403, missing quantisation 404, names that are paths 400', async () => {
    const unknown = await call(server, 'POST', '/api/pull', { model: 'google/no-such-model' });
    assert.equal(unknown.status, 404);
    assert.match(((await unknown.json()) as any).error, /no such model repository/);
    const gated = await call(server, 'POST', '/api/pull', { model: 'google/gemma-3-tiny-gated' });
    assert.equal(gated.status, 403);
    assert.match(((await gated.json()) as any).error, /gated model: accept the license on .*HF_TOKEN/);
    const quant = await call(server, 'POST', '/api/pull', { model: `${REPO}:Q2_K` });
    assert.equal(quant.status, 404);
    assert.match(((await quant.json()) as any).error, /available: Q8_0/);
    for (const model of ['../../etc/passwd', '/etc/passwd', 'a/b/../../c', `${REPO}:../x`, 42]) {
      for (const [method, path] of [['POST', '/api/pull'], ['DELETE', '/api/delete']] as const) {
        const r = await call(server, method, path, { model });
        assert.equal(r.status, 400, `${path} ${JSON.stringify(model)}`);
        assert.match(((await r.json()) as any).error, /model/);
      }
    }
    assert.equal((await call(server, 'POST', '/api/delete', { model: REPO })).status, 405);
  });

  test('switchModels: a request naming a cached model loads it in place of the current one', async () => {
    const first = switching.engine;
    assert.equal(first.info.id, 'tiny-text');
    const r = await call(switching, 'POST', '/api/generate', { model: `${REPO}:Q8_0`, prompt: 'Hi', stream: false, options: { num_predict: 2, temperature: 0 } });
    assert.equal(r.status, 200, await r.clone().text());
    assert.equal(((await r.json()) as any).eval_count, 2);
    assert.notEqual(switching.engine, first);
    assert.equal(first.healthy, false, 'the old model was unloaded');
    const health = await (await fetch(`${switching.url}/health`)).json() as any;
    assert.deepEqual([health.model, health.vision], [`${REPO}:Q8_0`, true]);
    // The loaded model cannot be deleted under it.
    const del = await call(switching, 'DELETE', '/api/delete', { model: `${REPO}:Q8_0` });
    assert.equal(del.status, 409);
  });

  test('switchModels never loads what is not a cached hub model: paths are 400, unknown names 404', async () => {
    for (const model of ['../../etc/passwd', '/etc/passwd', 'a/b/c', './tiny-text', `${REPO}:../../x`]) {
      const r = await call(switching, 'POST', '/v1/chat/completions', { model, messages: [{ role: 'user', content: 'Hi' }], max_tokens: 1 });
      assert.equal(r.status, 400, model);
      assert.match(((await r.json()) as any).error.message, /^'model'/);
    }
    const r = await call(switching, 'POST', '/api/chat', { model: 'google/not-cached', messages: [{ role: 'user', content: 'Hi' }] });
    assert.equal(r.status, 404);
    assert.match(((await r.json()) as any).error, /not in this server's model cache; pull it first with POST \/api\/pull/);
    assert.equal(switching.engine.info.id, `${REPO}:Q8_0`, 'still the same model');
  });

  test('DELETE /api/delete removes a cached model; a second delete is 404', async () => {
    const r = await call(server, 'DELETE', '/api/delete', { model: `${REPO}:Q8_0` });
    assert.equal(r.status, 200);
    assert.ok(!existsSync(join(CACHE, 'models--ggml-org--gemma-3-tiny-it-GGUF')));
    const { models } = await (await fetch(`${server.url}/api/tags`)).json() as { models: any[] };
    assert.equal(models.length, 1);
    const again = await call(server, 'DELETE', '/api/delete', { model: `${REPO}:Q8_0` });
    assert.equal(again.status, 404);
    assert.match(((await again.json()) as any).error, /not in the cache/);
  });
});
