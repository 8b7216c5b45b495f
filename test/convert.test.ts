// Checkpoint → GGUF conversion and GGUF loading: metadata, tensor names and types as llama.cpp's
// tools write them, and the converted tiny model computing the same logits as the safetensors one.
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { JsBackend } from '../src/backend/js-backend.js';
import { convertCheckpoint, llamaQuantizeOrder, textTensorType, type ConvertType } from '../src/convert/convert.js';
import { TokenType } from '../src/convert/vocab.js';
import { toFloat32 } from '../src/formats/dtypes.js';
import { openGguf, type GgufSource, type GgufValue } from '../src/formats/gguf.js';
import { resolveGgufTextTensors, resolveGgufVisionTensors } from '../src/formats/gguf-names.js';
import { writeGguf } from '../src/formats/gguf-writer.js';
import { openCheckpoint } from '../src/formats/safetensors.js';
import { loadConfig, type Gemma3TextConfig } from '../src/model/config.js';
import { Gemma3TextDecoder } from '../src/model/gemma3-text.js';
import { configFromGguf, configFromGgufSource, visionConfigFromMmproj, withMmproj } from '../src/model/gguf-config.js';
import { KvCache } from '../src/model/kv-cache.js';
import { resolveTextTensors, resolveVisionTensors } from '../src/model/weight-names.js';
import { loadTextWeights } from '../src/model/weights.js';
import { fixturePath, maxAbsDiff, readJson, throwsGemma } from './helpers.js';
import { tempDir } from './st-writer.js';

const TEXT = fixturePath('tiny-text');
const VLM = fixturePath('tiny-vlm');
const tmp = tempDir('convert');
after(() => tmp.cleanup());

const converted = new Map<ConvertType, string>();
function gguf(type: ConvertType): string {
  let path = converted.get(type);
  if (path === undefined) {
    path = join(tmp.dir, `tiny-${type}.gguf`);
    convertCheckpoint(TEXT, path, { type });
    converted.set(type, path);
  }
  return path;
}

const seq: number[] = readJson(fixturePath('goldens', 'tiny-text', 'manifest.json')).sequences.find((s: any) => s.name === 'hello').input_ids;

function ggufDecoder(path: string): Gemma3TextDecoder {
  const source = openGguf(path);
  try {
    const config = configFromGgufSource(source);
    const names = resolveGgufTextTensors(source, config);
    return new Gemma3TextDecoder(config.text, loadTextWeights(source, names, config.text, 'stored-as-is'), new JsBackend());
  } finally {
    source.close();
  }
}

function safetensorsDecoder(text: Gemma3TextConfig): Gemma3TextDecoder {
  const source = openCheckpoint(TEXT);
  try {
    return new Gemma3TextDecoder(text, loadTextWeights(source, resolveTextTensors(source, text), text, 'offset-by-one'), new JsBackend());
  } finally {
    source.close();
  }
}

const logits = (d: Gemma3TextDecoder, ids: number[]): Float32Array => d.forward({ ids }, new KvCache(d.config, 64), { logits: 'all' });

function greedy(d: Gemma3TextDecoder, prompt: number[], steps: number): number[] {
  const cache = new KvCache(d.config, 64);
  let row = d.forward({ ids: prompt }, cache, { logits: 'last' });
  const out: number[] = [];
  for (let i = 0; i < steps; i++) {
    let best = 0;
    for (let v = 1; v < row.length; v++) if (row[v]! > row[best]!) best = v;
    out.push(best);
    row = d.forward({ ids: [best] }, cache, { logits: 'last' });
  }
  return out;
}

