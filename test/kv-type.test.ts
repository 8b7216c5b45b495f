// KV cache types (load's kvType): the reduced types against the f32 cache and the Hugging Face
// goldens of the tiny text and vision fixtures. Greedy generations must be identical; logits
// stay within the bounds measured below (the measured values are in the comments, the bounds
// leave a margin). Runs on the backend testBackend() picks (kv-type-native.test.ts: the addon).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { testBackend } from './backends.js';
import type { KvType } from '../src/backend/backend.js';
import { openCheckpoint } from '../src/formats/safetensors.js';
import { load } from '../src/index.js';
import { loadConfig, type Gemma3Config } from '../src/model/config.js';
import type { DecoderInput, Gemma3TextDecoder } from '../src/model/gemma3-text.js';
import { imageInputs } from '../src/model/image-tokens.js';
import { KvCache, kvCacheBytes } from '../src/model/kv-cache.js';
import { loadTextDecoder } from '../src/model/text-model.js';
import { loadVisionEncoder, type VisionEncoder } from '../src/model/vision-model.js';
import { REPO_ROOT, argmax, fixturePath, logsumexp, maxAbsDiff, readF32, readJson } from './helpers.js';

const backend = testBackend();

interface Fixture {
  config: Gemma3Config;
  decoder: Gemma3TextDecoder;
  vision: VisionEncoder | null;
  manifest: any;
  golden: (ref: { file: string }) => Float32Array;
}

function fixture(name: 'tiny-text' | 'tiny-vlm'): Fixture {
  const dir = fixturePath(name);
  const config = loadConfig(dir);
  const source = openCheckpoint(dir);
  try {
    const decoder = loadTextDecoder(source, config.text, backend);
    const vision = config.vision ? loadVisionEncoder(source, config, backend) : null;
    const goldens = fixturePath('goldens', name);
    return { config, decoder, vision, manifest: readJson(join(goldens, 'manifest.json')), golden: (ref) => readF32(join(goldens, ref.file)) };
  } finally {
    source.close();
  }
}

const text = fixture('tiny-text');
const vlm = fixture('tiny-vlm');

const inputs = new Map<any, DecoderInput>();
/** The decoder input of a generation golden: its prompt ids, with the images' features for the VLM. */
function promptInput(f: Fixture, gen: any): DecoderInput {
  if (!inputs.has(gen)) inputs.set(gen, encodePrompt(f, gen));
  return inputs.get(gen)!;
}

function encodePrompt(f: Fixture, gen: any): DecoderInput {
  if (!gen.from_prompt) return { ids: gen.prompt_ids };
  const prompt = f.manifest.prompts.find((p: any) => p.name === gen.from_prompt);
  const pixels = f.golden(prompt.pixel_values);
  const vc = f.config.vision!;
  const imagePixels = 3 * vc.imageSize * vc.imageSize;
  const features: Float32Array[] = [];
  for (let i = 0; i < prompt.pixel_values.shape[0]; i++) features.push(f.vision!.encodeImage(pixels.subarray(i * imagePixels, (i + 1) * imagePixels)));
  return imageInputs(gen.prompt_ids, features, f.config.imageTokenId);
}

const greedyRuns = new Map<string, { ids: number[]; rows: Float32Array[] }>();
/** Greedy decoding of a golden's prompt with a cache of `type`: the tokens and every step's logits row. */
function greedy(f: Fixture, gen: any, type: KvType): { ids: number[]; rows: Float32Array[] } {
  const key = `${gen.name} ${type}`;
  if (!greedyRuns.has(key)) greedyRuns.set(key, decodeGreedy(f, gen, type));
  return greedyRuns.get(key)!;
}

function decodeGreedy(f: Fixture, gen: any, type: KvType): { ids: number[]; rows: Float32Array[] } {
  const V = f.config.text.vocabSize;
  const cache = new KvCache(f.config.text, 128, { type });
  let logits = f.decoder.forward(promptInput(f, gen), cache, { logits: 'last' });
  const ids: number[] = [];
  const rows: Float32Array[] = [];
  for (let step = 0; step < gen.generated_ids.length; step++) {
    const row = logits.slice(0, V);
    rows.push(row);
    ids.push(argmax(row));
    logits = f.decoder.forward({ ids: [ids[step]!] }, cache, { logits: 'last' });
  }
  return { ids, rows };
}

/** Largest distance of the golden's top-10 log-probabilities (and its logsumexp) from ours, over the steps. */
function topLogProbDistance(f: Fixture, gen: any, rows: Float32Array[]): number {
  const lse = f.golden(gen.step_logsumexp);
  const topk = f.golden(gen.step_topk_logits);
  let worst = 0;
  rows.forEach((row, step) => {
    const ours = logsumexp(row);
    worst = Math.max(worst, Math.abs(ours - lse[step]!));
    for (let k = 0; k < 10; k++) {
      const id = gen.step_topk_ids[step][k];
      worst = Math.max(worst, Math.abs((row[id]! - ours) - (topk[step * 10 + k]! - lse[step]!)));
    }
  });
  return worst;
}

