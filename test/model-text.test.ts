// The text decoder against the Hugging Face goldens of the tiny random Gemma 3 (tiny-text):
// logits, hidden states, greedy generations, and cached decoding == one full forward.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { testBackend } from './backends.js';
import { openCheckpoint } from '../src/formats/safetensors.js';
import { loadConfig } from '../src/model/config.js';
import { Gemma3TextDecoder, type Segment } from '../src/model/gemma3-text.js';
import { KvCache } from '../src/model/kv-cache.js';
import { loadTextDecoder } from '../src/model/text-model.js';
import { argmax, fixturePath, logsumexp, maxAbsDiff, readF32, readJson } from './helpers.js';

const GOLDENS = fixturePath('goldens', 'tiny-text');
const manifest = readJson(join(GOLDENS, 'manifest.json'));
const golden = (ref: { file: string }) => readF32(join(GOLDENS, ref.file));

function decoder(): Gemma3TextDecoder {
  const dir = fixturePath('tiny-text');
  const config = loadConfig(dir);
  const source = openCheckpoint(dir);
  try {
    return loadTextDecoder(source, config.text, testBackend());
  } finally {
    source.close();
  }
}

const model = decoder();
const V = model.config.vocabSize;



for (const seq of manifest.sequences as any[]) {
  test(`logits of sequence '${seq.name}' (${seq.length} tokens) match the reference`, () => {
    const cache = new KvCache(model.config, 256);
    const logits = model.forward({ ids: seq.input_ids }, cache, { logits: 'all' });
    const lse = golden(seq.logsumexp);
    const topk = golden(seq.topk_logits);
    let worst = 0;
    for (let t = 0; t < seq.length; t++) {
      const row = logits.subarray(t * V, (t + 1) * V);
      assert.equal(argmax(row), seq.argmax[t], `argmax at position ${t}`);
      worst = Math.max(worst, Math.abs(logsumexp(row) - lse[t]!));
      for (let k = 0; k < 10; k++) {
        const id = seq.topk_ids[t][k];
        worst = Math.max(worst, Math.abs(row[id]! - topk[t * 10 + k]!));
      }
    }
    assert.ok(worst < 1e-4, `logsumexp/top-10 max error ${worst}`);
    for (const full of seq.full_logits) {
      const row = logits.subarray(full.position * V, (full.position + 1) * V);
      const err = maxAbsDiff(row, golden(full));
      assert.ok(err < 1e-4, `full logit row at ${full.position}: max error ${err}`);
    }
  });
}

test('hidden states after every layer match the reference (long48, 3x the sliding window)', () => {
  const seq = manifest.sequences.find((s: any) => s.name === 'long48');
  const hs = seq.hidden_states;
  const seen = new Map<string, Float32Array>();
  model.forward({ ids: seq.input_ids }, new KvCache(model.config, 64), {
    logits: 'none',
    onHiddenState: (stage, x, T) => seen.set(String(stage), x.slice(0, T * model.config.hiddenSize)),
  });
  assert.ok(maxAbsDiff(seen.get('input')!, golden(hs.decoder_input)) < 1e-4, 'decoder input');
  hs.layers.forEach((ref: any, i: number) => {
    const err = maxAbsDiff(seen.get(String(i))!, golden(ref));
    assert.ok(err < 1e-4, `layer ${i}: max error ${err}`);
  });
  assert.ok(maxAbsDiff(seen.get('final_norm')!, golden(hs.final_norm)) < 1e-4, 'final norm');
});

test('token-by-token decoding with the cache equals one full forward beyond the sliding window', () => {
  const seq = manifest.sequences.find((s: any) => s.name === 'long48');
  const full = model.forward({ ids: seq.input_ids }, new KvCache(model.config, 64), { logits: 'all' });
  const cache = new KvCache(model.config, 64, { rollback: 0 });
  assert.equal(cache.layers[0]!.ring, 16, 'sliding layers keep exactly the window');
  // A prompt chunk, then single tokens: exercises ring wrap-around on the sliding layers.
  const prefix = 5;
  const first = model.forward({ ids: seq.input_ids.slice(0, prefix) }, cache, { logits: 'all' });
  let worst = maxAbsDiff(first, full.subarray(0, prefix * V));
  for (let t = prefix; t < seq.length; t++) {
    const row = model.forward({ ids: [seq.input_ids[t]] }, cache, { logits: 'last' });
    worst = Math.max(worst, maxAbsDiff(row, full.subarray(t * V, (t + 1) * V)));
  }
  assert.ok(worst < 1e-5, `cached vs full max error ${worst}`);
  // Chunks that straddle the window also agree.
  const chunked = new KvCache(model.config, 64, { rollback: 0 });
  const parts = [0, 7, 30, 31, 48];
  for (let i = 0; i + 1 < parts.length; i++) {
    const rows = model.forward({ ids: seq.input_ids.slice(parts[i], parts[i + 1]) }, chunked, { logits: 'all' });
    const err = maxAbsDiff(rows, full.subarray(parts[i]! * V, parts[i + 1]! * V));
    assert.ok(err < 1e-5, `chunk ${parts[i]}..${parts[i + 1]}: max error ${err}`);
  }
});

