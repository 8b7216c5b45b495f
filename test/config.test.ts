import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { loadConfig, loadGenerationConfig, parseConfig, parseGenerationConfig, type Gemma3Config } from '../src/model/config.js';
import { fixturePath, readJson, throwsGemma } from './helpers.js';
import { tempDir } from './st-writer.js';

/** Asserts a GemmaError with this code whose message contains every fragment. */
const globals = (c: Gemma3Config): number[] => c.text.layerTypes.flatMap((t, i) => (t === 'global' ? [i] : []));
const range = (from: number, to: number, step: number): number[] => Array.from({ length: Math.floor((to - from) / step) + 1 }, (_, i) => from + i * step);

const SIGLIP = { hiddenSize: 1152, intermediateSize: 4304, numLayers: 27, numHeads: 16, numChannels: 3, imageSize: 896, patchSize: 14, layerNormEps: 1e-6 };

// Spec table 1.1, effective values.
const SIZES = [
  { dir: 'gemma-3-1b-it', modelType: 'gemma3_text', H: 1152, L: 26, Nq: 4, Nkv: 1, D: 256, F: 6912, V: 262144, W: 512, globals: [5, 11, 17, 23], scale: 1, qpas: 256, maxPos: 32768, vision: null },
  { dir: 'gemma-3-4b-it', modelType: 'gemma3', H: 2560, L: 34, Nq: 8, Nkv: 4, D: 256, F: 10240, V: 262208, W: 1024, globals: range(5, 29, 6), scale: 8, qpas: 256, maxPos: 131072, vision: SIGLIP },
  { dir: 'gemma-3-12b-it', modelType: 'gemma3', H: 3840, L: 48, Nq: 16, Nkv: 8, D: 256, F: 15360, V: 262208, W: 1024, globals: range(5, 47, 6), scale: 8, qpas: 256, maxPos: 131072, vision: SIGLIP },
  { dir: 'gemma-3-27b-it', modelType: 'gemma3', H: 5376, L: 62, Nq: 32, Nkv: 16, D: 128, F: 21504, V: 262208, W: 1024, globals: range(5, 59, 6), scale: 8, qpas: 168, maxPos: 131072, vision: SIGLIP },
] as const;

describe('published configs (spec table 1.1)', () => {
  for (const s of SIZES) {
    test(s.dir, () => {
      const c = loadConfig(fixturePath('configs', s.dir));
      const t = c.text;
      assert.equal(c.modelType, s.modelType);
      assert.deepEqual(
        [t.hiddenSize, t.numLayers, t.numHeads, t.numKvHeads, t.headDim, t.intermediateSize, t.vocabSize, t.slidingWindow],
        [s.H, s.L, s.Nq, s.Nkv, s.D, s.F, s.V, s.W],
      );
      assert.equal(t.layerTypes.length, s.L);
      assert.deepEqual(globals(c), s.globals);
      assert.equal(t.ropeGlobalBase, 1_000_000);
      assert.equal(t.ropeLocalBase, 10_000);
      assert.equal(t.ropeGlobalScalingFactor, s.scale);
      assert.equal(t.ropeLocalScalingFactor, 1);
      assert.equal(t.queryPreAttnScalar, s.qpas);
      assert.equal(t.maxPositionEmbeddings, s.maxPos);
      assert.equal(t.rmsNormEps, 1e-6);
      assert.equal(t.finalLogitSoftcap, null);
      assert.equal(t.attnLogitSoftcap, null);
      assert.equal(t.tieWordEmbeddings, true);
      assert.equal(t.bosTokenId, 2);
      assert.equal(t.padTokenId, 0);
      assert.deepEqual(t.eosTokenIds, [1, 106]);
      assert.deepEqual(c.vision, s.vision);
      assert.deepEqual([c.mmTokensPerImage, c.boiTokenId, c.eoiTokenId, c.imageTokenId], [256, 255999, 256000, 262144]);
    });
  }

  test('generation_config.json of the -it releases', () => {
    for (const s of SIZES) {
      assert.deepEqual(loadGenerationConfig(fixturePath('configs', s.dir)), {
        eosTokenIds: [1, 106], bosTokenId: 2, padTokenId: 0, doSample: true, topK: 64, topP: 0.95,
      });
    }
  });

  test('the 4B text_config is sparse: defaults fill heads, head_dim, vocab', () => {
    const json = readJson(fixturePath('configs', 'gemma-3-4b-it', 'config.json'));
    assert.deepEqual(Object.keys(json.text_config).sort(), ['hidden_size', 'intermediate_size', 'model_type', 'num_hidden_layers', 'rope_scaling', 'sliding_window']);
  });
});

