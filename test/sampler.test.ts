import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GemmaError } from '../src/errors.js';
import { Rng } from '../src/generate/rng.js';
import { expNeg, sortAscending } from '../src/generate/sample-math.js';
import { SAMPLABLE_VOCAB, Sampler, validateSamplingOptions, type SamplingOptions } from '../src/generate/sampler.js';

// ---------------------------------------------------------------------------------------------
// Brute-force reference: Hugging Face's processors, literally (full sorts, no shortcuts).
// Scores are float32 as HF's tensors; probabilities and sums float64.
// ---------------------------------------------------------------------------------------------

function softmax(xs: number[]): number[] {
  let m = -Infinity;
  for (const x of xs) if (x > m) m = x;
  const e = xs.map((x) => Math.exp(x - m));
  const z = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / z);
}

/** Returns the processed scores (-Infinity = removed) for ids < V. */
function referenceScores(logits: Float32Array, V: number, o: SamplingOptions, context: number[] = []): number[] {
  const T = o.temperature ?? 1;
  const s: number[] = [];
  for (let i = 0; i < V; i++) s.push(Number.isNaN(logits[i]!) ? -Infinity : logits[i]!);
  // RepetitionPenaltyLogitsProcessor: gather, where(score < 0, score * p, score / p), scatter.
  const p = o.repetitionPenalty ?? 1;
  if (p !== 1) {
    for (const id of new Set(context)) {
      if (id < V) s[id] = Math.fround(s[id]! < 0 ? s[id]! * p : s[id]! / p);
    }
  }
  // TemperatureLogitsWarper
  for (let i = 0; i < V; i++) s[i] = Math.fround(s[i]! / T);
  // TopKLogitsWarper: remove scores < topk(scores, k)[-1]
  const k = Math.min(o.topK ?? 0, V);
  if (k > 0) {
    const sorted = [...s].sort((a, b) => b - a);
    const thr = sorted[k - 1]!;
    for (let i = 0; i < V; i++) if (s[i]! < thr) s[i] = -Infinity;
  }
  // TopPLogitsWarper: stable ascending sort, cumsum(softmax), remove cum <= 1 - top_p, keep last.
  const topP = o.topP ?? 1;
  if (topP < 1) {
    const order = [...Array(V).keys()].sort((a, b) => s[a]! - s[b]! || a - b);
    const probs = softmax(order.map((i) => s[i]!));
    let cum = 0;
    const remove: boolean[] = [];
    for (let j = 0; j < V; j++) {
      cum += probs[j]!;
      remove.push(cum <= 1 - topP);
    }
    remove[V - 1] = false;
    for (let j = 0; j < V; j++) if (remove[j]) s[order[j]!] = -Infinity;
  }
  // MinPLogitsWarper: remove probs < min_p * max(probs)
  const minP = o.minP ?? 0;
  if (minP > 0) {
    const probs = softmax(s);
    const pmax = Math.max(...probs);
    for (let i = 0; i < V; i++) if (probs[i]! < minP * pmax) s[i] = -Infinity;
  }
  return s;
}

function referenceSet(logits: Float32Array, V: number, o: SamplingOptions, context?: number[]): number[] {
  const s = referenceScores(logits, V, o, context);
  const out: number[] = [];
  for (let i = 0; i < V; i++) if (s[i]! !== -Infinity) out.push(i);
  return out;
}

function randomLogits(rng: Rng, n: number, scale: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    // Box-Muller normal
    const u = 1 - rng.nextFloat();
    const v = rng.nextFloat();
    out[i] = scale * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }
  return out;
}