for (const gen of manifest.generation as any[]) {
  test(`greedy generation '${gen.name}' reproduces all ${gen.generated_ids.length} reference tokens`, () => {
    const cache = new KvCache(model.config, 128, { rollback: 0 });
    let logits = model.forward({ ids: gen.prompt_ids }, cache, { logits: 'last' });
    const out: number[] = [];
    const stepLse = golden(gen.step_logsumexp);
    for (let step = 0; step < gen.generated_ids.length; step++) {
      assert.ok(Math.abs(logsumexp(logits) - stepLse[step]!) < 1e-4, `step ${step} logsumexp`);
      const id = argmax(logits);
      out.push(id);
      logits = model.forward({ ids: [id] }, cache, { logits: 'last' });
    }
    assert.deepEqual(out, gen.generated_ids);
  });
}

test('batched decoding of several sequences equals decoding each alone', () => {
  const seqs = manifest.sequences.filter((s: any) => s.length > 1).map((s: any) => s.input_ids.slice(0, 20) as number[]);
  // Reference: each sequence alone, token by token after a 1-token prefill.
  const alone = seqs.map((ids: number[]) => {
    const cache = new KvCache(model.config, 64);
    return ids.map((id) => model.forward({ ids: [id] }, cache, { logits: 'last' }));
  });
  // Batched: prefill different lengths so positions differ, then step all together.
  const caches = seqs.map(() => new KvCache(model.config, 64, { rollback: 0 }));
  const offsets = seqs.map((_: number[], i: number) => 1 + i * 3);
  seqs.forEach((ids: number[], i: number) => model.forward({ ids: ids.slice(0, offsets[i]) }, caches[i]!, { logits: 'none' }));
  let worst = 0;
  for (let step = 0; step < 4; step++) {
    const ids = seqs.map((s: number[], i: number) => s[offsets[i]! + step]!);
    const rows = model.decodeBatch(ids, caches);
    seqs.forEach((_: number[], i: number) => {
      worst = Math.max(worst, maxAbsDiff(rows.subarray(i * V, (i + 1) * V), alone[i]![offsets[i]! + step]!));
    });
  }
  assert.ok(worst < 1e-5, `batched vs alone max error ${worst}`);
});

test('one step mixing prompt chunks and decode tokens of several sequences equals computing each alone', () => {
  const seqs = manifest.sequences.filter((s: any) => s.length > 8).map((s: any) => s.input_ids.slice(0, 16) as number[]);
  assert.ok(seqs.length >= 2);
  // Reference: every sequence alone, all logits of its first 16 tokens.
  const alone = seqs.map((ids: number[]) => model.forward({ ids }, new KvCache(model.config, 64), { logits: 'all' }));
  const caches = seqs.map(() => new KvCache(model.config, 64));
  // Sequence 0 has its first 6 tokens cached and decodes token 6; the others compute a prompt chunk.
  model.forward({ ids: seqs[0]!.slice(0, 6) }, caches[0]!, { logits: 'none' });
  const segments: Segment[] = seqs.map((ids: number[], i: number): Segment => i === 0
    ? { cache: caches[0]!, input: { ids: [ids[6]!] }, logits: 'last' as const }
    : { cache: caches[i]!, input: { ids: ids.slice(0, 5 + i) }, logits: (i % 2 ? 'all' : 'last') as 'all' | 'last' });
  const rows = model.step(segments);
  let at = 0;
  let worst = 0;
  segments.forEach((seg, i) => {
    const positions = seg.logits === 'all' ? seg.input.ids.length : 1;
    const firstPosition = i === 0 ? 6 : seg.logits === 'all' ? 0 : seg.input.ids.length - 1;
    for (let p = 0; p < positions; p++, at++) {
      worst = Math.max(worst, maxAbsDiff(rows.subarray(at * V, (at + 1) * V), alone[i]!.subarray((firstPosition + p) * V, (firstPosition + p + 1) * V)));
    }
    assert.equal(caches[i]!.length, i === 0 ? 7 : 5 + i);
  });
  assert.equal(rows.length, at * V);
  assert.ok(worst < 1e-5, `mixed step vs alone max error ${worst}`);
  assert.throws(() => model.step([segments[1]!, { ...segments[1]!, logits: 'none' }]), /cache of its own/);
});

