// More than one machine: three `gemma3 serve` replicas on loopback behind HAProxy configured by
// deploy/haproxy.cfg. Requests spread over the replicas; a conversation's
// X-Gemma3-Prefix-Hash keeps it on one replica (its prompt cache); when a replica is killed
// mid-run, the streams it held fail at once (no hang), the others finish, and new requests keep
// succeeding on the survivors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT } from './helpers.js';
import { postJson, sseData, startTestServer } from './server-helpers.js';

const CLI = join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js');
const HAPROXY = ['/usr/sbin/haproxy', '/usr/local/sbin/haproxy', '/usr/bin/haproxy'].find((p) => existsSync(p));
const HEADER = 'X-Gemma3-Prefix-Hash';

test('X-Gemma3-Prefix-Hash names the conversation: the same for all its turns, different for another one', async () => {
  const server = await startTestServer();
  try {
    const hashOf = async (messages: unknown[], headers: Record<string, string> = {}) => {
      const r = await postJson(server, '/v1/chat/completions', { model: 'gemma3', messages, max_tokens: 1 }, headers);
      assert.equal(r.status, 200);
      await r.body?.cancel();
      return r.headers.get(HEADER);
    };
    const first = [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hi' }];
    const h1 = await hashOf(first);
    assert.match(h1 ?? '', /^[0-9a-f]{16}$/);
    const later = [...first, { role: 'assistant', content: 'Hello.' }, { role: 'user', content: 'How are you?' }];
    assert.equal(await hashOf(later), h1, 'a later turn of the same conversation');
    assert.notEqual(await hashOf([{ role: 'system', content: 'Be verbose.' }, { role: 'user', content: 'Hi' }]), h1);
    assert.notEqual(await hashOf([{ role: 'user', content: 'Hi' }]), h1);
    assert.equal(await hashOf([{ role: 'user', content: 'Other' }], { [HEADER]: '0123456789abcdef' }), '0123456789abcdef', 'a client\'s value is kept');
    const ollama = await postJson(server, '/api/chat', { model: 'gemma3', messages: later, stream: false, options: { num_predict: 1 } });
    assert.equal(ollama.headers.get(HEADER), h1, 'the same hash on the Ollama route');
  } finally {
    await server.close();
  }
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

interface Replica {
  name: string;
  port: number;
  child: ChildProcess;
}

async function startReplica(name: string): Promise<Replica> {
  const child = spawn(process.execPath, [CLI, 'serve', '--demo', '--port', '0', '--threads', '1', '--parallel', '2', '--context', '1024',
    '--alias', name, '--drain-timeout', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  const deadline = Date.now() + 90_000;
  for (;;) {
    const port = /serving \S+ at http:\/\/127\.0\.0\.1:(\d+)/.exec(stdout)?.[1];
    if (port) return { name, port: Number(port), child };
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`replica ${name} did not start: ${stderr}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Streams a chat completion; resolves with the replica that answered and how the stream ended. */
function streamThrough(url: string, maxTokens: number) {
  let onFirst!: (model: string) => void;
  const first = new Promise<string>((r) => (onFirst = r));
  const result = (async () => {
    let text = '';
    try {
      const r = await fetch(`${url}/v1/chat/completions`, {
        method: 'POST', headers: { 'Content-Type': 'application/json' }, signal: AbortSignal.timeout(60_000),
        body: JSON.stringify({ model: 'gemma3', stream: true, max_tokens: maxTokens, messages: [{ role: 'user', content: 'Write at length.' }] }),
      });
      if (r.status !== 200) return { model: null, ok: false, error: `HTTP ${r.status}`, endedAt: Date.now() };
      const decoder = new TextDecoder();
      let model: string | null = null;
      for await (const chunk of r.body!) {
        text += decoder.decode(chunk as Uint8Array, { stream: true });
        model ??= /"model":"([^"]+)"/.exec(text)?.[1] ?? null;
        if (model && text.includes('"content":"') && text.split('data: ').length > 3) onFirst(model);
      }
      const events = sseData(text);
      const finished = events.at(-1) === '[DONE]' && events.some((e) => e !== '[DONE]' && JSON.parse(e).choices?.[0]?.finish_reason);
      return { model, ok: finished, error: finished ? null : 'stream ended early', endedAt: Date.now() };
    } catch (err) {
      return { model: /"model":"([^"]+)"/.exec(text)?.[1] ?? null, ok: false, error: (err as Error).message, endedAt: Date.now() };
    } finally {
      onFirst('');
    }
  })();
  return { first, result };
}

async function chatThrough(url: string, headers: Record<string, string> = {}): Promise<{ status: number; model: string | null }> {
  const r = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST', headers: { 'Content-Type': 'application/json', ...headers }, signal: AbortSignal.timeout(60_000),
    body: JSON.stringify({ model: 'gemma3', max_tokens: 4, messages: [{ role: 'user', content: 'Hi' }] }),
  });
  const body = await r.json().catch(() => null) as { model?: string } | null;
  return { status: r.status, model: body?.model ?? null };
}

test('3 replicas behind HAProxy: spread, prefix routing, a replica killed mid-run', {
  skip: HAPROXY ? false : 'haproxy is not installed (apt-get install haproxy)', timeout: 300_000,
}, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gemma3-replicas-'));
  const replicas: Replica[] = [];
  let proxy: ChildProcess | null = null;
  try {
    for (const name of ['r1', 'r2', 'r3']) replicas.push(await startReplica(name));
    const port = await freePort();
    const config = join(dir, 'haproxy.cfg');
    writeFileSync(config, haproxyConfig(port, replicas));
    let proxyLog = '';
    proxy = spawn(HAPROXY!, ['-f', config, '-db'], { stdio: ['ignore', 'pipe', 'pipe'] });
    proxy.stdout!.on('data', (d) => (proxyLog += d));
    proxy.stderr!.on('data', (d) => (proxyLog += d));
    const url = `http://127.0.0.1:${port}`;
    const deadline = Date.now() + 30_000;
    while ((await fetch(`${url}/ready`).catch(() => null))?.status !== 200) {
      assert.ok(Date.now() < deadline && proxy.exitCode === null, `haproxy did not come up: ${proxyLog}`);
      await new Promise((r) => setTimeout(r, 100));
    }

    // Without the header: HAProxy falls back to round robin, over the replicas.
    const spread: { status: number; model: string | null }[] = [];
    for (let i = 0; i < 9; i++) spread.push(await chatThrough(url));
    assert.ok(spread.every((r) => r.status === 200), JSON.stringify(spread));
    assert.ok(new Set(spread.map((r) => r.model)).size >= 2, `requests spread over the replicas: ${spread.map((r) => r.model)}`);
    t.diagnostic(`9 requests without the header went to ${spread.map((r) => r.model).join(' ')}`);
    // With a conversation's hash: always the same replica.
    for (const hash of ['00000000000000aa', '1234567890abcdef']) {
      const pinned: { status: number; model: string | null }[] = [];
      for (let i = 0; i < 4; i++) pinned.push(await chatThrough(url, { [HEADER]: hash }));
      assert.ok(pinned.every((r) => r.status === 200 && r.model === pinned[0]!.model), JSON.stringify(pinned));
    }

    // Six concurrent streams (two per replica), then r2 dies while they run.
    const streams = Array.from({ length: 6 }, () => streamThrough(url, 900));
    // r2 dies as soon as one of its streams is under way: waiting for all six to start let a
    // loaded machine finish r2's streams before the kill.
    const r2Streaming = await new Promise<boolean>((resolve) => {
      for (const s of streams) void s.first.then((model) => model === 'r2' && resolve(true));
      void Promise.all(streams.map((s) => s.first)).then(() => resolve(false));
    });
    const killedAt = Date.now();
    replicas[1]!.child.kill('SIGKILL');
    const holders = await Promise.all(streams.map((s) => s.first));
    assert.ok(r2Streaming, `some stream is on r2: ${holders}`);
    const results = await Promise.all(streams.map((s) => s.result));
    const onDead = results.filter((r) => r.model === 'r2');
    assert.ok(onDead.some((r) => !r.ok), `a stream on the killed replica was cut: ${JSON.stringify(results)}`);
    for (const r of results) {
      if (r.model === 'r2') {
        assert.ok(!r.ok || r.endedAt < killedAt, `a stream on the killed replica completed after the kill: ${JSON.stringify(r)}`);
      } else {
        assert.equal(r.ok, true, `stream on ${r.model}: ${r.error}`);
      }
    }
    const failedAfter = Math.max(...onDead.filter((r) => !r.ok).map((r) => r.endedAt - killedAt));
    t.diagnostic(`streams on ${holders.join(' ')}; those on r2 failed ${failedAfter} ms after the kill, the others completed`);
    assert.ok(failedAfter < 10_000, `the streams on the dead replica failed promptly (${failedAfter} ms after the kill)`);

    // New requests keep succeeding, at once (HAProxy retries a refused connection on another
    // replica) and after its health check took r2 out.
    const after = await Promise.all(Array.from({ length: 9 }, () => chatThrough(url)));
    assert.ok(after.every((r) => r.status === 200), JSON.stringify(after));
    assert.ok(after.every((r) => r.model === 'r1' || r.model === 'r3'), JSON.stringify(after));
  } finally {
    proxy?.kill('SIGKILL');
    for (const r of replicas) if (r.child.exitCode === null) r.child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});

/** deploy/haproxy.cfg, the documented configuration, bound to `port` with `replicas` as its servers. */
function haproxyConfig(port: number, replicas: Replica[]): string {
  const documented = readFileSync(join(REPO_ROOT, 'deploy', 'haproxy.cfg'), 'utf8');
  assert.match(documented, /^\s*bind :8080$/m);
  assert.match(documented, /^\s*balance hdr\(X-Gemma3-Prefix-Hash\)$/m);
  return documented
    .replace(/^(\s*)bind :8080$/m, `$1bind 127.0.0.1:${port}`)
    .replace(/^\s*server .*\n/gm, '')
    .trimEnd() + '\n' + replicas.map((r) => `  server ${r.name} 127.0.0.1:${r.port} check`).join('\n') + '\n';
}