/** Draws `draws` samples and checks every frequency against `probs` within 5 standard errors. */
function assertMatchesDistribution(sampler: Sampler, logits: Float32Array, probs: number[], draws: number, ctx?: number[]): void {
  const counts = new Array<number>(probs.length).fill(0);
  for (let d = 0; d < draws; d++) {
    const id = sampler.sample(logits, ctx);
    assert.ok(id >= 0 && id < probs.length, `id ${id} out of range`);
    counts[id]!++;
  }
  for (let i = 0; i < probs.length; i++) {
    const p = probs[i]!;
    const f = counts[i]! / draws;
    if (p === 0) {
      assert.equal(counts[i], 0, `id ${i} has probability 0 but was drawn ${counts[i]} times`);
      continue;
    }
    const se = Math.sqrt((p * (1 - p)) / draws);
    assert.ok(Math.abs(f - p) <= 5 * se + 1e-9, `id ${i}: frequency ${f.toFixed(4)} vs probability ${p.toFixed(4)} (5se=${(5 * se).toFixed(4)})`);
  }
}

function probsOf(scores: number[]): number[] {
  return softmax(scores);
}

// ---------------------------------------------------------------------------------------------
// RNG
// ---------------------------------------------------------------------------------------------

test('Rng: same seed -> same sequence; different seeds differ; floats in [0,1)', () => {
  const a = new Rng(42);
  const b = new Rng(42);
  const c = new Rng(43);
  const sa: number[] = [];
  const sb: number[] = [];
  const sc: number[] = [];
  for (let i = 0; i < 1000; i++) {
    sa.push(a.nextFloat());
    sb.push(b.nextFloat());
    sc.push(c.nextFloat());
  }
  assert.deepEqual(sa, sb);
  assert.notDeepEqual(sa, sc);
  for (const x of sa) assert.ok(x >= 0 && x < 1);
  // Seeds beyond 32 bits and negative seeds are distinct streams.
  const big1 = new Rng(2 ** 40 + 7).nextUint32();
  const big2 = new Rng(7).nextUint32();
  const neg = new Rng(-7).nextUint32();
  assert.notEqual(big1, big2);
  assert.notEqual(neg, big2);
  // Unseeded generators are independent.
  assert.notEqual(new Rng().nextFloat(), new Rng().nextFloat());
  assert.throws(() => new Rng(1.5), (e: unknown) => e instanceof GemmaError && e.code === 'INVALID_ARGUMENT');
});

test('Rng: uniformity (mean, variance, 10-bin histogram) over 200000 draws', () => {
  const r = new Rng(12345);
  const N = 200000;
  const bins = new Array<number>(10).fill(0);
  let sum = 0;
  let sq = 0;
  for (let i = 0; i < N; i++) {
    const x = r.nextFloat();
    sum += x;
    sq += x * x;
    bins[Math.floor(x * 10)]!++;
  }
  const mean = sum / N;
  const variance = sq / N - mean * mean;
  assert.ok(Math.abs(mean - 0.5) < 0.003, `mean ${mean}`);
  assert.ok(Math.abs(variance - 1 / 12) < 0.002, `variance ${variance}`);
  let chi2 = 0;
  for (const c of bins) chi2 += (c - N / 10) ** 2 / (N / 10);
  assert.ok(chi2 < 30, `chi2 ${chi2} (9 dof)`); // p < 0.001 threshold is 27.9
});

// ---------------------------------------------------------------------------------------------
// Greedy
// ---------------------------------------------------------------------------------------------

test('greedy: argmax, ignores ids >= allowedVocab, lowest id on ties, ignores sampling filters', () => {
  const logits = new Float32Array([0.5, 2.0, -1, 1.5, 9.0, 50.0]);
  const s = new Sampler({ temperature: 0 }, 4);
  assert.equal(s.sample(logits), 1);
  const s6 = new Sampler({ temperature: 0 }, 6);
  assert.equal(s6.sample(logits), 5);
  const ties = new Float32Array([1, 3, 0, 3, 3]);
  assert.equal(new Sampler({ temperature: 0 }, 5).sample(ties), 1);
  // topK/topP/minP/seed play no part in greedy decoding (HF: do_sample=False).
  assert.equal(new Sampler({ temperature: 0, topK: 2, topP: 0.1, minP: 0.9, seed: 3 }, 4).sample(logits), 1);
  // NaN is never the argmax; -Infinity rows are rejected.
  assert.equal(new Sampler({ temperature: 0 }, 3).sample(new Float32Array([NaN, -5, -4])), 2);
  assert.throws(
    () => new Sampler({ temperature: 0 }, 2).sample(new Float32Array([-Infinity, NaN, 7])),
    (e: unknown) => e instanceof GemmaError && e.code === 'INVALID_ARGUMENT',
  );
});

