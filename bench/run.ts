// npm run bench [-- --json] [--weights bf16,q8_0,q4_0,q4_k_m,q6_k | none] [--rounds N] [--threads N] [--prompt N] [--decode N]
//               [--skip-llama] [--skip-vision] [--vision-backend native|js] [--vision-layers N] [--cache DIR]
//               [--isa avx2] [--long 8192,32768] [--max-context 131072] [--follow-up]
// --long, --max-context, --follow-up (on the Q4_0 file): prompts of those lengths with decode
// right after them (bench/long-prompt.ts), both engines loaded with that context and a 512-token
// prompt, and the server's follow-up turn over a 4,000-token conversation (bench/prompt-cache.ts).
// --isa avx2: our AVX2 kernels forced (GEMMA3_NATIVE_KERNELS=avx2) against llama.cpp built without
// AVX-512 (bench/llama-avx2.ts builds it once), to measure the AVX2 class on an AVX-512 machine.
// Our engine against llama.cpp (node-llama-cpp) on the same synthetic 4B-shaped GGUFs, each run
// in its own process, engines alternating, medians over rounds. Then one 896×896 image through
// the full-size SigLIP tower and projector. Prints tables; with --json the last line is
// {"rows": [{"weights", "engine", "prompt_tps", "decode_tps", "peak_rss_mb", "load_s"}, ...]}.
import { spawnSync } from 'node:child_process';
import { closeSync, openSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { nativeMapFile } from '../src/backend/native-backend.js';
import { ensureSynthetic4b, parseBenchWeights } from './synthetic.js';
import { REPO_ROOT } from './paths.js';
import { benchVision } from './vision.js';

const { values } = parseArgs({
  options: {
    json: { type: 'boolean' }, weights: { type: 'string' }, rounds: { type: 'string' }, threads: { type: 'string' },
    prompt: { type: 'string' }, decode: { type: 'string' }, 'skip-llama': { type: 'boolean' }, 'skip-vision': { type: 'boolean' },
    cache: { type: 'string' }, 'vision-backend': { type: 'string' }, 'vision-layers': { type: 'string' }, isa: { type: 'string' },
    long: { type: 'string' }, 'max-context': { type: 'string' }, 'follow-up': { type: 'boolean' },
  },
});
if (values.isa !== undefined && values.isa !== 'avx2') throw new Error(`--isa takes avx2 (the only class that can be forced), got ${values.isa}`);
const forceAvx2 = values.isa === 'avx2';
const weights = values.weights === 'none' ? [] : parseBenchWeights(values.weights ?? 'bf16,q8_0,q4_0');
const rounds = Number(values.rounds ?? 3);
const threads = Number(values.threads ?? 2);
const promptTokens = Number(values.prompt ?? 512);
const decodeTokens = Number(values.decode ?? 128);
const cacheDir = values.cache ?? join(REPO_ROOT, 'bench', '.cache');
const log = (s: string) => process.stderr.write(`bench: ${s}\n`);

interface Row { weights: string; engine: string; prompt_tps: number; decode_tps: number; peak_rss_mb: number; load_s: number; isa?: string; [more: string]: unknown }

function runEngine(engine: 'gemma3' | 'node-llama-cpp', model: string): Row | null {
  const script = join(REPO_ROOT, 'dist', 'bench', engine === 'gemma3' ? 'engine-gemma3.js' : 'engine-llama.js');
  const r = spawnSync(process.execPath, [script, model, String(promptTokens), String(decodeTokens), String(threads)], {
    encoding: 'utf8', timeout: 30 * 60_000, maxBuffer: 1 << 24,
    env: forceAvx2 ? { ...process.env, GEMMA3_NATIVE_KERNELS: 'avx2', LLAMA_AVX2: '1' } : process.env,
  });
  const line = r.stdout.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(line) as Row;
  } catch {
    log(`${engine} failed (exit ${r.status}): ${r.stderr.slice(-2000)}`);
    return null;
  }
}