describe('tiny fixtures', () => {
  test('tiny-text', () => {
    const c = loadConfig(fixturePath('tiny-text'));
    assert.equal(c.modelType, 'gemma3_text');
    assert.equal(c.vision, null);
    const t = c.text;
    assert.deepEqual([t.vocabSize, t.hiddenSize, t.intermediateSize, t.numLayers, t.numHeads, t.numKvHeads, t.headDim], [262144, 64, 128, 8, 4, 2, 32]);
    assert.equal(t.queryPreAttnScalar, 24);
    assert.equal(t.slidingWindow, 16);
    assert.deepEqual(globals(c), [5]);
    assert.deepEqual([t.ropeGlobalBase, t.ropeLocalBase, t.ropeGlobalScalingFactor, t.ropeLocalScalingFactor], [1e6, 1e4, 8, 1]);
    assert.deepEqual(loadGenerationConfig(fixturePath('tiny-text')), { eosTokenIds: [1, 106], bosTokenId: 2, padTokenId: 0, doSample: true, topK: 64, topP: 0.95 });
  });

  test('tiny-vlm', () => {
    const c = loadConfig(fixturePath('tiny-vlm'));
    assert.equal(c.modelType, 'gemma3');
    assert.equal(c.text.vocabSize, 262208);
    assert.equal(c.text.hiddenSize, 64);
    assert.deepEqual(globals(c), [5]);
    assert.deepEqual(c.vision, { hiddenSize: 32, intermediateSize: 64, numLayers: 2, numHeads: 2, numChannels: 3, imageSize: 56, patchSize: 14, layerNormEps: 1e-6 });
    assert.equal(c.mmTokensPerImage, 4);
  });
});

const TEXT = { model_type: 'gemma3_text', num_hidden_layers: 8 };
const MM = { model_type: 'gemma3', vision_config: { image_size: 896, patch_size: 14 } };
const parseText = (extra: Record<string, unknown>) => parseConfig({ ...TEXT, ...extra }, 'x/config.json');

describe('defaults', () => {
  test('an empty gemma3_text config gets the Gemma3TextConfig defaults', () => {
    const t = parseConfig({ model_type: 'gemma3_text' }).text;
    assert.deepEqual(
      [t.vocabSize, t.hiddenSize, t.intermediateSize, t.numLayers, t.numHeads, t.numKvHeads, t.headDim, t.queryPreAttnScalar, t.slidingWindow],
      [262208, 2304, 9216, 26, 8, 4, 256, 256, 4096],
    );
    assert.deepEqual([t.ropeGlobalBase, t.ropeLocalBase, t.ropeGlobalScalingFactor, t.rmsNormEps, t.maxPositionEmbeddings], [1e6, 1e4, 1, 1e-6, 131072]);
    assert.deepEqual([t.bosTokenId, t.eosTokenIds, t.padTokenId, t.tieWordEmbeddings], [2, [1], 0, true]);
  });

  test('a gemma3 config without vision_config gets the SiglipVisionConfig defaults', () => {
    // (224 px / 16 = 14 patches per side cannot pool to the default 256 tokens: HF fails too.)
    throwsGemma(() => parseConfig({ model_type: 'gemma3' }), 'BAD_FORMAT', 'mm_tokens_per_image (256)', '14 patches');
    const c = parseConfig({ model_type: 'gemma3', mm_tokens_per_image: 49 });
    assert.deepEqual(c.vision, { hiddenSize: 768, intermediateSize: 3072, numLayers: 12, numHeads: 12, numChannels: 3, imageSize: 224, patchSize: 16, layerNormEps: 1e-6 });
    assert.equal(c.text.numLayers, 26);
    assert.equal(c.text.hiddenSize, 2304);
  });

  test('model_type may be inferred from architectures', () => {
    assert.equal(parseConfig({ architectures: ['Gemma3ForCausalLM'] }).modelType, 'gemma3_text');
    assert.equal(parseConfig({ architectures: ['Gemma3ForConditionalGeneration'], mm_tokens_per_image: 49 }).modelType, 'gemma3');
  });

  test('eos_token_id as a number or an array; text_config wins over the top level', () => {
    assert.deepEqual(parseText({ eos_token_id: 106 }).text.eosTokenIds, [106]);
    assert.deepEqual(parseText({ eos_token_id: [1, 106] }).text.eosTokenIds, [1, 106]);
    assert.deepEqual(parseConfig({ ...MM, eos_token_id: [1, 106] }).text.eosTokenIds, [1, 106]);
    assert.deepEqual(parseConfig({ ...MM, eos_token_id: [1, 106], text_config: { eos_token_id: 7 } }).text.eosTokenIds, [7]);
  });

  test('token id aliases *_token_id are accepted', () => {
    const c = parseConfig({ ...MM, image_token_id: 5, boi_token_id: 6, eoi_token_id: 7 });
    assert.deepEqual([c.imageTokenId, c.boiTokenId, c.eoiTokenId], [5, 6, 7]);
  });
});