test('greedy at Gemma scale: the untrained rows beyond 262144 are never picked', () => {
  const V = SAMPLABLE_VOCAB;
  const logits = new Float32Array(262208);
  const rng = new Rng(1);
  for (let i = 0; i < V; i++) logits[i] = rng.nextFloat() * 10;
  logits[123456] = 20;
  for (let i = V; i < logits.length; i++) logits[i] = 1000;
  assert.equal(new Sampler({ temperature: 0 }, V).sample(logits), 123456);
  // And when sampling: a logit of 1000 beyond the allowed range would otherwise take all the mass.
  const s = new Sampler({ temperature: 1, seed: 9 }, V);
  for (let d = 0; d < 200; d++) assert.ok(s.sample(logits) < V);
});

test('repetition penalty: HF formula changes the argmax; each distinct id penalised once', () => {
  // Positive logit: divided. 3.0 / 2 = 1.5 < 2.0 -> id 1 wins.
  const pos = new Float32Array([3.0, 2.0, -1.0, 0.0]);
  assert.equal(new Sampler({ temperature: 0 }, 4).sample(pos, [0]), 0);
  assert.equal(new Sampler({ temperature: 0, repetitionPenalty: 2 }, 4).sample(pos, [0]), 1);
  // Applied once per distinct id: 3.0 / 1.4 = 2.142 > 2.0 still wins even though 0 appears 3 times
  // (applying it three times would give 3 / 2.744 = 1.09).
  assert.equal(new Sampler({ temperature: 0, repetitionPenalty: 1.4 }, 4).sample(pos, [0, 0, 0]), 0);
  // Negative logit: multiplied. -1.0 * 2 = -2.0 < -1.5 -> id 1 wins.
  const neg = new Float32Array([-1.0, -1.5, -3.0]);
  assert.equal(new Sampler({ temperature: 0, repetitionPenalty: 2 }, 3).sample(neg, [0, 2]), 1);
  // A penalty < 1 boosts: 2.0 / 0.5 = 4.0 > 3.0.
  assert.equal(new Sampler({ temperature: 0, repetitionPenalty: 0.5 }, 4).sample(pos, [1]), 1);
  // Context ids beyond the vocabulary or malformed are ignored.
  assert.equal(new Sampler({ temperature: 0, repetitionPenalty: 2 }, 4).sample(pos, [99, -1, 0.5]), 0);

  // Sampling: the distribution is softmax(penalised / T).
  const logits = new Float32Array([2.0, 1.0, -0.5, 0.3]);
  const ctx = [0, 2, 2];
  const o: SamplingOptions = { temperature: 0.8, repetitionPenalty: 1.3, seed: 5 };
  const expected = probsOf(referenceScores(logits, 4, o, ctx));
  // exact scores: [fround(2/1.3)/0.8, 1/0.8, fround(-0.5*1.3)/0.8, 0.3/0.8]
  assert.ok(Math.abs(referenceScores(logits, 4, o, ctx)[0]! - 2 / 1.3 / 0.8) < 1e-6);
  assertMatchesDistribution(new Sampler(o, 4), logits, expected, 20000, ctx);
});