/**
 * Starts each weight type from the same page cache state for both engines: the file dropped
 * from the cache (GNU dd's nocache) and read once from disk, as after a reboot. Otherwise the
 * engine that runs first also times the disk (a 4 GB file took 9 s to read here), and how the
 * cache holds the file (2 MiB or 4 KiB folios, which decides how fast a mapping of it is read)
 * would depend on what happened to it before.
 */
function freshPageCache(file: string): void {
  const t = performance.now();
  const dropped = spawnSync('dd', [`if=${file}`, 'iflag=nocache', 'count=0', 'status=none']).status === 0;
  const fd = openSync(file, 'r');
  const chunk = Buffer.allocUnsafe(8 << 20);
  let total = 0;
  try {
    for (let n; (n = readSync(fd, chunk, 0, chunk.length, total)) > 0;) total += n;
  } finally {
    closeSync(fd);
  }
  // How much of it a mapping gets in 2 MiB entries (what our loader checks, and what decides how
  // fast a mapping streams): the page cache's folio sizes after the read.
  const mapping = nativeMapFile(file, true);
  const huge = mapping ? `, ${((100 * mapping.hugeBytes) / mapping.bytes).toFixed(0)}% of it mapped in 2 MiB pages` : '';
  mapping?.close();
  log(`page cache: ${dropped ? 'dropped and ' : ''}read ${(total / 1e9).toFixed(2)} GB in ${((performance.now() - t) / 1000).toFixed(1)} s${huge}`);
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

const rows: Row[] = [];
for (const w of weights) {
  const model = ensureSynthetic4b(w, cacheDir, log);
  freshPageCache(model);
  const samples: Record<string, Row[]> = { gemma3: [], 'node-llama-cpp': [] };
  for (let round = 0; round < rounds; round++) {
    for (const engine of values['skip-llama'] ? (['gemma3'] as const) : round % 2 ? (['node-llama-cpp', 'gemma3'] as const) : (['gemma3', 'node-llama-cpp'] as const)) {
      log(`${w} round ${round + 1}/${rounds}: ${engine}`);
      const r = runEngine(engine, model);
      if (r) {
        samples[engine]!.push(r);
        log(`  prompt ${r.prompt_tps.toFixed(1)} t/s, decode ${r.decode_tps.toFixed(2)} t/s, peak ${r.peak_rss_mb.toFixed(0)} MB, load ${r.load_s.toFixed(2)} s`);
      }
    }
  }
  for (const [engine, list] of Object.entries(samples)) {
    if (list.length === 0) continue;
    rows.push({
      weights: w.toUpperCase(), engine,
      prompt_tps: median(list.map((r) => r.prompt_tps)), decode_tps: median(list.map((r) => r.decode_tps)),
      peak_rss_mb: median(list.map((r) => r.peak_rss_mb)), load_s: median(list.map((r) => r.load_s)), isa: list[0]!.isa,
    });
  }
}

const fmt = (n: number, d = 1) => n.toFixed(d);
console.log(`\nGemma 3 4B shapes, synthetic weights, ${threads} threads, prompt ${promptTokens}, decode ${decodeTokens}, median of ${rounds}` +
  (forceAvx2 ? ', AVX2 forced on both engines' : ''));
for (const engine of ['gemma3', 'node-llama-cpp']) {
  const isa = rows.find((r) => r.engine === engine)?.isa;
  if (isa) console.log(`${engine} CPU features: ${isa}`);
}
console.log('');
console.log('| weights | engine | prompt t/s | decode t/s | peak RSS MB | load + first token s |');
console.log('| --- | --- | --- | --- | --- | --- |');
for (const r of rows) console.log(`| ${r.weights} | ${r.engine} | ${fmt(r.prompt_tps)} | ${fmt(r.decode_tps, 2)} | ${fmt(r.peak_rss_mb, 0)} | ${fmt(r.load_s, 2)} |`);
const ratios = weights.map((w) => {
  const ours = rows.find((r) => r.weights === w.toUpperCase() && r.engine === 'gemma3');
  const theirs = rows.find((r) => r.weights === w.toUpperCase() && r.engine === 'node-llama-cpp');
  return ours && theirs ? { w, ours, theirs } : null;
}).filter((x) => x !== null);
if (ratios.length) {
  console.log('\n| weights | prompt ratio | decode ratio | memory ratio | load ratio |');
  console.log('| --- | --- | --- | --- | --- |');
  for (const { w, ours, theirs } of ratios) {
    console.log(`| ${w.toUpperCase()} | ${fmt(ours.prompt_tps / theirs.prompt_tps, 2)}x | ${fmt(ours.decode_tps / theirs.decode_tps, 2)}x | ` +
      `${fmt(ours.peak_rss_mb / theirs.peak_rss_mb, 2)}x | ${fmt(ours.load_s / theirs.load_s, 2)}x |`);
  }
  console.log('(ratios: ours / llama.cpp; higher is better for t/s, lower for memory and load)');
}
if (!values['skip-vision']) {
  const visionBackend = values['vision-backend'] === 'js' ? 'js' : 'native';
  await benchVision(threads, log, visionBackend, values['vision-layers'] ? Number(values['vision-layers']) : undefined);
}
rows.push(...deepRows());
if (values.json) console.log(JSON.stringify({ rows }));

/** Runs a bench script with --json and returns its JSON lines. */
function jsonLines(script: string, args: string[]): Record<string, unknown>[] {
  const r = spawnSync(process.execPath, [join(REPO_ROOT, 'dist', 'bench', script), ...args, '--json'], {
    encoding: 'utf8', timeout: 4 * 3600_000, maxBuffer: 1 << 24, stdio: ['ignore', 'pipe', 'inherit'],
    env: forceAvx2 ? { ...process.env, GEMMA3_NATIVE_KERNELS: 'avx2', LLAMA_AVX2: '1' } : process.env,
  });
  const lines = r.stdout.split('\n');
  process.stdout.write(lines.filter((l) => !l.startsWith('{')).join('\n'));
  if (r.status !== 0) log(`${script} exited with ${r.status}${r.signal ? ` (${r.signal})` : ''}`);
  return lines.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** The long-context rows (issue 12): long prompts and deep decode, a large context, the follow-up turn. */
function deepRows(): Row[] {
  if (!values.long && !values['max-context'] && !values['follow-up']) return [];
  const model = ensureSynthetic4b('q4_0', cacheDir, log);
  const out: Row[] = [];
  const asRow = (kind: string, r: Record<string, unknown>): Row => ({ ...(r as unknown as Row), kind, weights: 'Q4_0' });
  if (values.long) {
    console.log(`\nLong prompts on the Q4_0 file, then ${32} tokens of decode at that depth (our KV f16, llama.cpp's F16):`);
    out.push(...jsonLines('long-prompt.js', [model, '--prompts', values.long, '--threads', String(threads), '--kv-type', 'f16']).map((r) => asRow('long', r)));
  }
  if (values['max-context']) {
    console.log(`\nBoth engines loaded with a ${values['max-context']}-token context (KV f16 / F16), a 512-token prompt:`);
    out.push(...jsonLines('long-prompt.js', [model, '--prompts', '512', '--decode', '16', '--context', values['max-context'], '--threads', String(threads), '--kv-type', 'f16'])
      .map((r) => asRow('context', r)));
  }
  if (values['follow-up']) {
    console.log('\nThe server\'s prompt cache on the Q4_0 file: a follow-up turn after a 4,000-token conversation (openai client, HTTP):');
    out.push(...jsonLines('prompt-cache.js', ['--model', model, '--history', '4000', '--rounds', String(rounds)])
      .map((r) => ({ ...asRow('follow_up', r), engine: 'gemma3', prompt_tps: 0, decode_tps: 0, peak_rss_mb: 0, load_s: 0 })));
  }
  return out;
}