describe('layer pattern', () => {
  test('sliding_window_pattern P: layer i sliding iff (i+1) % P != 0', () => {
    const c = parseText({ num_hidden_layers: 10, sliding_window_pattern: 3 });
    assert.deepEqual(globals(c), [2, 5, 8]);
    assert.deepEqual(globals(parseText({ num_hidden_layers: 12 })), [5, 11]); // default 6
  });

  test('layer_types wins over sliding_window_pattern', () => {
    const layer_types = ['full_attention', 'sliding_attention', 'full_attention', 'sliding_attention'];
    const c = parseText({ num_hidden_layers: 4, sliding_window_pattern: 6, layer_types });
    assert.deepEqual(c.text.layerTypes, ['global', 'sliding', 'global', 'sliding']);
  });

  test('layer_types of the wrong length or with unknown entries is BAD_FORMAT', () => {
    throwsGemma(() => parseText({ layer_types: ['sliding_attention'] }), 'BAD_FORMAT', 'layer_types', 'x/config.json');
    const lt = Array(8).fill('sliding_attention');
    lt[3] = 'chunked_attention';
    throwsGemma(() => parseText({ layer_types: lt }), 'BAD_FORMAT', 'layer_types[3]', 'chunked_attention');
    throwsGemma(() => parseText({ sliding_window_pattern: 0 }), 'BAD_FORMAT', 'sliding_window_pattern');
  });
});