describe('text GGUF written like convert_hf_to_gguf.py', () => {
  test('metadata: gemma3.* hyper-parameters, SentencePiece vocabulary, special tokens', () => {
    const g = openGguf(gguf('bf16'));
    const m = (k: string): GgufValue | undefined => g.metadata.get(k);
    assert.equal(m('general.architecture'), 'gemma3');
    assert.equal(m('general.file_type'), 32);
    assert.equal(m('general.quantization_version'), 2);
    const expect: [string, GgufValue][] = [['block_count', 8], ['context_length', 131072], ['embedding_length', 64], ['feed_forward_length', 128],
      ['attention.head_count', 4], ['attention.head_count_kv', 2], ['attention.key_length', 32], ['attention.value_length', 32],
      ['attention.sliding_window', 16], ['rope.freq_base', 1e6], ['rope.freq_base_swa', 1e4], ['rope.scaling.type', 'linear'], ['rope.scaling.factor', 8],
      ['attention.layer_norm_rms_epsilon', Math.fround(1e-6)]];
    for (const [k, v] of expect) assert.equal(m(`gemma3.${k}`), v, k);
    assert.ok(!g.metadata.has('gemma3.final_logit_softcapping'));
    assert.equal(m('tokenizer.ggml.model'), 'llama');
    assert.equal(m('tokenizer.ggml.pre'), 'default');
    const tokens = m('tokenizer.ggml.tokens') as string[];
    const types = m('tokenizer.ggml.token_type') as number[];
    const scores = m('tokenizer.ggml.scores') as number[];
    assert.equal(tokens.length, 262144);
    assert.deepEqual(g.metadataTypes.get('tokenizer.ggml.token_type'), { array: 'i32' });
    assert.deepEqual(tokens.slice(0, 4), ['<pad>', '<eos>', '<bos>', '<unk>']);
    assert.deepEqual([0, 1, 2, 3, 105, 106, 6].map((i) => types[i]), new Array(7).fill(TokenType.CONTROL)); // <unused0> looks special
    assert.equal(tokens[107], '\n');
    assert.equal(types[107], TokenType.USER_DEFINED);
    assert.equal(tokens[138], '  '); // '▁▁' pre-normalised to spaces, as the converter does for user-defined tokens
    assert.equal(tokens[248], '<0x0A>');
    assert.equal(types[248], TokenType.BYTE);
    const the = tokens.indexOf('▁the');
    assert.equal(types[the], TokenType.NORMAL);
    assert.ok(scores[the]! > scores[tokens.indexOf('▁symbol')]!, 'an earlier merge scores higher');
    assert.equal(scores[0], -1000);
    assert.deepEqual(['bos_token_id', 'eos_token_id', 'unknown_token_id', 'padding_token_id'].map((k) => m(`tokenizer.ggml.${k}`)), [2, 106, 3, 0]);
    assert.equal(m('tokenizer.ggml.add_bos_token'), true);
    assert.equal(m('tokenizer.ggml.add_eos_token'), false);
    assert.equal(m('tokenizer.ggml.add_space_prefix'), false);
    assert.match(m('tokenizer.chat_template') as string, /start_of_turn/);
    g.close();
  });

  test('tensors: llama.cpp names, norms +1 in F32, embedding cut to the tokenizer, types per conversion', () => {
    const st = openCheckpoint(TEXT);
    const expected: Record<ConvertType, [string, string]> = { bf16: ['bf16', 'bf16'], f32: ['f32', 'f32'], f16: ['f16', 'f16'], q8_0: ['q8_0', 'q8_0'], q4_0: ['q4_0', 'q8_0'], q6_k: ['q8_0', 'q8_0'], q4_k_m: ['q5_0', 'q8_0'], q5_k_m: ['q5_1', 'q8_0'] };
    for (const type of ['bf16', 'q8_0', 'q4_0', 'q6_k', 'q4_k_m', 'q5_k_m'] as const) {
      const g = openGguf(gguf(type));
      assert.equal(g.names().length, 2 + 13 * 8);
      assert.deepEqual(g.info('token_embd.weight').shape, [262144, 64]);
      assert.equal(g.info('token_embd.weight').dtype, expected[type][1], `${type} token_embd`);
      // blk.2.ffn_down: not among use_more_bits(i, 8)'s layers (0, 3, 6, 7), so the mix's base type (Q4_K / Q5_K → its 32-block fallback).
      assert.equal(g.info('blk.2.ffn_down.weight').dtype, expected[type][0], `${type} blk.2.ffn_down`);
      assert.equal(g.info('blk.3.ffn_norm.weight').dtype, 'f32');
      assert.equal(g.metadata.get('general.file_type'), { bf16: 32, q8_0: 7, q4_0: 2, q6_k: 18, q4_k_m: 15, q5_k_m: 17 }[type]);
      const norm = toFloat32(g.read('blk.3.ffn_norm.weight'));
      const hf = toFloat32(st.read('model.layers.3.pre_feedforward_layernorm.weight'));
      assert.deepEqual(norm, hf.map((w) => Math.fround(1 + w)));
      g.close();
    }
    const bf = openGguf(gguf('bf16'));
    assert.deepEqual(bf.read('blk.0.attn_q.weight').data, st.read('model.layers.0.self_attn.q_proj.weight').data);
    bf.close();
    st.close();
  });

  test('tensor types of the real sizes: Q6_K head for 2560/3840/5376, Q8_0 for the 1B\'s 1152, F16 fallbacks', () => {
    const spec = (canonical: string, shape: number[]) => ({ canonical, part: 'text' as const, local: '', shape });
    const embd = (h: number) => spec('token_embd.weight', [262144, h]);
    assert.deepEqual([2560, 3840, 5376, 1152].map((h) => textTensorType(embd(h), embd(h).shape, 'q4_0', true)), ['q6_k', 'q6_k', 'q6_k', 'q8_0']);
    assert.equal(textTensorType(embd(1152), [262144, 1152], 'q4_0', false), 'q4_0'); // untied: an ordinary tensor
    assert.equal(textTensorType(spec('v', [4304, 1152]), [4304, 1152], 'q8_0', false), 'q8_0');
    assert.equal(textTensorType(spec('v', [1152, 4304]), [1152, 4304], 'q8_0', false), 'f16'); // 4304 = 134.5 blocks: gguf-py falls back to F16
    assert.equal(textTensorType(spec('blk.0.attn_norm.weight', [2560]), [2560], 'q4_0', false), 'f32');
    throwsGemma(() => textTensorType(spec('w', [8, 40]), [8, 40], 'q4_0', false), 'UNSUPPORTED_MODEL', 'w');
  });

  test('q4_k_m follows llama-quantize\'s Q4_K_M recipe on the 4B\'s sizes (34 layers); q6_k is Q6_K throughout', () => {
    const spec = (canonical: string, shape: number[]) => ({ canonical, part: 'text' as const, local: '', shape });
    const type = (canonical: string, shape: number[], t: 'q4_k_m' | 'q6_k', head = false) => textTensorType(spec(canonical, shape), shape, t, head, 34);
    // use_more_bits(i, 34): i < 4, i >= 29, or (i - 4) % 3 == 2.
    const more = [0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 29, 30, 31, 32, 33];
    for (let i = 0; i < 34; i++) {
      const want = more.includes(i) ? 'q6_k' : 'q4_k';
      assert.equal(type(`blk.${i}.attn_v.weight`, [1024, 2560], 'q4_k_m'), want, `attn_v ${i}`);
      assert.equal(type(`blk.${i}.ffn_down.weight`, [2560, 10240], 'q4_k_m'), want, `ffn_down ${i}`);
      for (const t of ['attn_q', 'attn_k', 'attn_output', 'ffn_gate', 'ffn_up']) assert.equal(type(`blk.${i}.${t}.weight`, [2048, 2560], 'q4_k_m'), 'q4_k');
      assert.equal(type(`blk.${i}.ffn_down.weight`, [2560, 10240], 'q6_k'), 'q6_k');
    }
    assert.equal(type('token_embd.weight', [262144, 2560], 'q4_k_m', true), 'q6_k');
    assert.equal(type('token_embd.weight', [262144, 1152], 'q4_k_m', true), 'q8_0'); // the 1B's head: Q6_K → Q8_0
    assert.equal(type('blk.0.attn_v.weight', [256, 1152], 'q4_k_m'), 'q8_0'); // Q6_K's fallback
    assert.equal(type('blk.0.ffn_down.weight', [1152, 6912], 'q6_k'), 'q6_k');
    assert.equal(type('blk.0.attn_q.weight', [1024, 1152], 'q6_k'), 'q8_0');
    // tensor_type_fallback: Q4_K → Q5_0 on the 1B's 1152-wide rows.
    assert.equal(type('blk.4.attn_q.weight', [1024, 1152], 'q4_k_m'), 'q5_0');
    assert.equal(type('blk.4.ffn_down.weight', [1152, 6912], 'q4_k_m'), 'q4_k'); // 6912 = 27 super-blocks
    assert.equal(type('blk.3.ffn_norm.weight', [2560], 'q4_k_m'), 'f32');
    throwsGemma(() => type('blk.4.attn_q.weight', [1024, 1000], 'q4_k_m'), 'UNSUPPORTED_MODEL', 'blk.4.attn_q.weight');
  });

  test('q4_0 / q4_k_m / q5_k_m / q6_k files list their tensors in llama-quantize\'s order (by layer, then by name); bf16 in convert_hf_to_gguf.py\'s', () => {
    const q = openGguf(gguf('q4_k_m'));
    const names = q.names();
    q.close();
    assert.deepEqual(names.slice(0, 15), [
      'output_norm.weight', 'token_embd.weight',
      'blk.0.attn_k.weight', 'blk.0.attn_k_norm.weight', 'blk.0.attn_norm.weight', 'blk.0.attn_output.weight', 'blk.0.attn_q.weight',
      'blk.0.attn_q_norm.weight', 'blk.0.attn_v.weight', 'blk.0.ffn_down.weight', 'blk.0.ffn_gate.weight', 'blk.0.ffn_norm.weight',
      'blk.0.ffn_up.weight', 'blk.0.post_attention_norm.weight', 'blk.0.post_ffw_norm.weight',
    ]);
    assert.equal(names[15], 'blk.1.attn_k.weight');
    assert.deepEqual([...names].sort((a, b) => llamaQuantizeOrder(a, b)), names);
    // blk.10 after blk.9 (numbers, not strings), names within a layer by their bytes.
    assert.deepEqual(['blk.10.a', 'blk.9.b', 'token_embd.weight', 'blk.9.a'].sort(llamaQuantizeOrder), ['token_embd.weight', 'blk.9.a', 'blk.9.b', 'blk.10.a']);
    const bf = openGguf(gguf('bf16'));
    assert.equal(bf.names()[0], 'token_embd.weight');
    bf.close();
  });

  test('q5_k_m follows llama-quantize\'s Q5_K_M recipe on the 4B (34 layers) and the 1B (26 layers, 1152-wide rows)', () => {
    const spec = (canonical: string, shape: number[]) => ({ canonical, part: 'text' as const, local: '', shape });
    const type = (canonical: string, shape: number[], layers: number, head = false) => textTensorType(spec(canonical, shape), shape, 'q5_k_m', head, layers);
    const more = [0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 29, 30, 31, 32, 33];
    for (let i = 0; i < 34; i++) {
      const want = more.includes(i) ? 'q6_k' : 'q5_k';
      assert.equal(type(`blk.${i}.attn_v.weight`, [1024, 2560], 34), want, `attn_v ${i}`);
      assert.equal(type(`blk.${i}.ffn_down.weight`, [2560, 10240], 34), want, `ffn_down ${i}`);
      for (const t of ['attn_q', 'attn_k', 'attn_output', 'ffn_gate', 'ffn_up']) assert.equal(type(`blk.${i}.${t}.weight`, [2048, 2560], 34), 'q5_k');
    }
    assert.equal(type('token_embd.weight', [262144, 2560], 34, true), 'q6_k');
    // The 1B: use_more_bits(i, 26): i < 3, i >= 22, or (i - 3) % 3 == 2.
    const more1b = [0, 1, 2, 5, 8, 11, 14, 17, 20, 22, 23, 24, 25];
    for (let i = 0; i < 26; i++) {
      const more = more1b.includes(i);
      assert.equal(type(`blk.${i}.attn_v.weight`, [256, 1152], 26), more ? 'q8_0' : 'q5_1', `1B attn_v ${i}`); // Q6_K → Q8_0, Q5_K → Q5_1
      assert.equal(type(`blk.${i}.ffn_down.weight`, [1152, 6912], 26), more ? 'q6_k' : 'q5_k', `1B ffn_down ${i}`); // 6912-wide rows: no fallback
      assert.equal(type(`blk.${i}.ffn_gate.weight`, [6912, 1152], 26), 'q5_1');
    }
    assert.equal(type('token_embd.weight', [262144, 1152], 26, true), 'q8_0');
  });

  test('config from the metadata follows llama.cpp, which ignores query_pre_attn_scalar', () => {
    const g = openGguf(gguf('bf16'));
    const config = configFromGgufSource(g);
    g.close();
    const hf = loadConfig(TEXT).text;
    assert.deepEqual({ ...config.text, queryPreAttnScalar: hf.queryPreAttnScalar, rmsNormEps: hf.rmsNormEps, eosTokenIds: hf.eosTokenIds },
      { ...hf, slidingWindow: 16 });
    assert.equal(config.text.queryPreAttnScalar, 32); // head_dim: the tiny model's 24 is not in the file
    assert.equal(config.text.rmsNormEps, Math.fround(1e-6));
    assert.deepEqual(config.text.eosTokenIds, [106, 1]);
  });

  test('bf16 and f32 GGUFs give the safetensors logits (same hyper-parameters: exactly)', () => {
    const ggufConfig = configFromGgufSource(openGguf(gguf('bf16'))).text;
    const reference = logits(safetensorsDecoder(ggufConfig), seq);
    for (const type of ['bf16', 'f32'] as const) {
      const err = maxAbsDiff(logits(ggufDecoder(gguf(type)), seq), reference);
      assert.ok(err <= 1e-4, `${type}: max error ${err}`);
    }
    // With the checkpoint's own query_pre_attn_scalar (24, which llama.cpp cannot know) the logits differ:
    // llama.cpp runs this tiny model with 1/sqrt(32), as this engine does for its GGUF.
    assert.ok(maxAbsDiff(logits(safetensorsDecoder(loadConfig(TEXT).text), seq), reference) > 0.1);
  });

  test('q8_0 and q4_0 GGUFs load and run: close to bf16, deterministic greedy tokens', () => {
    const bf16 = logits(ggufDecoder(gguf('bf16')), seq);
    let scale = 0;
    for (const v of bf16) scale = Math.max(scale, Math.abs(v));
    const cosine = (a: Float32Array, b: Float32Array): number => {
      let ab = 0, aa = 0, bb = 0;
      for (let i = 0; i < a.length; i++) { ab += a[i]! * b[i]!; aa += a[i]! ** 2; bb += b[i]! ** 2; }
      return ab / Math.sqrt(aa * bb);
    };
    // Measured on this random tiny model: q8_0 max error ≈ 6% of the largest logit, cosine 0.9992; q4_0 cosine 0.92.
    for (const [type, bound, minCos] of [['q8_0', 0.1, 0.995], ['q4_0', 1, 0.85]] as const) {
      const d = ggufDecoder(gguf(type));
      const out = logits(d, seq);
      const err = maxAbsDiff(out, bf16);
      assert.ok(err <= bound * scale, `${type}: max error ${err} (logit scale ${scale})`);
      assert.ok(cosine(out, bf16) >= minCos, `${type}: cosine ${cosine(out, bf16)}`);
      const prompt = seq.slice(0, 5);
      assert.deepEqual(greedy(d, prompt, 6), greedy(ggufDecoder(gguf(type)), prompt, 6));
    }
  });
});

