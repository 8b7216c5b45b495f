// Shared test utilities: where fixtures live, and reading the raw float32 goldens.
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GemmaError, type GemmaErrorCode } from '../src/errors.js';
import { Rng } from '../src/generate/rng.js';

/** Repository root (tests run from dist/test/, two levels below it). */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

export function fixturePath(...parts: string[]): string {
  return join(REPO_ROOT, 'test', 'fixtures', ...parts);
}

export function readJson<T = any>(path: string): T {
  return JSON.parse(readFileSync(path, 'utf8')) as T;
}

/**
 * The tiny-text checkpoint in `dir` (made here) with config.json keys overridden by `changes`:
 * the other files are links to the fixture's.
 */
export function tinyTextWith(dir: string, changes: Record<string, unknown>): string {
  mkdirSync(dir, { recursive: true });
  for (const f of readdirSync(fixturePath('tiny-text'))) {
    if (f !== 'config.json') symlinkSync(fixturePath('tiny-text', f), join(dir, f));
  }
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...readJson(fixturePath('tiny-text', 'config.json')), ...changes }));
  return dir;
}

/** Reads a headerless little-endian float32 golden file. */
export function readF32(path: string): Float32Array {
  const bytes = readFileSync(path);
  const out = new Float32Array(bytes.length / 4);
  new Uint8Array(out.buffer).set(bytes);
  return out;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length mismatch ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** log Σ exp(row), computed stably in float64. */
export function logsumexp(row: ArrayLike<number>): number {
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) max = Math.max(max, row[i]!);
  let s = 0;
  for (let i = 0; i < row.length; i++) s += Math.exp(row[i]! - max);
  return max + Math.log(s);
}

/** Index of the largest value (the lowest index on ties, like torch.argmax). */
export function argmax(row: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i]! > row[best]!) best = i;
  return best;
}

/** Asserts that `fn` throws a GemmaError with `code` whose message mentions every fragment. */
export function throwsGemma(fn: () => unknown, code: GemmaErrorCode, ...fragments: string[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof GemmaError, `expected GemmaError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    for (const f of fragments) assert.ok(e.message.includes(f), `message ${JSON.stringify(e.message)} should mention ${f}`);
    return true;
  });
}

/** The quantizer tests' input (ggml's reference harness, pinned digests): xorshift32 from 0x12345678, blocks of 256 of eight kinds (zeros, outliers, ties, subnormals...). */
export function referenceInput(n: number): Float32Array {
  let s = 0x12345678;
  const next = (): number => {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    return s;
  };
  const x = new Float32Array(n);
  for (let b = 0; b < n; b += 256) {
    const kind = next() % 8;
    const scale = 2 ** ((next() % 40) - 30);
    for (let j = 0; j < 256; j++) {
      const u = ((next() >>> 8) - 8388608) / 8388608;
      let v = Math.fround(u * scale);
      if (kind === 0) v = 0;
      else if (kind === 1 && j % 32 === 5) v = scale * 64;
      else if (kind === 2) v = ((next() % 17) - 8) * 0.5 * scale;
      else if (kind === 3 && j >= 128) v = 0;
      else if (kind === 4) v = Math.fround(u * 2 ** -140);
      x[b + j] = v;
    }
  }
  return x;
}

/**
 * The K-quant quantizers' hard input (48 super-blocks): scales over 30 decades, all-zero and
 * subnormal super-blocks, ties, outliers x60 (where x³ overflows float32). ggml-quants.c run
 * on it gave the digests the tests pin.
 */
export function extremeKquantInput(): Float32Array {
  const rng = new Rng(12);
  const x = new Float32Array(256 * 48);
  for (let b = 0; b < 48; b++) {
    const scale = 10 ** ((b % 16) * 2 - 16);
    for (let j = 0; j < 256; j++) {
      const i = b * 256 + j;
      if (b % 6 === 1) x[i] = 0;
      else if (b % 6 === 2) x[i] = (rng.nextFloat() - 0.5) * 1e-40;
      else if (b % 6 === 3) x[i] = (Math.floor(rng.nextFloat() * 17) - 8) * 0.5 * scale;
      else x[i] = (rng.nextFloat() - 0.5) * scale * (j % 37 === 5 ? 60 : 1);
    }
  }
  return x;
}