test('sample() never modifies the logits row', () => {
  const rng = new Rng(77);
  const logits = randomLogits(rng, 5000, 3);
  const copy = logits.slice();
  const opts: SamplingOptions[] = [
    { temperature: 0, repetitionPenalty: 1.5 },
    { temperature: 0.7, repetitionPenalty: 1.5, topK: 40, topP: 0.9, minP: 0.05, seed: 1 },
    { temperature: 1.3, topP: 0.8, seed: 2 },
    { seed: 3 },
  ];
  for (const o of opts) {
    const s = new Sampler(o, 5000);
    for (let d = 0; d < 20; d++) s.sample(logits, [1, 2, 3, 10, 4999]);
    assert.deepEqual(logits, copy);
  }
});

// ---------------------------------------------------------------------------------------------
// Reproducibility and distribution
// ---------------------------------------------------------------------------------------------

test('seeded runs reproduce; different seeds give different streams', () => {
  const logits = randomLogits(new Rng(5), 3000, 2);
  const run = (seed: number, o: SamplingOptions = {}): number[] => {
    const s = new Sampler({ ...o, seed }, 3000);
    const out: number[] = [];
    for (let i = 0; i < 300; i++) out.push(s.sample(logits));
    return out;
  };
  assert.deepEqual(run(1234), run(1234));
  assert.deepEqual(run(99, { topK: 64, topP: 0.95 }), run(99, { topK: 64, topP: 0.95 }));
  assert.deepEqual(run(7, { topP: 0.5, temperature: 0.6 }), run(7, { topP: 0.5, temperature: 0.6 }));
  assert.notDeepEqual(run(1234), run(1235));
});

test('empirical distribution matches softmax(logits / T) over 20000 draws', () => {
  const logits = new Float32Array([1.0, 2.0, 0.5, -1.0, 1.7, 0.0, 3.0, 99]);
  for (const T of [1, 0.7, 1.8]) {
    const s = new Sampler({ temperature: T, seed: 2024 }, 7); // id 7 (99) is outside the vocabulary
    const expected = softmax(Array.from(logits.subarray(0, 7), (x) => Math.fround(x / T)));
    assertMatchesDistribution(s, logits, [...expected, 0], 20000);
  }
});

// ---------------------------------------------------------------------------------------------
// top-k
// ---------------------------------------------------------------------------------------------

test('top-k: only the k best ids are ever drawn, with renormalised probabilities', () => {
  const rng = new Rng(31);
  const V = 1000;
  const logits = randomLogits(rng, V, 1.5);
  const o: SamplingOptions = { topK: 5, temperature: 0.9, seed: 8 };
  const s = new Sampler(o, V);
  const best = [...Array(V).keys()].sort((a, b) => logits[b]! - logits[a]!).slice(0, 5).sort((a, b) => a - b);
  assert.deepEqual(s.candidates(logits), best);
  assert.deepEqual(referenceSet(logits, V, o), best);
  const expected = probsOf(referenceScores(logits, V, o));
  assertMatchesDistribution(s, logits, expected, 20000);

  // topK = 1 is greedy-like; topK >= V is no filtering.
  const s1 = new Sampler({ topK: 1, seed: 1 }, V);
  for (let d = 0; d < 50; d++) assert.equal(s1.sample(logits), best.find((i) => logits[i] === Math.max(...logits))!);
  assert.equal(new Sampler({ topK: 5000, seed: 1 }, V).candidates(logits).length, V);
});

test('top-k: ties with the k-th value survive, as HF (scores < kth value are removed)', () => {
  const logits = new Float32Array([5, 4, 4, 1, 4, -2]);
  const o: SamplingOptions = { topK: 2, seed: 3 };
  const s = new Sampler(o, 6);
  assert.deepEqual(s.candidates(logits), [0, 1, 2, 4]);
  assert.deepEqual(referenceSet(logits, 6, o), [0, 1, 2, 4]);
  assertMatchesDistribution(s, logits, probsOf(referenceScores(logits, 6, o)), 20000);
});