describe('RoPE', () => {
  test('flat keys: rope_scaling linear on global layers, either spelling of the type', () => {
    const a = parseText({ rope_theta: 5e5, rope_local_base_freq: 2e4, rope_scaling: { rope_type: 'linear', factor: 4 } }).text;
    assert.deepEqual([a.ropeGlobalBase, a.ropeLocalBase, a.ropeGlobalScalingFactor, a.ropeLocalScalingFactor], [5e5, 2e4, 4, 1]);
    assert.equal(parseText({ rope_scaling: { type: 'linear', factor: 8.0 } }).text.ropeGlobalScalingFactor, 8);
    assert.equal(parseText({ rope_scaling: null }).text.ropeGlobalScalingFactor, 1);
    assert.equal(parseText({ rope_scaling: { rope_type: 'default' } }).text.ropeGlobalScalingFactor, 1);
  });

  test('v5 rope_parameters per layer type', () => {
    const t = parseText({
      rope_parameters: {
        full_attention: { rope_type: 'linear', factor: 8.0, rope_theta: 1e6 },
        sliding_attention: { rope_type: 'default', rope_theta: 1e4 },
      },
    }).text;
    assert.deepEqual([t.ropeGlobalBase, t.ropeLocalBase, t.ropeGlobalScalingFactor, t.ropeLocalScalingFactor], [1e6, 1e4, 8, 1]);
    const scaledLocal = parseText({
      rope_scaling: { rope_type: 'linear', factor: 99 }, // ignored: rope_parameters wins
      rope_parameters: { full_attention: { rope_type: 'default', rope_theta: 2e6 }, sliding_attention: { rope_type: 'linear', factor: 2, rope_theta: 5e3 } },
    }).text;
    assert.deepEqual([scaledLocal.ropeGlobalBase, scaledLocal.ropeLocalBase, scaledLocal.ropeGlobalScalingFactor, scaledLocal.ropeLocalScalingFactor], [2e6, 5e3, 1, 2]);
  });

  test('a v5 tiny-vlm style multimodal config parses', () => {
    const json = readJson(fixturePath('tiny-vlm', 'config.json'));
    const tc = json.text_config;
    delete tc.rope_theta; delete tc.rope_local_base_freq; delete tc.rope_scaling; delete tc.sliding_window_pattern;
    tc.rope_parameters = { full_attention: { rope_type: 'linear', factor: 8.0, rope_theta: 1e6 }, sliding_attention: { rope_type: 'default', rope_theta: 1e4 } };
    assert.deepEqual(parseConfig(json).text, loadConfig(fixturePath('tiny-vlm')).text);
  });

  test('other rope types are UNSUPPORTED_MODEL; a bad factor is BAD_FORMAT', () => {
    throwsGemma(() => parseText({ rope_scaling: { rope_type: 'yarn', factor: 4 } }), 'UNSUPPORTED_MODEL', 'yarn', 'rope_scaling');
    throwsGemma(() => parseText({ rope_parameters: { full_attention: { rope_type: 'dynamic', factor: 2 } } }), 'UNSUPPORTED_MODEL', 'dynamic');
    throwsGemma(() => parseText({ rope_scaling: { rope_type: 'linear' } }), 'BAD_FORMAT', 'rope_scaling.factor');
    throwsGemma(() => parseText({ rope_scaling: { rope_type: 'linear', factor: -1 } }), 'BAD_FORMAT', 'rope_scaling.factor');
    throwsGemma(() => parseText({ rope_theta: 0 }), 'BAD_FORMAT', 'rope_theta');
  });
});

describe('rejections', () => {
  test('unknown model_type is UNSUPPORTED_MODEL naming it', () => {
    throwsGemma(() => parseConfig({ model_type: 'llama' }, 'a/config.json'), 'UNSUPPORTED_MODEL', 'llama', 'a/config.json');
    throwsGemma(() => parseConfig({ model_type: 'gemma2' }), 'UNSUPPORTED_MODEL', 'gemma2');
    throwsGemma(() => parseConfig({ model_type: 'gemma3', text_config: { model_type: 'gemma2' } }), 'UNSUPPORTED_MODEL', 'gemma2');
    throwsGemma(() => parseConfig({ model_type: 'gemma3', vision_config: { model_type: 'clip_vision_model' } }), 'UNSUPPORTED_MODEL', 'clip_vision_model');
    throwsGemma(() => parseConfig({}), 'BAD_FORMAT', 'model_type');
    throwsGemma(() => parseConfig([1, 2]), 'BAD_FORMAT', 'not a JSON object');
  });

  test('features Gemma 3 does not have are UNSUPPORTED_MODEL', () => {
    throwsGemma(() => parseText({ hidden_activation: 'silu' }), 'UNSUPPORTED_MODEL', 'hidden_activation');
    throwsGemma(() => parseText({ attention_bias: true }), 'UNSUPPORTED_MODEL', 'attention_bias');
    throwsGemma(() => parseText({ use_bidirectional_attention: true }), 'UNSUPPORTED_MODEL', 'use_bidirectional_attention');
  });

  test('bad sizes are BAD_FORMAT naming the key', () => {
    for (const bad of [0, -4, 1.5, '64', null]) {
      throwsGemma(() => parseText({ hidden_size: bad }), 'BAD_FORMAT', 'hidden_size', 'x/config.json');
    }
    throwsGemma(() => parseText({ num_hidden_layers: 0 }), 'BAD_FORMAT', 'num_hidden_layers');
    throwsGemma(() => parseText({ vocab_size: -1 }), 'BAD_FORMAT', 'vocab_size');
    throwsGemma(() => parseText({ head_dim: 33 }), 'BAD_FORMAT', 'head_dim');
    throwsGemma(() => parseText({ rms_norm_eps: 'small' }), 'BAD_FORMAT', 'rms_norm_eps');
    throwsGemma(() => parseText({ query_pre_attn_scalar: 0 }), 'BAD_FORMAT', 'query_pre_attn_scalar');
    throwsGemma(() => parseText({ final_logit_softcapping: 'yes' }), 'BAD_FORMAT', 'final_logit_softcapping');
    throwsGemma(() => parseText({ eos_token_id: [] }), 'BAD_FORMAT', 'eos_token_id');
    throwsGemma(() => parseConfig({ model_type: 'gemma3', text_config: { num_hidden_layers: -2 } }), 'BAD_FORMAT', 'text_config.num_hidden_layers');
    throwsGemma(() => parseConfig({ model_type: 'gemma3', text_config: 5 }), 'BAD_FORMAT', 'text_config');
    throwsGemma(() => parseConfig({ model_type: 'gemma3', vision_config: { image_size: 0 } }), 'BAD_FORMAT', 'vision_config.image_size');
  });

  test('heads that do not divide are BAD_FORMAT', () => {
    throwsGemma(() => parseText({ num_attention_heads: 6, num_key_value_heads: 4 }), 'BAD_FORMAT', 'num_key_value_heads', 'num_attention_heads');
    throwsGemma(() => parseConfig({ model_type: 'gemma3', vision_config: { hidden_size: 100, num_attention_heads: 16 } }), 'BAD_FORMAT', 'vision_config.num_attention_heads');
    throwsGemma(() => parseConfig({ model_type: 'gemma3', vision_config: { image_size: 100, patch_size: 14 } }), 'BAD_FORMAT', 'vision_config.patch_size');
    throwsGemma(() => parseConfig({ ...MM, mm_tokens_per_image: 200 }), 'BAD_FORMAT', 'mm_tokens_per_image');
  });
});

