// The name the server answers to (--alias; a readable default, never a snapshot hash; "gemma3"
// accepted), Ollama's keep_alive (refused with 400 unless it means "keep loaded"), and the
// loading progress `gemma3 serve` prints.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { modelIdFor, namesServedModel } from '../src/server/model-id.js';
import { fixturePath, REPO_ROOT } from './helpers.js';
import { postJson, startTestServer } from './server-helpers.js';

test('model ids: the alias, else the repository of a Hugging Face cache snapshot, the .gguf name, the folder name', () => {
  const snapshot = '/home/u/.cache/huggingface/hub/models--google--gemma-3-4b-it/snapshots/093f9f388b31de276ce2de164bdc2081324b9767';
  assert.equal(modelIdFor(snapshot), 'gemma-3-4b-it');
  assert.equal(modelIdFor(snapshot, 'my-gemma'), 'my-gemma');
  assert.equal(modelIdFor('/models/gemma-3-4b-it-q4_0.gguf'), 'gemma-3-4b-it-q4_0');
  assert.equal(modelIdFor('/hub/models--unsloth--gemma-3-1b-it-GGUF/snapshots/abc/gemma-3-1b-it-Q8_0.gguf'), 'gemma-3-1b-it-Q8_0');
  assert.equal(modelIdFor('/models/gemma-3-12b-it'), 'gemma-3-12b-it');
  assert.ok(namesServedModel('gemma-3-4b-it', 'gemma-3-4b-it'));
  assert.ok(namesServedModel('gemma-3-4b-it:latest', 'gemma-3-4b-it'));
  assert.ok(namesServedModel('gemma3', 'gemma-3-4b-it'));
  assert.ok(namesServedModel('gemma3:latest', 'gemma-3-4b-it'));
  assert.ok(!namesServedModel('gpt-4o', 'gemma-3-4b-it'));
  assert.ok(!namesServedModel('gemma-3-4b', 'gemma-3-4b-it'));
});

test('a checkpoint served from the Hugging Face cache is named by its repository; "gemma3" works; others get 404', async () => {
  const hub = mkdtempSync(join(tmpdir(), 'gemma3-hub-'));
  const snapshot = join(hub, 'models--google--gemma-3-1b-it', 'snapshots', '0123456789abcdef0123456789abcdef01234567');
  mkdirSync(snapshot, { recursive: true });
  for (const f of readdirSync(fixturePath('tiny-text'))) symlinkSync(fixturePath('tiny-text', f), join(snapshot, f));
  const server = await startTestServer({ modelPath: snapshot });
  try {
    const models = await (await fetch(`${server.url}/v1/models`)).json() as { data: { id: string }[] };
    assert.deepEqual(models.data.map((m) => m.id), ['gemma-3-1b-it']);
    for (const model of ['gemma-3-1b-it', 'gemma3', 'gemma3:latest']) {
      const r = await postJson(server, '/v1/chat/completions', { model, messages: [{ role: 'user', content: 'Hi' }], max_tokens: 2 });
      const body = await r.text();
      assert.equal(r.status, 200, `${model}: ${body}`);
      assert.equal((JSON.parse(body) as { model: string }).model, 'gemma-3-1b-it');
    }
    const wrong = await postJson(server, '/v1/chat/completions', { model: 'gpt-4o', messages: [{ role: 'user', content: 'Hi' }] });
    assert.equal(wrong.status, 404);
    assert.match((await wrong.json() as { error: { message: string } }).error.message, /This server serves 'gemma-3-1b-it'/);
    const ollama = await postJson(server, '/api/chat', { model: 'gemma3', messages: [{ role: 'user', content: 'Hi' }], stream: false, options: { num_predict: 2 } });
    assert.equal(ollama.status, 200, await ollama.clone().text());
  } finally {
    await server.close();
    rmSync(hub, { recursive: true, force: true });
  }
});

test('--alias names the model; keep_alive is accepted only when it means "keep loaded"', async () => {
  const server = await startTestServer({ alias: 'team-gemma' });
  try {
    const models = await (await fetch(`${server.url}/v1/models`)).json() as { data: { id: string }[] };
    assert.deepEqual(models.data.map((m) => m.id), ['team-gemma']);
    const tags = await (await fetch(`${server.url}/api/tags`)).json() as { models: { name: string }[] };
    assert.deepEqual(tags.models.map((m) => m.name), ['team-gemma:latest']);
    const chat = (extra: Record<string, unknown>) => postJson(server, '/api/chat', {
      model: 'team-gemma', messages: [{ role: 'user', content: 'Hi' }], stream: false, options: { num_predict: 2 }, ...extra,
    });
    for (const keep of [-1, '-1', '-1m']) {
      const r = await chat({ keep_alive: keep });
      assert.equal(r.status, 200, `keep_alive ${JSON.stringify(keep)}: ${await r.clone().text()}`);
    }
    for (const keep of ['5m', 300, 0, '0']) {
      const r = await chat({ keep_alive: keep });
      assert.equal(r.status, 400, `keep_alive ${JSON.stringify(keep)}`);
      assert.match((await r.json() as { error: string }).error, /keep_alive .* is not supported: this server .* keeps it loaded until it stops/);
    }
    const unload = await postJson(server, '/api/generate', { model: 'team-gemma', keep_alive: 0 });
    assert.equal(unload.status, 400, 'the Ollama "unload now" request is refused, not answered as if done');
    const bad = await chat({ keep_alive: 'soon' });
    assert.equal(bad.status, 400);
    assert.match((await bad.json() as { error: string }).error, /'keep_alive' must be a number of seconds or a duration/);
  } finally {
    await server.close();
  }
});

test('gemma3 serve prints loading progress, then the address; --alias is checked', async () => {
  const child = spawn(process.execPath, [join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js'), 'serve', '--demo', '--port', '0', '--alias', 'demo-model'],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  try {
    const deadline = Date.now() + 60_000;
    while (!/serving demo-model at http:\/\/127\.0\.0\.1:\d+/.test(stdout)) {
      assert.ok(Date.now() < deadline && child.exitCode === null, `serve did not start: ${stderr}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const steps = [...stderr.matchAll(/loading .* (\d+)%/g)].map((m) => Number(m[1]));
    assert.ok(steps.length >= 2 && steps[0] === 0 && steps.at(-1) === 100, `progress lines: ${stderr}`);
    assert.deepEqual(steps, [...steps].sort((a, b) => a - b), 'progress only goes up');
    assert.match(stderr, /loaded demo-model in/);
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
  }
  const bad = spawn(process.execPath, [join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js'), 'serve', '--demo', '--alias', 'has space'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let badErr = '';
  bad.stderr.on('data', (d) => (badErr += d));
  const code = await new Promise((r) => bad.once('exit', r));
  assert.equal(code, 1);
  assert.match(badErr, /--alias must be a name of 1 to 128 letters/);
});