test('top-k matches the reference on random rows (many seeds, sizes, k)', () => {
  for (let seed = 0; seed < 60; seed++) {
    const rng = new Rng(1000 + seed);
    const V = [50, 700, 4096][seed % 3]!;
    // Quantised logits create plenty of ties at the k-th value.
    const logits = randomLogits(rng, V, 2);
    if (seed % 2 === 0) for (let i = 0; i < V; i++) logits[i] = Math.round(logits[i]! * 4) / 4;
    const k = 1 + Math.floor(rng.nextFloat() * 80);
    const o: SamplingOptions = { topK: k, temperature: 0.5 + rng.nextFloat(), seed };
    assert.deepEqual(new Sampler(o, V).candidates(logits), referenceSet(logits, V, o), `seed ${seed} k ${k}`);
  }
});

// ---------------------------------------------------------------------------------------------
// top-p
// ---------------------------------------------------------------------------------------------

test('top-p yields exactly the HF nucleus on random rows (many seeds, with and without top-k)', () => {
  let checked = 0;
  for (let seed = 0; seed < 200; seed++) {
    const rng = new Rng(5000 + seed);
    const V = [10, 300, 2000, 6000][seed % 4]!;
    const scale = [0.5, 1, 2, 4, 8][seed % 5]!;
    const logits = randomLogits(rng, V, scale);
    const topP = [0.05, 0.3, 0.5, 0.8, 0.9, 0.95, 0.99, 0.999][seed % 8]!;
    const topK = seed % 3 === 0 ? 1 + Math.floor(rng.nextFloat() * 100) : 0;
    const o: SamplingOptions = { topP, topK, temperature: 0.3 + 1.5 * rng.nextFloat(), seed };
    const got = new Sampler(o, V).candidates(logits);
    const want = referenceSet(logits, V, o);
    assert.deepEqual(got, want, `seed ${seed} V ${V} scale ${scale} topP ${topP} topK ${topK}`);
    checked++;
  }
  assert.equal(checked, 200);
});

test('top-p at Gemma vocabulary size (262144) matches the reference; draws stay inside the nucleus', () => {
  const V = SAMPLABLE_VOCAB;
  for (let seed = 0; seed < 3; seed++) {
    const rng = new Rng(777 + seed);
    const logits = randomLogits(rng, V + 64, [1, 2.5, 6][seed]!);
    for (let i = 0; i < 20; i++) logits[Math.floor(rng.nextFloat() * V)] += 12; // a few strong candidates
    const o: SamplingOptions = { topP: [0.9, 0.95, 0.5][seed]!, temperature: 1, seed };
    const s = new Sampler(o, V);
    const want = referenceSet(logits, V, o);
    assert.deepEqual(s.candidates(logits), want, `seed ${seed}`);
    const set = new Set(want);
    for (let d = 0; d < 300; d++) assert.ok(set.has(s.sample(logits)));
  }
});

test('top-p: distribution inside the nucleus is renormalised softmax', () => {
  const logits = new Float32Array([2.0, 1.5, 1.0, 0.2, -0.5, -1, -3, 0.9]);
  const o: SamplingOptions = { topP: 0.7, temperature: 1, seed: 11 };
  const expected = probsOf(referenceScores(logits, 8, o));
  assert.ok(expected.filter((p) => p > 0).length >= 2 && expected.filter((p) => p === 0).length >= 2);
  assertMatchesDistribution(new Sampler(o, 8), logits, expected, 20000);
});

test('top-p keeps at least one token; exact-boundary and flat-distribution cases', () => {
  const logits = new Float32Array([0.1, 3.0, 2.9, -1]);
  assert.deepEqual(new Sampler({ topP: 1e-9, seed: 1 }, 4).candidates(logits), [1]);
  // Probabilities exactly [0.5, 0.25, 0.125, 0.125]: cum ascending = 0.125, 0.25, 0.5, 1.
  // top_p = 0.5: remove cum <= 0.5 -> ids with probs 0.125, 0.125, 0.25 removed; keep only the 0.5.
  const L = Math.log(2);
  const exact = new Float32Array([3 * L, 2 * L, L, L].map(Math.fround));
  const o: SamplingOptions = { topP: 0.5, seed: 1 };
  assert.deepEqual(referenceSet(exact, 4, o), new Sampler(o, 4).candidates(exact));
  assert.deepEqual(referenceSet(exact, 4, { topP: 0.75 }), new Sampler({ topP: 0.75 }, 4).candidates(exact));
  // Flat distribution over 4096 ids (all ties, all in one histogram bucket): half survive, the
  // higher ids as a stable ascending sort orders them.
  const flat = new Float32Array(4096).fill(1.25);
  const half = new Sampler({ topP: 0.5, seed: 2 }, 4096).candidates(flat);
  assert.deepEqual(half, referenceSet(flat, 4096, { topP: 0.5 }));
  assert.equal(half.length, 2048);
  assert.equal(half[0], 2048);
});

