import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { openCheckpoint } from '../src/formats/safetensors.js';
import { loadConfig, parseConfig, type Gemma3Config } from '../src/model/config.js';
import {
  PREFIX_FAMILIES, resolveTextTensors, resolveVisionTensors, safetensorsName, textWeightSpecs, visionWeightSpecs,
  type PrefixFamily, type WeightSpec,
} from '../src/model/weight-names.js';
import { fixturePath, throwsGemma } from './helpers.js';
import { encodeSafetensors, tempDir, zeros, type StTensor } from './st-writer.js';

const params = (specs: WeightSpec[]): number => specs.reduce((a, s) => a + s.shape.reduce((x, d) => x * d, 1), 0);

describe('expected tensors per size (spec 1.5)', () => {
  test('tensor and parameter counts of the four releases', () => {
    const expected: Record<string, [number, number, number]> = {
      'gemma-3-1b-it': [26 * 13 + 2, 999_885_952, 0],
      'gemma-3-4b-it': [444, 3_880_263_168, 416_866_032 + 2_950_272],
      'gemma-3-12b-it': [48 * 13 + 2, 11_766_034_176, -1],
      'gemma-3-27b-it': [62 * 13 + 2, 27_009_346_304, -1],
    };
    for (const [dir, [count, textParams, visionParams]] of Object.entries(expected)) {
      const c = loadConfig(fixturePath('configs', dir));
      const text = textWeightSpecs(c.text);
      assert.equal(text.length, count, dir);
      assert.equal(params(text), textParams, dir);
      const vision = visionWeightSpecs(c);
      if (visionParams >= 0) assert.equal(params(vision), visionParams, dir);
      assert.equal(vision.length, c.vision === null ? 0 : 437 + 2, dir);
    }
  });

  test('4B names and shapes under the released prefix', () => {
    const c = loadConfig(fixturePath('configs', 'gemma-3-4b-it'));
    const byName = new Map([...textWeightSpecs(c.text), ...visionWeightSpecs(c)].map((s) => [safetensorsName(s, 'released'), s.shape]));
    assert.deepEqual(byName.get('language_model.model.embed_tokens.weight'), [262208, 2560]);
    assert.deepEqual(byName.get('language_model.model.layers.33.self_attn.q_proj.weight'), [2048, 2560]);
    assert.deepEqual(byName.get('language_model.model.layers.0.self_attn.o_proj.weight'), [2560, 2048]);
    assert.deepEqual(byName.get('language_model.model.layers.7.mlp.down_proj.weight'), [2560, 10240]);
    assert.deepEqual(byName.get('vision_tower.vision_model.embeddings.patch_embedding.weight'), [1152, 3, 14, 14]);
    assert.deepEqual(byName.get('vision_tower.vision_model.embeddings.position_embedding.weight'), [4096, 1152]);
    assert.deepEqual(byName.get('vision_tower.vision_model.encoder.layers.26.mlp.fc1.weight'), [4304, 1152]);
    assert.deepEqual(byName.get('multi_modal_projector.mm_input_projection_weight'), [1152, 2560]);
    assert.deepEqual(byName.get('multi_modal_projector.mm_soft_emb_norm.weight'), [1152]);
  });
});

