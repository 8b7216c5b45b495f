// How much a model itself amplifies float rounding (not part of npm run bench): the native
// backend's logits for a prompt, then again with every product's outputs (not the output head)
// moved by up to ULPS units in the last place at random; prints the top-10 log-prob change, in
// the same terms as bench/backend-agreement.ts. The native and TypeScript kernels agree to about
// 3e-7 of the largest output of a product (float32 sums in SIMD lanes vs float64): where this
// change at 1-2 ulp is as large as the backends' gap, the gap is the model's sensitivity, not a
// kernel difference.
// Usage: node dist/bench/rounding-sensitivity.js MODEL [ULPS] [PROMPT_TOKENS]
import { load } from '../src/index.js';
import type { Backend } from '../src/backend/backend.js';
import { benchPrompt, topLogProbDistance } from './common.js';

const [model, ulpsArg, promptArg] = process.argv.slice(2);
const ulps = Number(ulpsArg ?? 1);
const ids = benchPrompt(Number(promptArg ?? 8));

const m = await load(model!, { backend: 'native', threads: 2, contextLength: ids.length + 8 });
const V = m.config.text.vocabSize;
const run = (): Float32Array => m.decoder.forward({ ids }, m.decoder.createCache(ids.length + 1), { logits: 'all' }).slice();
const reference = run();

let seed = 3;
const nudge = (out: Float32Array): void => {
  for (let i = 0; i < out.length; i++) {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    out[i] = out[i]! * (1 + (seed / 2147483648 - 0.5) * 2 * ulps * 2 ** -24);
  }
};
const backend: Backend = m.decoder.backend;
const matMul = backend.matMul.bind(backend);
const matMulShared = backend.matMulShared.bind(backend);
const heads = new Set([m.decoder.weights.tokenEmbd, m.decoder.weights.output]);
backend.matMul = (out, w, x, batch, range) => {
  matMul(out, w, x, batch, range);
  if (!heads.has(w)) nudge(out);
};
backend.matMulShared = (outs, ws, x, batch) => {
  matMulShared(outs, ws, x, batch);
  for (const out of outs) nudge(out);
};
const nudged = run();
m.dispose();

const d = topLogProbDistance(nudged, reference, ids.length, V);
console.log(`${model}: products' outputs moved by up to ${ulps} ulp: top-10 log-prob change mean ${d.mean.toFixed(4)}, ` +
  `max ${d.max.toFixed(4)} over ${ids.length} positions`);