// Measured (fixture logits reach |5.3|; the f32 cache is 3e-6 from the goldens), over the 2 text
// and 2 vision generations of 24 greedy tokens each, every step's full logit row against the f32
// cache's, and the golden's top-10 log-probabilities and logsumexp against ours:
//                 max |Δlogit| vs f32          top-10 log-prob distance to the goldens
//                 TypeScript    native          TypeScript    native
//   f16  text     6.90e-3       6.59e-3         2.80e-3       2.93e-3
//   f16  vision   4.81e-3       4.66e-3         2.89e-3       2.86e-3
//   bf16 text     5.14e-2       5.34e-2         2.88e-2       2.86e-2
//   bf16 vision   4.04e-2       4.04e-2         1.82e-2       1.77e-2
// (native column: AVX-512 kernels; forcing AVX2 or generic gave at most 7.06e-3 / 2.96e-3 for f16
// and 5.28e-2 / 2.88e-2 for bf16.) The goldens' own
// bound is 1e-4: f16 misses it by 30x, which is why f32 stays the default (README, "KV cache
// types"). Bounds: about 1.5x the largest measured value.
const BOUNDS: Record<'f16' | 'bf16', { logit: number; logProb: number }> = {
  f16: { logit: 1e-2, logProb: 4.5e-3 },
  bf16: { logit: 8e-2, logProb: 4.5e-2 },
};

for (const type of ['f16', 'bf16'] as const) {
  for (const [name, f] of [['text', text], ['vision', vlm]] as const) {
    test(`${type} KV cache: the ${name} fixture's greedy generations are identical and its logits within the measured bound`, (t) => {
      let worstLogit = 0;
      let worstLogProb = 0;
      for (const gen of f.manifest.generation as any[]) {
        const reference = greedy(f, gen, 'f32');
        const reduced = greedy(f, gen, type);
        assert.deepEqual(reference.ids, gen.generated_ids, `${gen.name}: the f32 cache reproduces the golden`);
        assert.deepEqual(reduced.ids, gen.generated_ids, `${gen.name}: the ${type} cache gives the same tokens`);
        reduced.rows.forEach((row, step) => { worstLogit = Math.max(worstLogit, maxAbsDiff(row, reference.rows[step]!)); });
        worstLogProb = Math.max(worstLogProb, topLogProbDistance(f, gen, reduced.rows));
      }
      t.diagnostic(`${type} ${name}: max |Δlogit| vs f32 ${worstLogit.toExponential(2)}, top-10 log-prob distance to goldens ${worstLogProb.toExponential(2)}`);
      assert.ok(worstLogit > 0, `a ${type} cache must change the logits at all (else it is not in use)`);
      assert.ok(worstLogit < BOUNDS[type].logit, `max |Δlogit| ${worstLogit}`);
      assert.ok(worstLogProb < BOUNDS[type].logProb, `top-10 log-prob distance ${worstLogProb}`);
    });
  }
}

test('a reduced KV cache gives the same results however the prompt is chunked (a chunk sees its own keys rounded)', () => {
  const seq = text.manifest.sequences.find((s: any) => s.name === 'long48');
  const H = text.config.text.hiddenSize;
  // The final norm's output of every position (the logits are its product with the embedding).
  const finalRows = (ids: number[], cache: KvCache): Float32Array => {
    let rows = new Float32Array(0);
    text.decoder.forward({ ids }, cache, { logits: 'none', onHiddenState: (stage, x, T) => { if (stage === 'final_norm') rows = x.slice(0, T * H); } });
    return rows;
  };
  for (const type of ['f16', 'bf16'] as const) {
    const whole = finalRows(seq.input_ids, new KvCache(text.config.text, 64, { type }));
    const chunked = new KvCache(text.config.text, 64, { type, rollback: 0 });
    const parts = [0, 7, 30, 31, 48]; // straddling the sliding window of 16: the ring wraps
    let worst = 0;
    for (let i = 0; i + 1 < parts.length; i++) {
      const rows = finalRows(seq.input_ids.slice(parts[i], parts[i + 1]), chunked);
      worst = Math.max(worst, maxAbsDiff(rows, whole.subarray(parts[i]! * H, parts[i + 1]! * H)));
    }
    // The f32 cache's own test allows 1e-5 on logits here (summation order). Measured with the
    // decoder's rounding of a chunk's own keys and values switched off: 4.1e-3 (f16), 4.9e-2 (bf16).
    assert.ok(worst < 1e-5, `${type}: chunked vs whole max error ${worst}`);
  }
});

