// Tokenizer speed: encodes test/fixtures/tokenizer/bench-mixed-1mb.txt (add_special_tokens=false)
// with ours and with the HF Rust core (`tokenizers` npm package, N-API), alternating, and prints
// the median MB/s of several runs of each. Our chunk cache is emptied before every run, so each
// run is a cold encode of the whole text (the Rust core's cache cannot be emptied from JS; its
// BPE words are whole lines here, so it gains little from it).
//
//   node dist/bench/tokenizer.js [runs=5]
//
// The Rust package is `require('tokenizers')` from this repository; set GEMMA_BENCH_TOKENIZERS to
// another path (e.g. /tmp/x/node_modules/tokenizers) to use a different copy. If its native binary
// cannot load, the table says so instead of failing.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadTokenizer } from '../src/tokenizer/tokenizer.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const BENCH_TEXT = join(ROOT, 'test', 'fixtures', 'tokenizer', 'bench-mixed-1mb.txt');
const TOKENIZER_DIR = join(ROOT, 'test', 'fixtures', 'tiny-text');
const REFERENCE_SHA256 = '8aab3ae954e35976e73f08200e15a94e1205dde0018caa3b78c1783785d83c70';

interface RustTokenizer {
  encode(text: string, pair?: string | null, options?: { addSpecialTokens?: boolean } | null): Promise<{ getIds(): number[] }>;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function sha256Ids(ids: readonly number[]): string {
  return createHash('sha256').update(new Uint8Array(Uint32Array.from(ids).buffer)).digest('hex');
}

async function main(): Promise<void> {
  const runs = Math.max(1, Number(process.argv[2] ?? 5) | 0);
  const text = readFileSync(BENCH_TEXT, 'utf8');
  const mb = Buffer.byteLength(text, 'utf8') / 1e6;

  let t0 = performance.now();
  const ours = await loadTokenizer(TOKENIZER_DIR);
  const oursLoadMs = performance.now() - t0;

  let rust: RustTokenizer | undefined;
  let rustLoadMs = NaN;
  let rustError = '';
  const rustPath = process.env['GEMMA_BENCH_TOKENIZERS'] ?? 'tokenizers';
  try {
    const require = createRequire(join(ROOT, 'package.json'));
    const mod = require(rustPath) as { Tokenizer: { fromFile(path: string): RustTokenizer } };
    t0 = performance.now();
    rust = mod.Tokenizer.fromFile(join(TOKENIZER_DIR, 'tokenizer.json'));
    rustLoadMs = performance.now() - t0;
  } catch (e) {
    rustError = String((e as Error).message ?? e).split('\n')[0]!.slice(0, 120);
  }

  const oursTimes: number[] = [];
  const rustTimes: number[] = [];
  let oursIds: number[] = [];
  let rustIds: number[] = [];
  for (let r = 0; r < runs; r++) {
    ours.clearCache();
    t0 = performance.now();
    oursIds = ours.encode(text, { addBos: false });
    oursTimes.push(performance.now() - t0);
    if (rust !== undefined) {
      try {
        t0 = performance.now();
        rustIds = (await rust.encode(text, null, { addSpecialTokens: false })).getIds();
        rustTimes.push(performance.now() - t0);
      } catch (e) {
        rustError = `encode failed: ${String((e as Error).message ?? e).slice(0, 100)}`;
        rust = undefined;
      }
    }
  }

  const oursHash = sha256Ids(oursIds);
  const row = (name: string, loadMs: number, times: number[], ids: number[], note: string): string => {
    const med = median(times);
    return `| ${name} | ${loadMs.toFixed(0)} | ${(mb / (med / 1000)).toFixed(2)} | ${med.toFixed(0)} | ${(mb / (Math.min(...times) / 1000)).toFixed(2)} | ${ids.length} | ${note} |`;
  };
  console.log(`bench text: ${BENCH_TEXT} (${mb.toFixed(3)} MB), ${runs} runs each, alternating; node ${process.version}`);
  console.log('');
  console.log('| tokenizer | load ms | median MB/s | median ms | best MB/s | ids | ids check |');
  console.log('|---|---|---|---|---|---|---|');
  console.log(row('ours (TypeScript, cold cache each run)', oursLoadMs, oursTimes, oursIds, oursHash === REFERENCE_SHA256 ? 'sha256 = reference' : `MISMATCH ${oursHash.slice(0, 12)}`));
  if (rustTimes.length > 0) {
    const same = rustIds.length === oursIds.length && rustIds.every((v, i) => v === oursIds[i]);
    console.log(row(`HF tokenizers (Rust, N-API, ${rustPath})`, rustLoadMs, rustTimes, rustIds, same ? 'identical to ours' : 'DIFFERS from ours'));
    console.log('');
    console.log(`ours / Rust speed: ${(median(rustTimes) / median(oursTimes)).toFixed(2)}x`);
  } else {
    console.log(`| HF tokenizers (Rust, ${rustPath}) | - | - | - | - | - | unavailable: ${rustError.replaceAll('|', '/')} |`);
  }
  if (oursHash !== REFERENCE_SHA256) process.exitCode = 1;
}

await main();