test('top-p fallback: a long flat tail that the histogram cannot split still gives the exact set', () => {
  // One strong token, then 100000 ids of equal tiny probability: the nucleus reaches into the tail.
  const V = 100001;
  const logits = new Float32Array(V).fill(-2);
  logits[500] = 8;
  for (const topP of [0.3, 0.5, 0.9, 0.99]) {
    const o: SamplingOptions = { topP, seed: 1 };
    assert.deepEqual(new Sampler(o, V).candidates(logits), referenceSet(logits, V, o), `topP ${topP}`);
  }
  // -Infinity entries are never candidates.
  const masked = new Float32Array([1, -Infinity, 0.5, -Infinity, 0.2]);
  assert.deepEqual(new Sampler({ topP: 0.999, seed: 1 }, 5).candidates(masked), [0, 2, 4]);
});

// ---------------------------------------------------------------------------------------------
// min-p
// ---------------------------------------------------------------------------------------------

test('min-p keeps p >= min_p * p_max, relative to the max after temperature', () => {
  const logits = new Float32Array([0, -1, -3, -0.5]);
  // T = 1: relative probs exp(-d) = [1, .368, .0498, .607]; min_p 0.2 -> ids 0, 1, 3.
  assert.deepEqual(new Sampler({ minP: 0.2, seed: 1 }, 4).candidates(logits), [0, 1, 3]);
  // T = 3: exp(-d/3) = [1, .717, .368, .846]; all pass.
  assert.deepEqual(new Sampler({ minP: 0.2, temperature: 3, seed: 1 }, 4).candidates(logits), [0, 1, 2, 3]);
  // min_p = 1: only the max (and exact ties with it).
  assert.deepEqual(new Sampler({ minP: 1, seed: 1 }, 4).candidates(logits), [0]);
  assert.deepEqual(new Sampler({ minP: 1, seed: 1 }, 3).candidates(new Float32Array([2, 2, 1])), [0, 1]);
  const o: SamplingOptions = { minP: 0.2, temperature: 1, seed: 4 };
  assertMatchesDistribution(new Sampler(o, 4), logits, probsOf(referenceScores(logits, 4, o)), 20000);
});

test('min-p and the full chain (penalty, T, top-k, top-p, min-p) match the reference', () => {
  for (let seed = 0; seed < 120; seed++) {
    const rng = new Rng(9000 + seed);
    const V = [64, 1000, 5000][seed % 3]!;
    const logits = randomLogits(rng, V, 1 + 3 * rng.nextFloat());
    const context: number[] = [];
    for (let i = 0; i < 30; i++) context.push(Math.floor(rng.nextFloat() * V));
    const o: SamplingOptions = {
      temperature: 0.2 + 1.5 * rng.nextFloat(),
      minP: [0.01, 0.05, 0.1, 0.3, 0.6][seed % 5]!,
      topK: seed % 2 === 0 ? 1 + Math.floor(rng.nextFloat() * 200) : 0,
      topP: seed % 3 === 0 ? 1 : 0.5 + 0.5 * rng.nextFloat(),
      repetitionPenalty: seed % 4 === 0 ? 1 : 0.7 + rng.nextFloat(),
      seed,
    };
    assert.deepEqual(new Sampler(o, V).candidates(logits, context), referenceSet(logits, V, o, context), `seed ${seed} ${JSON.stringify(o)}`);
  }
});

