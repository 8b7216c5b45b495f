// Shutting down without dropping work: drain() (and SIGTERM in `gemma3 serve`) stops taking
// requests, reports not-ready on /ready while /health stays alive, lets running streams finish
// within the grace period and cuts the rest with a clear error, then exits 0.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { REPO_ROOT } from './helpers.js';
import type { RunningServer } from '../src/server/server.js';
import { postJson, sseData, startTestServer } from './server-helpers.js';

const CLI = join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js');

/** Starts a streamed chat completion; resolves `firstChunk` when its first token arrives. */
function stream(url: string, maxTokens: number) {
  let text = '';
  let onFirst!: () => void;
  const firstChunk = new Promise<void>((r) => (onFirst = r));
  const body = (async () => {
    const r = await fetch(`${url}/v1/chat/completions`, {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, signal: AbortSignal.timeout(60_000),
      body: JSON.stringify({ model: 'gemma3', stream: true, max_tokens: maxTokens, temperature: 0, messages: [{ role: 'user', content: 'Tell me a story.' }] }),
    });
    assert.equal(r.status, 200);
    const decoder = new TextDecoder();
    for await (const chunk of r.body!) {
      text += decoder.decode(chunk as Uint8Array, { stream: true });
      if (text.includes('"content"') && text.split('data: ').length > 3) onFirst();
    }
    onFirst();
    return sseData(text);
  })();
  return { firstChunk, body };
}

function finishReason(events: string[]): string | null {
  for (const e of events) {
    if (e === '[DONE]') continue;
    const reason = JSON.parse(e).choices?.[0]?.finish_reason;
    if (reason) return reason;
  }
  return null;
}

test('drain: not ready, alive, new work refused with 503; the running stream finishes; nothing is cut', async () => {
  const server = await startTestServer({ context: 1024 });
  try {
    await drainWhileStreaming(server);
  } finally {
    await server.close(); // already closed by a passing test; a failing one must not leave it running
  }
});

async function drainWhileStreaming(server: RunningServer): Promise<void> {
  const running = stream(server.url, 120);
  await running.firstChunk;
  const drained = server.drain(30_000);
  const ready = await fetch(`${server.url}/ready`);
  assert.equal(ready.status, 503);
  assert.equal((await ready.json() as { status: string }).status, 'draining');
  const health = await fetch(`${server.url}/health`);
  assert.equal(health.status, 200, 'liveness holds while draining');
  assert.equal((await health.json() as { draining: boolean }).draining, true);
  const late = await postJson(server, '/v1/chat/completions', { model: 'gemma3', messages: [{ role: 'user', content: 'Hi' }] });
  assert.equal(late.status, 503);
  assert.equal(late.headers.get('connection'), 'close');
  assert.equal((await late.json() as { error: { code: string } }).error.code, 'shutting_down');
  const events = await running.body;
  assert.match(finishReason(events) ?? '', /^(length|stop)$/, 'the stream ran to its end');
  assert.equal(events.at(-1), '[DONE]');
  assert.deepEqual(await drained, { finished: 1, cut: 0 });
}

test('a ready server says so; drain past its grace period cuts the stream with an error, not a hang', async () => {
  const server = await startTestServer({ context: 1024 });
  try {
    await cutByDrain(server);
  } finally {
    await server.close();
  }
});

async function cutByDrain(server: RunningServer): Promise<void> {
  const ready = await fetch(`${server.url}/ready`);
  assert.equal(ready.status, 200);
  assert.equal((await ready.json() as { status: string }).status, 'ready');
  const running = stream(server.url, 1000);
  await running.firstChunk;
  const started = Date.now();
  const result = await server.drain(50);
  const events = await running.body;
  assert.ok(Date.now() - started < 15_000, 'drain returned promptly');
  assert.deepEqual(result, { finished: 0, cut: 1 });
  const error = events.map((e) => (e === '[DONE]' ? null : JSON.parse(e))).find((e) => e?.error);
  assert.equal(error?.error.code, 'shutting_down', JSON.stringify(events.slice(-3)));
  assert.equal(finishReason(events), null, 'the cut stream has no finish_reason');
}

test('gemma3 serve: SIGTERM drains (the running stream completes, /ready is 503) and exits 0', async () => {
  const child = spawn(process.execPath, [CLI, 'serve', '--demo', '--port', '0', '--threads', '1', '--context', '1024', '--drain-timeout', '30'],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  try {
    const deadline = Date.now() + 60_000;
    let url: string | undefined;
    while (!(url = /serving \S+ at (http:\/\/\S+)/.exec(stdout)?.[1])) {
      assert.ok(Date.now() < deadline && child.exitCode === null, `serve did not start: ${stderr}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const running = stream(url, 120);
    await running.firstChunk;
    child.kill('SIGTERM');
    let notReady = false;
    for (let i = 0; i < 100 && !notReady; i++) {
      const r = await fetch(`${url}/ready`).catch(() => null);
      notReady = r?.status === 503;
      if (!notReady) await new Promise((res) => setTimeout(res, 20));
    }
    assert.ok(notReady, '/ready answered 503 while draining');
    const events = await running.body;
    assert.match(finishReason(events) ?? '', /^(length|stop)$/);
    assert.equal(await exited, 0, stderr);
    assert.match(stderr, /SIGTERM: draining: 1 request\(s\) running/);
    assert.match(stderr, /stopped \(1 finished, 0 cut off\)/);
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
  }
});