describe('resolving the tiny checkpoints', () => {
  test('tiny-text (model. prefix)', () => {
    const s = openCheckpoint(fixturePath('tiny-text'));
    try {
      const config = loadConfig(fixturePath('tiny-text'));
      const map = resolveTextTensors(s, config);
      assert.equal(map.size, 106);
      assert.equal(map.get('token_embd.weight'), 'model.embed_tokens.weight');
      assert.equal(map.get('blk.0.attn_norm.weight'), 'model.layers.0.input_layernorm.weight');
      assert.equal(map.get('blk.5.ffn_norm.weight'), 'model.layers.5.pre_feedforward_layernorm.weight');
      assert.equal(map.get('blk.7.post_ffw_norm.weight'), 'model.layers.7.post_feedforward_layernorm.weight');
      assert.equal(map.get('blk.3.attn_output.weight'), 'model.layers.3.self_attn.o_proj.weight');
      assert.equal(map.get('output_norm.weight'), 'model.norm.weight');
      assert.deepEqual(new Set(map.values()), new Set(s.names()));
      assert.deepEqual(resolveTextTensors(s, config.text), map, 'the text part alone works too');
      assert.equal(resolveVisionTensors(s, config).size, 0);
    } finally {
      s.close();
    }
  });

  test('tiny-vlm (released prefixes)', () => {
    const s = openCheckpoint(fixturePath('tiny-vlm'));
    try {
      const config = loadConfig(fixturePath('tiny-vlm'));
      const text = resolveTextTensors(s, config);
      assert.equal(text.get('blk.0.ffn_up.weight'), 'language_model.model.layers.0.mlp.up_proj.weight');
      const vision = resolveVisionTensors(s, config);
      assert.equal(vision.size, 2 * 16 + 5 + 2);
      assert.equal(vision.get('v.blk.1.ffn_up.weight'), 'vision_tower.vision_model.encoder.layers.1.mlp.fc1.weight');
      assert.equal(vision.get('mm.input_projection.weight'), 'multi_modal_projector.mm_input_projection_weight');
      assert.equal(text.size + vision.size, s.names().length);
    } finally {
      s.close();
    }
  });
});

// A tiny synthetic model, written under any prefix family.
const SMALL = parseConfig({
  model_type: 'gemma3', mm_tokens_per_image: 4,
  text_config: { vocab_size: 10, hidden_size: 8, intermediate_size: 16, num_hidden_layers: 2, num_attention_heads: 2, num_key_value_heads: 1, head_dim: 4 },
  vision_config: { hidden_size: 4, intermediate_size: 8, num_hidden_layers: 1, num_attention_heads: 2, image_size: 8, patch_size: 2 },
});

function tensorsFor(config: Gemma3Config, family: PrefixFamily, edit: (t: StTensor) => StTensor | null = (t) => t): StTensor[] {
  const specs = [...textWeightSpecs(config.text), ...(family === 'causal' ? [] : visionWeightSpecs(config))];
  return specs.flatMap((s) => {
    const t = edit({ name: safetensorsName(s, family)!, dtype: 'BF16', shape: [...s.shape], data: zeros('BF16', [...s.shape]) });
    return t === null ? [] : [t];
  });
}

function withCheckpoint(tensors: StTensor[], check: (dir: string, file: string) => void): void {
  const t = tempDir('names');
  try {
    check(t.dir, t.write('model.safetensors', encodeSafetensors(tensors)));
  } finally {
    t.cleanup();
  }
}

