// SigLIP tower, projector and the multimodal decoder against the Hugging Face goldens of the
// tiny random Gemma 3 VLM (tiny-vlm), starting from the reference pixel_values.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { testBackend } from './backends.js';
import { openCheckpoint } from '../src/formats/safetensors.js';
import { loadConfig } from '../src/model/config.js';
import { KvCache } from '../src/model/kv-cache.js';
import { loadTextDecoder } from '../src/model/text-model.js';
import { loadVisionEncoder } from '../src/model/vision-model.js';
import { imageInputs } from '../src/model/image-tokens.js';
import { argmax, fixturePath, logsumexp, maxAbsDiff, readF32, readJson } from './helpers.js';

const GOLDENS = fixturePath('goldens', 'tiny-vlm');
const manifest = readJson(join(GOLDENS, 'manifest.json'));
const golden = (ref: { file: string }) => readF32(join(GOLDENS, ref.file));

const dir = fixturePath('tiny-vlm');
const config = loadConfig(dir);
const source = openCheckpoint(dir);
const backend = testBackend();
const decoder = loadTextDecoder(source, config.text, backend);
const vision = loadVisionEncoder(source, config, backend);
source.close();
const V = config.text.vocabSize;
const vc = config.vision!;
const imagePixels = 3 * vc.imageSize * vc.imageSize;


/** Every image of a prompt through SigLIP + projector, concatenated [N * tokens, textHidden]. */
function encodePrompt(prompt: any, observe?: (stage: string, image: number, x: Float32Array) => void): Float32Array[] {
  const pixels = golden(prompt.pixel_values);
  const n = prompt.pixel_values.shape[0];
  const out: Float32Array[] = [];
  for (let i = 0; i < n; i++) {
    out.push(vision.encodeImage(pixels.subarray(i * imagePixels, (i + 1) * imagePixels), {
      siglip: (stage, x) => observe?.(String(stage), i, x.slice()),
      projector: (stage, x) => observe?.(stage, i, x.slice()),
    }));
  }
  return out;
}

const withImages = manifest.prompts.filter((p: any) => p.vision);

for (const prompt of withImages) {
  test(`vision tower and projector intermediates of '${prompt.name}' match the reference`, () => {
    const seen = new Map<string, Float32Array[]>();
    const features = encodePrompt(prompt, (stage, i, x) => {
      (seen.get(stage) ?? seen.set(stage, []).get(stage)!)[i] = x;
    });
    const cat = (xs: Float32Array[]) => Float32Array.from(xs.flatMap((x) => [...x]));
    const check = (name: string, ours: Float32Array, ref: any) => {
      const err = maxAbsDiff(ours, golden(ref));
      assert.ok(err < 1e-4, `${name}: max error ${err}`);
    };
    const v = prompt.vision;
    check('embeddings', cat(seen.get('embeddings')!), v.embeddings);
    v.layers.forEach((ref: any, j: number) => check(`SigLIP layer ${j}`, cat(seen.get(String(j))!), ref));
    check('last_hidden_state', cat(seen.get('post_layernorm')!), v.last_hidden_state);
    // The reference pool is NCHW [N, hidden, 2, 2]; ours is [N, tokens, hidden].
    const pooled = seen.get('avg_pool')!;
    const H = vc.hiddenSize;
    const tokens = config.mmTokensPerImage;
    const nchw = new Float32Array(pooled.length * tokens * H);
    pooled.forEach((x, i) => {
      for (let t = 0; t < tokens; t++) for (let h = 0; h < H; h++) nchw[i * tokens * H + h * tokens + t] = x[t * H + h]!;
    });
    check('avg_pool', nchw, v.mm_avg_pool_nchw);
    check('soft_emb_norm', cat(seen.get('soft_emb_norm')!), v.mm_soft_emb_norm);
    check('image_features', cat(features), v.image_features);
  });
}

for (const prompt of manifest.prompts as any[]) {
  test(`logits of prompt '${prompt.name}' (${prompt.length} tokens) match the reference`, () => {
    const features = prompt.vision ? encodePrompt(prompt) : [];
    const input = imageInputs(prompt.input_ids, features, config.imageTokenId);
    assert.deepEqual(
      prompt.input_ids.map((id: number) => (id === config.imageTokenId ? 1 : 0)), prompt.token_type_ids,
      'token types are 1 exactly at image soft tokens');
    const seen = new Map<string, Float32Array>();
    const logits = decoder.forward(input, new KvCache(config.text, 128), {
      logits: 'all',
      onHiddenState: (stage, x, T) => seen.set(String(stage), x.slice(0, T * config.text.hiddenSize)),
    });
    const lse = golden(prompt.logsumexp);
    const topk = golden(prompt.topk_logits);
    let worst = 0;
    let worstDiag = 0;
    const diag = prompt.diagnostic_causal_only_image_attention ? golden(prompt.diagnostic_causal_only_image_attention.logsumexp) : null;
    for (let t = 0; t < prompt.length; t++) {
      const row = logits.subarray(t * V, (t + 1) * V);
      assert.equal(argmax(row), prompt.argmax[t], `argmax at ${t}`);
      const l = logsumexp(row);
      worst = Math.max(worst, Math.abs(l - lse[t]!));
      if (diag) worstDiag = Math.max(worstDiag, Math.abs(l - diag[t]!));
      for (let k = 0; k < 10; k++) worst = Math.max(worst, Math.abs(row[prompt.topk_ids[t][k]]! - topk[t * 10 + k]!));
    }
    assert.ok(worst < 1e-4, `logsumexp/top-10 max error ${worst}`);
    if (diag) assert.ok(worstDiag > 1e-3, `must not match the causal-only (no image mask) answer: differs by only ${worstDiag}`);
    for (const full of prompt.full_logits) {
      const err = maxAbsDiff(logits.subarray(full.position * V, (full.position + 1) * V), golden(full));
      assert.ok(err < 1e-4, `full logits at ${full.position}: max error ${err}`);
    }
    if (prompt.hidden_states) {
      const hs = prompt.hidden_states;
      assert.ok(maxAbsDiff(seen.get('input')!, golden(hs.decoder_input)) < 1e-4, 'merged decoder input');
      hs.layers.forEach((ref: any, i: number) => {
        const err = maxAbsDiff(seen.get(String(i))!, golden(ref));
        assert.ok(err < 1e-4, `layer ${i}: max error ${err}`);
      });
    }
  });
}

for (const gen of manifest.generation as any[]) {
  test(`greedy generation '${gen.name}' with images reproduces all ${gen.generated_ids.length} reference tokens`, () => {
    const prompt = manifest.prompts.find((p: any) => p.name === gen.from_prompt);
    const input = imageInputs(gen.prompt_ids, encodePrompt(prompt), config.imageTokenId);
    const cache = new KvCache(config.text, 128);
    let logits = decoder.forward(input, cache, { logits: 'last' });
    const out: number[] = [];
    for (let step = 0; step < gen.generated_ids.length; step++) {
      const id = argmax(logits.subarray(0, 262144));
      out.push(id);
      logits = decoder.forward({ ids: [id] }, cache, { logits: 'last' });
    }
    assert.deepEqual(out, gen.generated_ids);
  });
}