describe('mmproj GGUF written like Gemma3VisionModel', () => {
  const text = join(tmp.dir, 'vlm.gguf');
  const mmproj = join(tmp.dir, 'mmproj.gguf');
  let progressCalls = 0;
  const result = convertCheckpoint(VLM, text, { type: 'q8_0', mmprojOut: mmproj, onProgress: () => progressCalls++ });

  test('the text part: embedding cut from 262208 to 262144 rows, vision tensors left out', () => {
    assert.deepEqual(result, { vocabSize: 262144, textTensors: 106, mmprojTensors: 3 + 16 * 2 + 2 + 2 });
    assert.equal(progressCalls, 106 + 39);
    const g = openGguf(text);
    assert.deepEqual(g.info('token_embd.weight').shape, [262144, 64]);
    assert.ok(g.names().every((n) => !n.startsWith('v.') && !n.startsWith('mm.')));
    assert.equal(configFromGgufSource(g).text.vocabSize, 262144);
    g.close();
  });

  test('metadata and tensors: clip keys, F32 embeddings, F16 projection, soft_emb_norm +1', () => {
    const g = openGguf(mmproj);
    const hf = loadConfig(VLM);
    const mm = visionConfigFromMmproj(g.metadata, mmproj);
    assert.deepEqual(mm.vision, { ...hf.vision!, layerNormEps: Math.fround(1e-6) });
    assert.equal(mm.mmTokensPerImage, 4);
    assert.equal(g.metadata.get('clip.vision.projector.scale_factor'), 2);
    assert.deepEqual(mm.imageMean, [0.5, 0.5, 0.5]);
    assert.equal(g.metadata.get('general.architecture'), 'clip');
    assert.equal(g.metadata.get('clip.use_gelu'), true);
    const full = withMmproj(configFromGgufSource(openGguf(text)), mm, mmproj);
    assert.equal(full.modelType, 'gemma3');
    const names = resolveGgufVisionTensors(g, full);
    assert.equal(names.get('v.blk.1.ffn_up.weight'), 'v.blk.1.ffn_up.weight');
    const types = Object.fromEntries(g.names().map((n) => [n, g.info(n).dtype]));
    assert.equal(types['v.patch_embd.weight'], 'f32');
    assert.equal(types['v.position_embd.weight'], 'f32');
    assert.equal(types['mm.input_projection.weight'], 'f16');
    assert.equal(types['v.blk.0.attn_q.weight'], 'q8_0');
    assert.equal(types['v.blk.0.attn_q.bias'], 'f32');
    assert.equal(types['v.blk.0.ln1.weight'], 'f32');
    const st = openCheckpoint(VLM);
    const stNames = resolveVisionTensors(st, hf);
    const hfNorm = toFloat32(st.read(stNames.get('mm.soft_emb_norm.weight')!));
    assert.deepEqual(toFloat32(g.read('mm.soft_emb_norm.weight')), hfNorm.map((w) => Math.fround(1 + w)));
    assert.deepEqual(toFloat32(g.read('v.blk.0.ln1.weight')), toFloat32(st.read(stNames.get('v.blk.0.ln1.weight')!)));
    assert.deepEqual(g.info('mm.input_projection.weight').shape, [32, 64]); // the HF [vision, text] array, not transposed
    assert.deepEqual(toFloat32(g.read('mm.input_projection.weight')), toFloat32(st.read(stNames.get('mm.input_projection.weight')!)));
    assert.deepEqual(toFloat32(g.read('v.patch_embd.weight')), toFloat32(st.read(stNames.get('v.patch_embd.weight')!)));
    st.close();
    g.close();
  });

  test('legacy files with fc1/fc2 named ffn_down/ffn_up are recognised by shape', () => {
    const g = openGguf(mmproj);
    const legacy = join(tmp.dir, 'legacy.gguf');
    const swap = (n: string): string => n.replace(/ffn_(up|down)/, (_, w: string) => `ffn_${w === 'up' ? 'down' : 'up'}`);
    writeGguf(legacy, {
      metadata: g.metadata, types: g.metadataTypes,
      tensors: g.names().map((n) => ({ name: swap(n), dtype: g.info(n).dtype, shape: g.info(n).shape, data: () => g.read(n).data })),
    });
    const l = openGguf(legacy);
    const config = withMmproj(configFromGgufSource(openGguf(text)), visionConfigFromMmproj(l.metadata), legacy);
    const names = resolveGgufVisionTensors(l, config);
    assert.equal(names.get('v.blk.0.ffn_up.weight'), 'v.blk.0.ffn_down.weight');
    assert.equal(names.get('v.blk.1.ffn_down.bias'), 'v.blk.1.ffn_up.bias');
    assert.deepEqual(l.read(names.get('v.blk.0.ffn_up.weight')!).data, g.read('v.blk.0.ffn_up.weight').data);
    l.close();
    g.close();
  });
});