describe('files', () => {
  test('loadConfig: missing folder or file is FILE_NOT_FOUND, bad JSON is BAD_FORMAT', () => {
    const t = tempDir('cfg');
    try {
      throwsGemma(() => loadConfig(t.dir + '/nope'), 'FILE_NOT_FOUND', 'config.json');
      throwsGemma(() => loadConfig(t.dir), 'FILE_NOT_FOUND', t.dir);
      const path = t.write('config.json', '{"model_type": "gemma3_text",');
      throwsGemma(() => loadConfig(t.dir), 'BAD_FORMAT', path);
      t.write('config.json', '{"model_type": "llama"}');
      throwsGemma(() => loadConfig(t.dir), 'UNSUPPORTED_MODEL', path, 'llama');
    } finally {
      t.cleanup();
    }
  });

  test('loadGenerationConfig: optional file; bad JSON or bad values are BAD_FORMAT', () => {
    const t = tempDir('gen');
    try {
      assert.deepEqual(loadGenerationConfig(t.dir), {});
      const path = t.write('generation_config.json', 'not json');
      throwsGemma(() => loadGenerationConfig(t.dir), 'BAD_FORMAT', path);
      t.write('generation_config.json', JSON.stringify({ eos_token_id: 1, temperature: 0.7, top_k: 40, top_p: 0.9, min_p: 0.05, repetition_penalty: 1.1, do_sample: false, pad_token_id: null }));
      assert.deepEqual(loadGenerationConfig(t.dir), { eosTokenIds: [1], temperature: 0.7, topK: 40, topP: 0.9, minP: 0.05, repetitionPenalty: 1.1, doSample: false });
      t.write('generation_config.json', JSON.stringify({ top_k: 'many' }));
      throwsGemma(() => loadGenerationConfig(t.dir), 'BAD_FORMAT', 'top_k', path);
    } finally {
      t.cleanup();
    }
    throwsGemma(() => parseGenerationConfig({ do_sample: 'yes' }), 'BAD_FORMAT', 'do_sample');
    throwsGemma(() => parseGenerationConfig({ temperature: -1 }), 'BAD_FORMAT', 'temperature');
    throwsGemma(() => parseGenerationConfig({ eos_token_id: ['a'] }), 'BAD_FORMAT', 'eos_token_id');
    throwsGemma(() => parseGenerationConfig('x'), 'BAD_FORMAT');
  });
});
