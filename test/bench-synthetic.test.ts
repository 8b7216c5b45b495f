// The benchmark's synthetic GGUFs (bench/synthetic.ts) for the K-quant mixes, on a small config
// (tiny-text widened to 256-value rows so every matrix is whole super-blocks): the per-tensor
// types are the converter's llama-quantize recipe, the super-blocks decode to finite, small
// weights, and the file loads and runs. The 4B itself is never written here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { BENCH_WEIGHTS, parseBenchWeights, writeSyntheticGguf } from '../bench/synthetic.js';
import { textTensorType } from '../src/convert/convert.js';
import { openGguf } from '../src/formats/gguf.js';
import { toFloat32 } from '../src/formats/dtypes.js';
import { load } from '../src/index.js';
import { parseConfig } from '../src/model/config.js';
import { textWeightSpecs } from '../src/model/weight-names.js';
import { fixturePath, readJson } from './helpers.js';
import { tempDir } from './st-writer.js';

/** tiny-text with 256-wide rows: hidden 256, intermediate 512, head_dim 64, 8 layers (use_more_bits picks layers 0, 3, 6, 7). */
function widenedConfig() {
  const json = readJson(fixturePath('tiny-text', 'config.json'));
  return parseConfig({ ...json, hidden_size: 256, intermediate_size: 512, head_dim: 64, query_pre_attn_scalar: 64 });
}

test('--weights lists are checked: every benchmark type is accepted, an unknown one is an error naming the flag', () => {
  assert.deepEqual(parseBenchWeights('q4_k_m,q6_k'), ['q4_k_m', 'q6_k']);
  assert.deepEqual(parseBenchWeights(BENCH_WEIGHTS.join(',')), [...BENCH_WEIGHTS]);
  assert.throws(() => parseBenchWeights('q4_k_m,q5_k_m'), /--weights: unknown weight type 'q5_k_m'/);
  assert.throws(() => parseBenchWeights(''), /--weights takes a comma-separated list/);
});

for (const type of ['q4_k_m', 'q6_k'] as const) {
  test(`synthetic ${type} GGUF: llama-quantize's per-tensor types, valid super-blocks, loads and runs`, { timeout: 120_000 }, async () => {
    const config = widenedConfig();
    const tmp = tempDir(`synthetic-${type}`);
    try {
      const path = join(tmp.dir, `${type}.gguf`);
      const started = performance.now();
      writeSyntheticGguf(path, config, type, () => {});
      const writeS = (performance.now() - started) / 1000;
      const file = openGguf(path);
      try {
        const counts: Record<string, number> = {};
        for (const spec of textWeightSpecs(config.text)) {
          const info = file.info(spec.canonical);
          const head = spec.canonical === 'token_embd.weight';
          const want = spec.shape.length === 2 ? textTensorType(spec, spec.shape, type, head, config.text.numLayers) : 'f32';
          assert.equal(info.dtype, want, spec.canonical);
          counts[info.dtype] = (counts[info.dtype] ?? 0) + 1;
          if (info.dtype !== 'q4_k' && info.dtype !== 'q6_k') continue;
          // Every weight finite and within the filler's ±0.05, spread over both signs.
          const w = toFloat32(file.read(spec.canonical));
          let min = Infinity, max = -Infinity, sumSq = 0;
          for (const v of w) {
            assert.ok(Number.isFinite(v), `${spec.canonical}: a non-finite weight`);
            min = Math.min(min, v);
            max = Math.max(max, v);
            sumSq += v * v;
          }
          assert.ok(min >= -0.05 && max <= 0.06 && min < -0.005 && max > 0.005, `${spec.canonical}: weights in [${min}, ${max}]`);
          const rms = Math.sqrt(sumSq / w.length);
          assert.ok(rms > 0.005 && rms < 0.04, `${spec.canonical}: rms ${rms}`);
        }
        // Q4_K_M mixes the two types (tied embedding and 4 of 8 layers' attn_v / ffn_down in Q6_K);
        // Q6_K is Q6_K everywhere.
        if (type === 'q4_k_m') assert.deepEqual(counts, { f32: 4 * 8 + 1 + 2 * 8, q4_k: 8 * 7 - 8, q6_k: 1 + 8 });
        else assert.deepEqual(counts, { f32: 4 * 8 + 1 + 2 * 8, q6_k: 1 + 8 * 7 });
        assert.equal(file.metadata.get('general.file_type'), type === 'q4_k_m' ? 15 : 18);
      } finally {
        file.close();
      }
      const model = await load(path, { backend: 'native', threads: 1 });
      try {
        const cache = model.decoder.createCache(16);
        const logits = model.decoder.forward({ ids: [2, 105, 2364, 107] }, cache, { logits: 'last' });
        assert.equal(logits.length, config.text.vocabSize);
        assert.ok(logits.every(Number.isFinite), 'finite logits');
      } finally {
        model.dispose();
      }
      assert.ok(writeS < 30, `writing took ${writeS.toFixed(1)} s`);
    } finally {
      tmp.cleanup();
    }
  });
}
