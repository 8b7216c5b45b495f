// One benchmark run of our engine in its own process (so peak RSS and load time are its own):
// load a GGUF, answer the first token of a short prompt, then prompt-N and decode-M timings.
// Prints one JSON line. Usage: node engine-gemma3.js MODEL PROMPT_TOKENS DECODE_TOKENS THREADS [KV_TYPE] [CONTEXT]
// CONTEXT: the context to load with (default: the prompt and decode tokens, and a little room).
import { readFileSync, statSync } from 'node:fs';
import { KV_TYPES, type KvType } from '../src/backend/backend.js';
import { load } from '../src/index.js';
import { benchPrompt, peakRssMb } from './common.js';

const [model, promptArg, decodeArg, threadsArg, kvTypeArg, contextArg] = process.argv.slice(2);
const promptTokens = Number(promptArg);
const decodeTokens = Number(decodeArg);
const threads = Number(threadsArg);

const t0 = performance.now();
const kvType = (kvTypeArg ?? 'f32') as KvType;
if (!KV_TYPES.includes(kvType)) throw new Error(`KV_TYPE takes ${KV_TYPES.join(', ')}, got ${kvTypeArg}`);
const contextLength = contextArg ? Number(contextArg) : promptTokens + decodeTokens + 32;
const m = await load(model!, { backend: 'native', threads, contextLength, kvType });
const decoder = m.decoder;
// Time to the first token of a short prompt (what a user waits for after starting).
const warm = decoder.createCache(64);
decoder.forward({ ids: benchPrompt(16) }, warm, { logits: 'last' });
const loadS = (performance.now() - t0) / 1000;

const cache = decoder.createCache(contextArg ? contextLength : promptTokens + decodeTokens + 1);
const prompt = benchPrompt(promptTokens);
let t = performance.now();
let logits = decoder.forward({ ids: prompt }, cache, { logits: 'last' });
const promptTps = promptTokens / ((performance.now() - t) / 1000);

const into = new Float32Array(m.config.text.vocabSize);
// Matrices still read from the file mapping when decoding starts (their x16 copies unfinished).
const copiesPending = (decoder.backend as { copiesInProgress?: () => number }).copiesInProgress?.() ?? 0;
t = performance.now();
for (let i = 0; i < decodeTokens; i++) {
  let best = 0;
  for (let j = 1; j < 262144; j++) if (logits[j]! > logits[best]!) best = j;
  logits = decoder.forward({ ids: [best] }, cache, { logits: 'last', into });
}
const decodeTps = decodeTokens / ((performance.now() - t) / 1000);
const info = (decoder.backend as { info?: { kernels: string; x16: boolean } }).info;
const isa = info ? `${info.kernels} kernels${info.x16 ? ', x16 layouts' : ''}` : 'unknown';
// What one decode step reads at the end: every weight once (the tied embedding is the output
// head) and the cached keys and values each layer sees (the window on sliding layers).
const depth = promptTokens + decodeTokens;
const text = m.config.text;
const kvBytesPerToken = text.layerTypes.reduce((sum, type) => sum + (type === 'sliding' ? Math.min(depth, text.slidingWindow) : depth), 0) *
  text.numKvHeads * text.headDim * 2 * (kvType === 'f32' ? 4 : 2);
console.log(JSON.stringify({
  engine: 'gemma3', kv_type: kvType, context: contextLength, prompt_tps: promptTps, decode_tps: decodeTps, peak_rss_mb: peakRssMb(), load_s: loadS, isa,
  weight_bytes_per_token: statSync(model!).size, kv_bytes_per_token: kvBytesPerToken,
  copies_pending_at_decode: copiesPending, anon_huge_mb: anonHugeMb(),
}));
m.dispose();

/** How much of this process's anonymous memory sits in 2 MiB pages (the x16 copies ask for them: 4 KiB pages cost decode speed in TLB misses). */
function anonHugeMb(): number {
  const m = /AnonHugePages:\s+(\d+) kB/.exec(readFileSync('/proc/self/smaps_rollup', 'utf8'));
  return m ? Number(m[1]) / 1024 : 0;
}
