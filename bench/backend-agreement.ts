// How far the native kernels and their TypeScript twins are apart on a real-sized model (not part
// of npm run bench): both backends compute the same prompt; per position, the top-10 log-probs of
// the native run are compared with the TypeScript run's log-probs of the same ids.
// Usage: node dist/bench/backend-agreement.js MODEL [PROMPT_TOKENS]
import { load } from '../src/index.js';
import { benchPrompt, topLogProbDistance } from './common.js';

const [model, promptArg] = process.argv.slice(2);
const ids = benchPrompt(Number(promptArg ?? 8));

async function allLogits(backend: 'native' | 'js'): Promise<{ rows: Float32Array; V: number }> {
  const m = await load(model!, { backend, threads: 2, contextLength: ids.length + 8 });
  const rows = m.decoder.forward({ ids }, m.decoder.createCache(ids.length + 1), { logits: 'all' }).slice();
  const V = m.config.text.vocabSize;
  m.dispose();
  return { rows, V };
}

const native = await allLogits('native');
const js = await allLogits('js');
const d = topLogProbDistance(native.rows, js.rows, ids.length, native.V);
console.log(`${model}: ${ids.length} positions, top-10 log-prob difference native vs TypeScript: mean ${d.mean.toFixed(4)}, max ${d.max.toFixed(4)}; ` +
  `same argmax at ${d.sameArgmax}/${ids.length} positions`);