// ---------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------

test('invalid options throw INVALID_ARGUMENT naming the option', () => {
  const bad: [keyof SamplingOptions, unknown][] = [
    ['temperature', -1],
    ['temperature', NaN],
    ['temperature', Infinity],
    ['temperature', '1'],
    ['topK', -1],
    ['topK', 1.5],
    ['topK', NaN],
    ['topK', Infinity],
    ['topP', 0],
    ['topP', -0.1],
    ['topP', 1.5],
    ['topP', NaN],
    ['minP', -0.1],
    ['minP', 1.1],
    ['minP', NaN],
    ['repetitionPenalty', 0],
    ['repetitionPenalty', -1],
    ['repetitionPenalty', NaN],
    ['repetitionPenalty', Infinity],
    ['seed', 1.5],
    ['seed', NaN],
    ['seed', 2 ** 60],
  ];
  for (const [name, value] of bad) {
    const o = { [name]: value } as SamplingOptions;
    const check = (e: unknown): boolean =>
      e instanceof GemmaError && e.code === 'INVALID_ARGUMENT' && e.message.includes(name);
    assert.throws(() => validateSamplingOptions(o), check, `${name}=${String(value)}`);
    assert.throws(() => new Sampler(o, 10), check, `${name}=${String(value)} (constructor)`);
  }
  // Valid edge values.
  for (const o of [
    {},
    { temperature: 0 },
    { topK: 0 },
    { topP: 1 },
    { topP: 1e-6 },
    { minP: 0 },
    { minP: 1 },
    { repetitionPenalty: 1e-3 },
    { seed: -5 },
    { seed: 0 },
  ] as SamplingOptions[]) {
    validateSamplingOptions(o);
  }
  const isInvalid = (name: string) => (e: unknown) =>
    e instanceof GemmaError && e.code === 'INVALID_ARGUMENT' && e.message.includes(name);
  assert.throws(() => new Sampler({}, 0), isInvalid('allowedVocab'));
  assert.throws(() => new Sampler({}, 1.5), isInvalid('allowedVocab'));
  assert.throws(() => new Sampler({}, 10).sample(new Float32Array(5)), isInvalid('logits'));
  assert.throws(
    () => new Sampler({ seed: 1 }, 3).sample(new Float32Array([-Infinity, -Infinity, NaN])),
    isInvalid('logits'),
  );
});

test('+Infinity logits: the lowest such id is chosen', () => {
  const logits = new Float32Array([1, Infinity, 2, Infinity]);
  assert.equal(new Sampler({ seed: 1 }, 4).sample(logits), 1);
  assert.equal(new Sampler({ temperature: 0 }, 4).sample(logits), 1);
});

// ---------------------------------------------------------------------------------------------
// Internals and speed
// ---------------------------------------------------------------------------------------------

test('expNeg agrees with Math.exp(-d) to 2 ulp over [0, 745) and handles the edges', () => {
  const rng = new Rng(21);
  let worst = 0;
  for (let i = 0; i < 1_000_000; i++) {
    const range = [0.01, 1, 10, 80, 745][i % 5]!;
    const d = rng.nextFloat() * range;
    const want = Math.exp(-d);
    if (want < 2.3e-308) continue; // subnormal results: absolute error only
    const rel = Math.abs(expNeg(d) - want) / want;
    if (rel > worst) worst = rel;
  }
  assert.ok(worst <= 4.5e-16, `worst relative error ${worst}`);
  assert.equal(expNeg(0), 1);
  assert.equal(expNeg(Infinity), 0);
  assert.equal(expNeg(745), 0);
  assert.equal(expNeg(1e300), 0);
  assert.ok(Number.isNaN(expNeg(NaN)));
  assert.ok(expNeg(744) > 0);
});

