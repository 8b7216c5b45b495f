// How far the native kernels and their TypeScript twins are apart on a real-sized model (not part
// of npm run bench): both backends compute the same prompt; per position, the top-10 log-probs of
// the native run are compared with the TypeScript run's log-probs of the same ids.
// Usage: node dist/bench/backend-agreement.js MODEL [PROMPT_TOKENS]
import { load } from '../src/index.js';
import { benchPrompt } from './common.js';

const [model, promptArg] = process.argv.slice(2);
const ids = benchPrompt(Number(promptArg ?? 8));

function logProbs(row: Float32Array): Float64Array {
  let max = -Infinity;
  for (const x of row) max = Math.max(max, x);
  let sum = 0;
  for (const x of row) sum += Math.exp(x - max);
  const lse = max + Math.log(sum);
  return Float64Array.from(row, (x) => x - lse);
}

async function allLogits(backend: 'native' | 'js'): Promise<{ rows: Float32Array; V: number }> {
  const m = await load(model!, { backend, threads: 2, contextLength: ids.length + 8 });
  const rows = m.decoder.forward({ ids }, m.decoder.createCache(ids.length + 1), { logits: 'all' }).slice();
  const V = m.config.text.vocabSize;
  m.dispose();
  return { rows, V };
}

const native = await allLogits('native');
const js = await allLogits('js');
const V = native.V;
let sum = 0;
let count = 0;
let worst = 0;
let sameArgmax = 0;
for (let t = 0; t < ids.length; t++) {
  const a = logProbs(native.rows.subarray(t * V, (t + 1) * V));
  const b = logProbs(js.rows.subarray(t * V, (t + 1) * V));
  const top = [...a.keys()].sort((i, j) => a[j]! - a[i]!).slice(0, 10);
  for (const id of top) {
    const d = Math.abs(a[id]! - b[id]!);
    sum += d;
    count++;
    worst = Math.max(worst, d);
  }
  let argmaxB = 0;
  for (let i = 1; i < b.length; i++) if (b[i]! > b[argmaxB]!) argmaxB = i;
  if (argmaxB === top[0]) sameArgmax++;
}
console.log(`${model}: ${ids.length} positions, top-10 log-prob difference native vs TypeScript: mean ${(sum / count).toFixed(4)}, max ${worst.toFixed(4)}; ` +
  `same argmax at ${sameArgmax}/${ids.length} positions`);