describe('configFromGguf: llama.cpp rules', () => {
  const base = (over: Record<string, GgufValue> = {}, drop: string[] = []): Map<string, GgufValue> => {
    const m = new Map<string, GgufValue>(Object.entries({
      'general.architecture': 'gemma3', 'gemma3.context_length': 131072, 'gemma3.embedding_length': 2560, 'gemma3.block_count': 34,
      'gemma3.feed_forward_length': 10240, 'gemma3.attention.head_count': 8, 'gemma3.attention.head_count_kv': 4,
      'gemma3.attention.key_length': 256, 'gemma3.attention.value_length': 256, 'gemma3.attention.layer_norm_rms_epsilon': 1e-6,
      'gemma3.rope.freq_base': 1e6, 'gemma3.attention.sliding_window': 1024, 'gemma3.rope.scaling.type': 'linear',
      'gemma3.rope.scaling.factor': 8, 'tokenizer.ggml.eos_token_id': 1, ...over,
    }));
    for (const k of drop) m.delete(k);
    return m;
  };
  const cfg = (m: Map<string, GgufValue>) => configFromGguf(m, 'x.gguf', { embeddingRows: 262144 }).text;

  test('4B: 5 sliding : 1 global, local RoPE 10000 unscaled, global scaled by 8, scale 1/sqrt(head_dim)', () => {
    const t = cfg(base());
    assert.equal(t.layerTypes.filter((l) => l === 'global').length, 5);
    assert.deepEqual(t.layerTypes.slice(0, 6), ['sliding', 'sliding', 'sliding', 'sliding', 'sliding', 'global']);
    assert.deepEqual([t.ropeLocalBase, t.ropeLocalScalingFactor, t.ropeGlobalBase, t.ropeGlobalScalingFactor], [10000, 1, 1e6, 8]);
    assert.equal(t.queryPreAttnScalar, 256);
    assert.equal(t.vocabSize, 262144);
    assert.deepEqual(t.eosTokenIds, [1, 106]);
    assert.equal(cfg(base({ 'gemma3.rope.freq_base_swa': 5000 })).ropeLocalBase, 10000); // hard-coded by llama.cpp
  });

  test('27B (62 layers): attention scale from n_embd / n_head = 168', () => {
    const t = cfg(base({ 'gemma3.block_count': 62, 'gemma3.embedding_length': 5376, 'gemma3.attention.head_count': 32,
      'gemma3.attention.head_count_kv': 16, 'gemma3.attention.key_length': 128, 'gemma3.attention.value_length': 128 }));
    assert.equal(t.queryPreAttnScalar, 168);
    assert.equal(t.headDim, 128);
  });

  test('soft-capping only without a sliding window; per-layer arrays; defaults', () => {
    assert.equal(cfg(base({ 'gemma3.final_logit_softcapping': 30 })).finalLogitSoftcap, null);
    const noSwa = cfg(base({ 'gemma3.final_logit_softcapping': 30 }, ['gemma3.attention.sliding_window']));
    assert.equal(noSwa.finalLogitSoftcap, 30);
    assert.ok(noSwa.layerTypes.every((l) => l === 'global'));
    const arr = cfg(base({ 'gemma3.attention.head_count': new Array(34).fill(8), 'gemma3.feed_forward_length': new Array(34).fill(10240) },
      ['gemma3.attention.head_count_kv', 'gemma3.attention.key_length', 'gemma3.attention.value_length', 'gemma3.rope.scaling.type', 'gemma3.rope.scaling.factor']));
    assert.deepEqual([arr.numHeads, arr.numKvHeads, arr.headDim, arr.intermediateSize, arr.ropeGlobalScalingFactor], [8, 8, 320, 10240, 1]);
  });

  test('errors name the file and key', () => {
    throwsGemma(() => cfg(base({ 'general.architecture': 'llama' })), 'UNSUPPORTED_MODEL', 'x.gguf', 'llama');
    throwsGemma(() => cfg(base({}, ['gemma3.embedding_length'])), 'BAD_FORMAT', 'gemma3.embedding_length');
    throwsGemma(() => cfg(base({}, ['gemma3.attention.layer_norm_rms_epsilon'])), 'BAD_FORMAT', 'layer_norm_rms_epsilon');
    throwsGemma(() => cfg(base({ 'gemma3.rope.scaling.type': 'yarn' })), 'UNSUPPORTED_MODEL', 'yarn');
    throwsGemma(() => cfg(base({ 'gemma3.attention.head_count': [8, 4] })), 'BAD_FORMAT', 'head_count');
    throwsGemma(() => configFromGguf(base(), 'x.gguf'), 'BAD_FORMAT', 'vocabulary');
    throwsGemma(() => visionConfigFromMmproj(base(), 'm.gguf'), 'UNSUPPORTED_MODEL', 'm.gguf');
  });

  test('resolveGgufTextTensors: MISSING_TENSOR and SHAPE_MISMATCH', () => {
    const g: GgufSource = openGguf(gguf('bf16'));
    const config = configFromGgufSource(g);
    throwsGemma(() => resolveGgufTextTensors(g, { ...config.text, hiddenSize: 128 }), 'SHAPE_MISMATCH', 'token_embd.weight', '[262144, 64]');
    throwsGemma(() => resolveGgufTextTensors(g, { ...config.text, numLayers: 9 }), 'MISSING_TENSOR', 'blk.8.attn_norm.weight');
    throwsGemma(() => resolveGgufTextTensors(g, { ...config.text, tieWordEmbeddings: false }), 'MISSING_TENSOR', 'output.weight');
    g.close();
  });
});