test('sortAscending sorts random, sorted, reversed, organ-pipe and duplicate-heavy inputs', () => {
  const rng = new Rng(3);
  const patterns: ((n: number) => Float64Array)[] = [
    (n) => Float64Array.from({ length: n }, () => rng.nextFloat()),
    (n) => Float64Array.from({ length: n }, (_, i) => i),
    (n) => Float64Array.from({ length: n }, (_, i) => n - i),
    (n) => Float64Array.from({ length: n }, (_, i) => Math.min(i, n - i)),
    (n) => Float64Array.from({ length: n }, () => Math.floor(rng.nextFloat() * 4)),
  ];
  for (const n of [0, 1, 2, 3, 17, 100, 1000, 50000]) {
    for (const make of patterns) {
      const a = make(n);
      const want = Array.from(a).sort((x, y) => x - y);
      const buf = new Float64Array(n + 5).fill(-1);
      buf.set(a);
      sortAscending(buf, n);
      assert.deepEqual(Array.from(buf.subarray(0, n)), want);
      for (let i = n; i < n + 5; i++) assert.equal(buf[i], -1); // untouched past n
    }
  }
});

test('speed at 262144 ids (Gemma defaults and top-p alone)', () => {
  const V = SAMPLABLE_VOCAB;
  const rng = new Rng(8);
  const logits = randomLogits(rng, V, 3);
  for (let i = 0; i < 50; i++) logits[Math.floor(rng.nextFloat() * V)] += 10;
  const context = Array.from({ length: 2000 }, () => Math.floor(rng.nextFloat() * V));
  const configs: [string, SamplingOptions][] = [
    ['greedy', { temperature: 0 }],
    ['defaults T1 k64 p0.95', { temperature: 1, topK: 64, topP: 0.95, seed: 1 }],
    ['top-p 0.95 only', { topP: 0.95, seed: 1 }],
    ['plain T0.8', { temperature: 0.8, seed: 1 }],
    ['min-p 0.05 + penalty', { minP: 0.05, repetitionPenalty: 1.1, seed: 1 }],
  ];
  for (const [name, o] of configs) {
    const s = new Sampler(o, V);
    for (let i = 0; i < 5; i++) s.sample(logits, context); // warm up
    const n = 40;
    const t0 = performance.now();
    for (let i = 0; i < n; i++) s.sample(logits, context);
    const ms = (performance.now() - t0) / n;
    console.log(`  sampler ${name}: ${ms.toFixed(3)} ms/token`);
    assert.ok(ms < 100, `${name}: ${ms} ms per sample`);
  }
});

test('a temperature or repetition penalty that overflows float32 tends to greedy, not to the lowest overflowing id', () => {
  const V = 1000;
  const r = new Rng(7);
  const logits = new Float32Array(V);
  for (let i = 0; i < V; i++) logits[i] = (r.nextFloat() - 0.3) * 20;
  let best = 0;
  for (let i = 1; i < V; i++) if (logits[i]! > logits[best]!) best = i;
  for (let seed = 0; seed < 5; seed++) {
    assert.equal(new Sampler({ temperature: 1e-300, seed }, V).sample(logits), best);
    assert.equal(new Sampler({ temperature: 1e-40, topK: 50, seed }, V).sample(logits), best);
  }
  // A penalty below 1 favours the ids already seen; at 1e-300, the largest positive one among them.
  const seen = [...logits.keys()].filter((id) => id !== best && logits[id]! > 0).slice(0, 5);
  const favoured = [...seen].sort((a, b) => logits[b]! - logits[a]!)[0]!;
  assert.notEqual(favoured, best);
  assert.equal(new Sampler({ temperature: 0, repetitionPenalty: 1e-300 }, V).sample(logits, seen), favoured);
  assert.equal(new Sampler({ temperature: 0.7, repetitionPenalty: 1e-300, seed: 3 }, V).sample(logits, seen), favoured);
  // Ordinary values keep their exact float32 path.
  assert.equal(new Sampler({ temperature: 0 }, V).sample(logits), best);
});