describe('prefix families and errors', () => {
  test('every family resolves to the same canonical names', () => {
    const expectedText = textWeightSpecs(SMALL.text).map((s) => s.canonical);
    for (const family of PREFIX_FAMILIES) {
      withCheckpoint(tensorsFor(SMALL, family), (dir) => {
        const s = openCheckpoint(dir);
        const text = resolveTextTensors(s, SMALL);
        assert.deepEqual([...text.keys()], expectedText, family);
        const prefix = { causal: 'model.layers.', released: 'language_model.model.layers.', resaved: 'model.language_model.layers.' }[family];
        assert.equal(text.get('blk.1.attn_q.weight'), `${prefix}1.self_attn.q_proj.weight`);
        if (family !== 'causal') {
          const vision = resolveVisionTensors(s, SMALL);
          assert.equal(vision.size, 16 + 5 + 2);
          const vp = family === 'resaved' ? 'model.' : '';
          assert.equal(vision.get('v.post_ln.bias'), `${vp}vision_tower.vision_model.post_layernorm.bias`);
          assert.equal(vision.get('mm.soft_emb_norm.weight'), `${vp}multi_modal_projector.mm_soft_emb_norm.weight`);
        }
        s.close();
      });
    }
  });

  test('a missing tensor is MISSING_TENSOR naming it and the file', () => {
    const tensors = tensorsFor(SMALL, 'released', (t) => (t.name.endsWith('layers.1.self_attn.k_norm.weight') ? null : t));
    withCheckpoint(tensors, (dir, file) => {
      const s = openCheckpoint(dir);
      throwsGemma(() => resolveTextTensors(s, SMALL), 'MISSING_TENSOR', 'language_model.model.layers.1.self_attn.k_norm.weight', 'blk.1.attn_k_norm.weight', file);
      s.close();
    });
    const noVision = tensorsFor(SMALL, 'resaved', (t) => (t.name.includes('fc2.bias') ? null : t));
    withCheckpoint(noVision, (dir, file) => {
      const s = openCheckpoint(dir);
      throwsGemma(() => resolveVisionTensors(s, SMALL), 'MISSING_TENSOR', 'model.vision_tower.vision_model.encoder.layers.0.mlp.fc2.bias', file);
      s.close();
    });
  });

  test('no token embedding under any prefix is MISSING_TENSOR listing the candidates', () => {
    withCheckpoint(tensorsFor(SMALL, 'causal', (t) => (t.name.includes('embed_tokens') ? null : t)), (dir, file) => {
      const s = openCheckpoint(dir);
      throwsGemma(() => resolveTextTensors(s, SMALL), 'MISSING_TENSOR', 'model.embed_tokens.weight', 'language_model.model.embed_tokens.weight', 'model.language_model.embed_tokens.weight', file);
      s.close();
    });
  });

  test('a shape that disagrees with config.json is SHAPE_MISMATCH naming tensor and both shapes', () => {
    const tensors = tensorsFor(SMALL, 'causal', (t) => (t.name === 'model.layers.0.self_attn.q_proj.weight' ? { ...t, shape: [4, 8], data: zeros('BF16', [4, 8]) } : t));
    withCheckpoint(tensors, (dir, file) => {
      const s = openCheckpoint(dir);
      throwsGemma(() => resolveTextTensors(s, SMALL), 'SHAPE_MISMATCH', 'model.layers.0.self_attn.q_proj.weight', '[4, 8]', '[8, 8]', file);
      s.close();
    });
    // The real vocab mismatch: a 1B-style embedding (V rows) against a config with more rows.
    const bigger = parseConfig({ model_type: 'gemma3_text', vocab_size: 12, hidden_size: 8, intermediate_size: 16, num_hidden_layers: 2, num_attention_heads: 2, num_key_value_heads: 1, head_dim: 4 });
    withCheckpoint(tensorsFor(SMALL, 'causal'), (dir) => {
      const s = openCheckpoint(dir);
      throwsGemma(() => resolveTextTensors(s, bigger), 'SHAPE_MISMATCH', 'model.embed_tokens.weight', '[10, 8]', '[12, 8]');
      s.close();
    });
  });

  test('an untied config needs lm_head.weight', () => {
    const untied = parseConfig({ model_type: 'gemma3_text', tie_word_embeddings: false, vocab_size: 10, hidden_size: 8, intermediate_size: 16, num_hidden_layers: 2, num_attention_heads: 2, num_key_value_heads: 1, head_dim: 4 });
    withCheckpoint(tensorsFor(SMALL, 'causal'), (dir) => {
      const s = openCheckpoint(dir);
      throwsGemma(() => resolveTextTensors(s, untied), 'MISSING_TENSOR', 'lm_head.weight');
      s.close();
    });
    const withHead = [...tensorsFor(SMALL, 'causal'), { name: 'lm_head.weight', dtype: 'BF16', shape: [10, 8], data: zeros('BF16', [10, 8]) }];
    withCheckpoint(withHead, (dir) => {
      const s = openCheckpoint(dir);
      assert.equal(resolveTextTensors(s, untied).get('output.weight'), 'lm_head.weight');
      s.close();
    });
  });

  test('errors in a sharded checkpoint name the folder', () => {
    const t = tempDir('shardnames');
    try {
      const all = tensorsFor(SMALL, 'causal', (x) => (x.name === 'model.norm.weight' ? null : x));
      t.write('model-00001-of-00002.safetensors', encodeSafetensors(all.slice(0, 5)));
      t.write('model-00002-of-00002.safetensors', encodeSafetensors(all.slice(5)));
      const s = openCheckpoint(t.dir);
      throwsGemma(() => resolveTextTensors(s, SMALL), 'MISSING_TENSOR', 'model.norm.weight', t.dir);
      s.close();
    } finally {
      t.cleanup();
    }
  });
});