test('a 16-bit KV cache holds half the bytes of an f32 one, in 16-bit arrays', () => {
  const c = text.config.text;
  const f32 = new KvCache(c, 100, { type: 'f32' });
  for (const type of ['f16', 'bf16'] as const) {
    const half = new KvCache(c, 100, { type });
    assert.equal(half.sizeBytes * 2, f32.sizeBytes);
    assert.ok(half.layers.every((l) => l.k instanceof Uint16Array && l.v instanceof Uint16Array && l.type === type));
  }
  // The allocator is asked for floats: a 16-bit cache packs two elements into each.
  let asked = 0;
  new KvCache(c, 100, { type: 'f16', allocate: (n) => new Float32Array((asked = n)) });
  assert.equal(asked * 4, f32.sizeBytes / 2);
});

test("README's KV memory table is what KvCache allocates for the published 1B, 4B, 12B and 27B configs", () => {
  const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
  const GiB = 2 ** 30;
  for (const size of ['1B', '4B', '12B', '27B']) {
    const row = readme.split('\n').find((line) => line.startsWith(`| ${size} |`));
    assert.ok(row, `README has a row for ${size}`);
    const cells = row.split('|').map((c) => c.trim());
    const c = loadConfig(fixturePath('configs', `gemma-3-${size.toLowerCase()}-it`)).text;
    const globals = c.layerTypes.filter((t) => t === 'global').length;
    assert.equal(cells[2], `${globals} + ${c.layerTypes.length - globals}`, `${size} layers`);
    assert.equal(cells[3], `${c.numKvHeads} x ${c.headDim}`, `${size} KV heads`);
    const perToken = globals * 2 * c.numKvHeads * c.headDim;
    assert.equal(cells[4], `${perToken * 4 / 1024} / ${perToken * 2 / 1024} KiB`, `${size} per token`);
    [8192, 32768, 131072].forEach((context, i) => {
      const expected = context > c.maxPositionEmbeddings ? '(max 32K)'
        : `${(kvCacheBytes(c, context, 'f32') / GiB).toFixed(2)} / ${(kvCacheBytes(c, context, 'f16') / GiB).toFixed(2)}`;
      assert.equal(cells[7 + i], expected, `${size} at ${context}`);
    });
  }
  // kvCacheBytes is what a cache holds (a small one, allocated for real).
  assert.equal(kvCacheBytes(text.config.text, 100, 'bf16'), new KvCache(text.config.text, 100, { type: 'bf16' }).sizeBytes);
});

test('load({ kvType }) builds its caches of that type; an unknown type is refused before loading, naming the option', async () => {
  const model = await load(fixturePath('tiny-text'), { kvType: 'bf16', backend: backend.name, contextLength: 64 });
  try {
    assert.equal(model.kvType, 'bf16');
    assert.equal(model.decoder.createCache(8).type, 'bf16');
    const gen = text.manifest.generation[0];
    let out: number[] = [];
    for await (const chunk of model.complete({ ids: gen.prompt_ids }, { maxTokens: 8, temperature: 0 })) out = out.concat(chunk.tokenIds);
    assert.deepEqual(out, gen.generated_ids.slice(0, 8));
  } finally {
    model.dispose();
  }
  const defaults = await load(fixturePath('tiny-text'), { backend: backend.name, contextLength: 16 });
  assert.equal(defaults.kvType, 'f32');
  defaults.dispose();
  for (const bad of ['q4_0', 'F16', '', 16]) {
    await assert.rejects(load(fixturePath('tiny-text'), { kvType: bad as KvType }),
      (e: any) => e.code === 'INVALID_ARGUMENT' && /kvType must be 'f32', 'f16', 'bf16'/.test(e.message));
  }
  // Checked before the path: a missing model with a bad kvType reports the option.
  await assert.rejects(load('/nonexistent/model', { kvType: 'f8' as KvType }), (e: any) => e.code === 'INVALID_ARGUMENT');
});

test('CLI --kv-type: an unknown type is a clear error naming the flag, before any model loads', () => {
  const cli = join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js');
  for (const command of ['run', 'chat', 'logits', 'serve']) {
    const extra = command === 'run' ? ['hi'] : command === 'logits' ? ['--ids', '2'] : [];
    const args = [command, '--model', '/nonexistent/model', '--kv-type', 'q8', ...extra];
    const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 60_000, input: '' });
    assert.equal(r.status, 1, `${command}: ${r.stderr}`);
    assert.match(r.stderr, /--kv-type must be f32, f16, bf16, got "q8"/, command);
  }
});
