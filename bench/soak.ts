// Soak benchmark (not a test): `gemma3 serve` on the tiny vision model in its own process, and 8
// clients looping for 10 minutes over a mix of streaming and plain chats, chats with an image,
// Ollama chats, raw completions and requests dropped half-way. Reports errors (target 0), latency
// percentiles per kind, and the server's resident memory at the start, along the way and at the
// end (target: flat).
// Usage: npm run bench:soak -- [--minutes M] [--clients N] [--model DIR]
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { REPO_ROOT } from './paths.js';

const { values } = parseArgs({ options: { minutes: { type: 'string' }, clients: { type: 'string' }, model: { type: 'string' } } });
const MINUTES = Number(values.minutes ?? 10);
const CLIENTS = Number(values.clients ?? 8);
const MODEL_DIR = values.model ?? join(REPO_ROOT, 'test', 'fixtures', 'tiny-vlm');
const IMAGE = `data:image/png;base64,${readFileSync(join(REPO_ROOT, 'test', 'fixtures', 'goldens', 'images', 'square.png')).toString('base64')}`;
const PROMPTS = ['Hello!', 'Why is the sky blue?', 'Write a poem about the sea.', 'Count to ten.', 'Name a colour.', 'Tell a joke.'];

type Kind = 'stream' | 'plain' | 'image' | 'ollama' | 'completion' | 'dropped';
const MIX: [Kind, number][] = [['stream', 0.3], ['plain', 0.2], ['image', 0.15], ['ollama', 0.1], ['completion', 0.1], ['dropped', 0.15]];

interface Stats { ok: number; errors: number; latencies: number[] }
const stats = new Map<Kind, Stats>(MIX.map(([k]) => [k, { ok: 0, errors: 0, latencies: [] }]));
const errorSamples: string[] = [];

function rssMb(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('VmRSS:'));
  return Number(line?.match(/(\d+)/)?.[1] ?? 0) / 1024;
}

async function startServer(): Promise<{ url: string; pid: number; stop: () => void }> {
  const child = spawn(process.execPath, [join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js'), 'serve', '--model', MODEL_DIR, '--port', '0',
    '--parallel', '4', '--context', '512'], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stderr.on('data', () => {});
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /at (http:\/\/\S+)/.exec(out);
      if (m) resolve(m[1]!);
    });
    child.once('exit', (code) => reject(new Error(`the server exited (code ${code})`)));
  });
  return { url, pid: child.pid!, stop: () => child.kill('SIGTERM') };
}

function pickKind(r: number): Kind {
  for (const [kind, share] of MIX) {
    if (r < share) return kind;
    r -= share;
  }
  return 'stream';
}

async function one(url: string, kind: Kind, i: number): Promise<void> {
  const prompt = PROMPTS[i % PROMPTS.length]!;
  const maxTokens = 8 + (i % 24);
  const chatBody = (extra: object) => JSON.stringify({ model: 'tiny-vlm', max_tokens: maxTokens, messages: [{ role: 'user', content: prompt }], ...extra });
  const started = performance.now();
  const controller = new AbortController();
  let path = '/v1/chat/completions';
  let body: string;
  switch (kind) {
    case 'stream': case 'dropped': body = chatBody({ stream: true }); break;
    case 'plain': body = chatBody({ temperature: 0.8, seed: i }); break;
    case 'image':
      body = JSON.stringify({ model: 'tiny-vlm', max_tokens: maxTokens, messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: IMAGE } }, { type: 'text', text: prompt }] }] });
      break;
    case 'ollama':
      path = '/api/chat';
      body = JSON.stringify({ model: 'tiny-vlm', messages: [{ role: 'user', content: prompt }], options: { num_predict: maxTokens } });
      break;
    case 'completion':
      path = '/v1/completions';
      body = JSON.stringify({ model: 'tiny-vlm', prompt, max_tokens: maxTokens });
      break;
  }
  const s = stats.get(kind)!;
  try {
    const res = await fetch(url + path, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body, signal: controller.signal });
    if (kind === 'dropped') {
      const reader = res.body!.getReader();
      await reader.read();
      controller.abort();
      s.ok++;
      return;
    }
    const text = await res.text();
    if (res.status !== 200 || /"error"/.test(text)) throw new Error(`HTTP ${res.status}: ${text.slice(0, 200)}`);
    s.ok++;
    s.latencies.push(performance.now() - started);
  } catch (err) {
    if (kind === 'dropped' && controller.signal.aborted) {
      s.ok++;
      return;
    }
    s.errors++;
    if (errorSamples.length < 5) errorSamples.push(`${kind}: ${(err as Error).message}`);
  }
}

function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

const server = await startServer();
// Warm up (first image decode loads libvips, first requests size the caches), then measure.
for (let i = 0; i < 8; i++) await one(server.url, (['stream', 'image', 'ollama', 'completion'] as Kind[])[i % 4]!, i);
for (const s of stats.values()) Object.assign(s, { ok: 0, errors: 0, latencies: [] });
const rssStart = rssMb(server.pid);
const samples: number[] = [rssStart];
const deadline = Date.now() + MINUTES * 60_000;
const sampler = setInterval(() => samples.push(rssMb(server.pid)), Math.max(1000, (MINUTES * 60_000) / 20));
let counter = 0;
let seed = 12345;
const random = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 4294967296);
process.stderr.write(`soak: ${CLIENTS} clients for ${MINUTES} min against ${server.url} (server RSS ${rssStart.toFixed(0)} MB)\n`);
await Promise.all(Array.from({ length: CLIENTS }, async () => {
  while (Date.now() < deadline) await one(server.url, pickKind(random()), counter++);
}));
clearInterval(sampler);
await new Promise((r) => setTimeout(r, 2000));
const rssEnd = rssMb(server.pid);
const health = await (await fetch(`${server.url}/health`)).json() as { status: string; active: number; queued: number };
server.stop();

const rows = [...stats].map(([kind, s]) => `| ${kind} | ${s.ok} | ${s.errors} | ${percentile(s.latencies, 50).toFixed(0)} | ${percentile(s.latencies, 99).toFixed(0)} |`);
const total = [...stats.values()].reduce((a, s) => ({ ok: a.ok + s.ok, errors: a.errors + s.errors }), { ok: 0, errors: 0 });
console.log(`\nSoak: ${CLIENTS} clients, ${MINUTES} min, ${total.ok + total.errors} requests, ${total.errors} errors; health after: ${health.status} (active ${health.active}, queued ${health.queued})\n`);
console.log('| kind | ok | errors | p50 ms | p99 ms |\n| --- | --- | --- | --- | --- |');
console.log(rows.join('\n'));
console.log(`\nServer RSS: start ${rssStart.toFixed(0)} MB, max ${Math.max(...samples).toFixed(0)} MB, end ${rssEnd.toFixed(0)} MB ` +
  `(samples: ${samples.map((x) => x.toFixed(0)).join(' ')})`);
if (errorSamples.length) console.log(`\nFirst errors:\n${errorSamples.join('\n')}`);
process.exitCode = total.errors === 0 ? 0 : 1;
