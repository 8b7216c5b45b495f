// Long prompts (issue 12, item 3): prompt tokens/s at 8,192 and 32,768 tokens on one GGUF, decode
// tokens/s right after that prompt (every step reads the whole cache), and peak RSS, for our
// engine and llama.cpp (node-llama-cpp, its default F16 KV cache). Each run is its own process
// (engine-gemma3.ts / engine-llama.ts), so peak RSS is that run's own.
// Also what a decode step reads at that depth: the weights and the KV cache, in bytes per token.
// Usage: node dist/bench/long-prompt.js MODEL.gguf [--prompts 8192,32768] [--decode 32]
//        [--threads N] [--kv-type f32|f16|bf16] [--engines gemma3,node-llama-cpp] [--context N] [--json]
// --context N: load both engines with an N-token context (e.g. 131072) whatever the prompt.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { KV_TYPES, type KvType } from '../src/backend/backend.js';
import { REPO_ROOT } from './paths.js';

const ENGINES = ['gemma3', 'node-llama-cpp'] as const;
type Engine = (typeof ENGINES)[number];

interface Row {
  engine: Engine;
  kv_type: string;
  prompt_tokens: number;
  decode_tokens: number;
  prompt_tps: number;
  decode_tps: number;
  peak_rss_mb: number;
  load_s: number;
  context: number;
  weight_bytes_per_token?: number;
  kv_bytes_per_token?: number;
  isa?: string;
}

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    prompts: { type: 'string' },
    decode: { type: 'string' },
    threads: { type: 'string' },
    'kv-type': { type: 'string' },
    engines: { type: 'string' },
    context: { type: 'string' },
    json: { type: 'boolean' },
  },
});

function positiveInts(flag: string, text: string): number[] {
  const out = text.split(',').map((s) => Number(s));
  for (const n of out) if (!Number.isInteger(n) || n < 2) throw new Error(`--${flag} takes integers >= 2 separated by commas, got '${text}'`);
  return out;
}

const model = positionals[0];
if (!model || !existsSync(model)) throw new Error(`give the GGUF file to measure as the first argument${model ? ` (not found: ${model})` : ''}`);
const prompts = positiveInts('prompts', values.prompts ?? '8192,32768');
const [decodeTokens] = positiveInts('decode', values.decode ?? '32');
const [threads] = positiveInts('threads', values.threads ?? String(Math.max(2, availableParallelism())));
const kvType = (values['kv-type'] ?? 'f16') as KvType;
if (!KV_TYPES.includes(kvType)) throw new Error(`--kv-type takes ${KV_TYPES.join(', ')}, got '${values['kv-type']}'`);
const engines = (values.engines ?? ENGINES.join(',')).split(',') as Engine[];
for (const e of engines) if (!ENGINES.includes(e)) throw new Error(`--engines takes ${ENGINES.join(', ')}, got '${e}'`);
const context = values.context === undefined ? undefined : positiveInts('context', values.context)[0];
const log = (s: string) => process.stderr.write(`long-prompt: ${s}\n`);

function runEngine(engine: Engine, promptTokens: number): Row | null {
  const script = join(REPO_ROOT, 'dist', 'bench', engine === 'gemma3' ? 'engine-gemma3.js' : 'engine-llama.js');
  const args = [script, model!, String(promptTokens), String(decodeTokens), String(threads!)];
  if (engine === 'gemma3') args.push(kvType);
  if (context !== undefined) args.push(String(context));
  const r = spawnSync(process.execPath, args, { encoding: 'utf8', timeout: 60 * 60_000, maxBuffer: 1 << 24 });
  const line = r.stdout.trim().split('\n').pop() ?? '';
  try {
    const row = JSON.parse(line) as Omit<Row, 'prompt_tokens' | 'decode_tokens' | 'kv_type'> & { kv_type?: string };
    if (context !== undefined && row.context !== context) throw new Error(`ran with a ${row.context}-token context, not ${context}`);
    return { ...row, engine, kv_type: row.kv_type ?? 'f16', prompt_tokens: promptTokens, decode_tokens: decodeTokens };
  } catch {
    log(`${engine} at ${promptTokens} tokens failed (exit ${r.status}${r.signal ? `, ${r.signal}` : ''}): ${r.stderr.slice(-2000)}`);
    return null;
  }
}

const rows: Row[] = [];
for (const promptTokens of prompts) {
  for (const engine of engines) {
    log(`${engine}: ${promptTokens}-token prompt, then ${decodeTokens} tokens, ${threads} threads`);
    const row = runEngine(engine, promptTokens);
    if (row) rows.push(row);
  }
}

// llama.cpp reads the same weights and, with its F16 cache, what our f16 cache reads.
for (const r of rows) {
  const ours = rows.find((o) => o.engine === 'gemma3' && o.prompt_tokens === r.prompt_tokens);
  if (r.engine === 'node-llama-cpp' && ours?.kv_bytes_per_token !== undefined) {
    r.weight_bytes_per_token = ours.weight_bytes_per_token;
    r.kv_bytes_per_token = (ours.kv_bytes_per_token * 2) / (ours.kv_type === 'f32' ? 4 : 2);
  }
}
const fmt = (x: number, digits = 1) => x.toFixed(digits).padStart(9);
const mb = (x: number | undefined) => (x === undefined ? '-' : (x / 1e6).toFixed(1)).padStart(8);
console.log(`${model}: ${threads} threads, our KV cache ${kvType}, llama.cpp's default (F16)${context ? `, ${context}-token context` : ''}`);
console.log('engine           kv    prompt   prompt t/s  decode t/s  peak RSS MB  weights MB/token  KV MB/token  vs llama.cpp (prompt, decode, RSS)');
for (const r of rows) {
  const theirs = rows.find((o) => o.engine === 'node-llama-cpp' && o.prompt_tokens === r.prompt_tokens);
  const ratio = theirs && r.engine !== 'node-llama-cpp'
    ? `${(r.prompt_tps / theirs.prompt_tps).toFixed(2)}x, ${(r.decode_tps / theirs.decode_tps).toFixed(2)}x, ${(r.peak_rss_mb / theirs.peak_rss_mb).toFixed(2)}x`
    : '';
  console.log(`${r.engine.padEnd(15)}  ${r.kv_type.padEnd(4)} ${String(r.prompt_tokens).padStart(7)}  ${fmt(r.prompt_tps)}   ${fmt(r.decode_tps, 2)}   ${fmt(r.peak_rss_mb, 0)}` +
    `          ${mb(r.weight_bytes_per_token)}     ${mb(r.kv_bytes_per_token)}    ${ratio}`);
}
if (values.json) for (const r of rows) console.log(JSON.stringify(r));
if (rows.length < prompts.length * engines.length) process.exitCode = 1;
