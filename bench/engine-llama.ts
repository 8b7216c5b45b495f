// One benchmark run of llama.cpp through node-llama-cpp (CPU only) in its own process, with the
// same measurements as engine-gemma3.ts. Usage: node engine-llama.js MODEL PROMPT DECODE THREADS [CONTEXT]
import { getLlama, LlamaLogLevel } from 'node-llama-cpp';
import { benchPrompt, peakRssMb } from './common.js';
import { getAvx2Llama } from './llama-avx2.js';

const [model, promptArg, decodeArg, threadsArg, contextArg] = process.argv.slice(2);
const promptTokens = Number(promptArg);
const decodeTokens = Number(decodeArg);
const threads = Number(threadsArg);

const t0 = performance.now();
// LLAMA_AVX2=1: the build without AVX-512 (bench/llama-avx2.ts), never built here.
const llama = process.env.LLAMA_AVX2 === '1' ? await getAvx2Llama(threads, 'never')
  : await getLlama({ gpu: false, logLevel: LlamaLogLevel.error, maxThreads: threads });
// ggml's system info line: which SIMD features the CPU backend was compiled with and uses.
const isa = (llama.systemInfo.match(/\b(AVX512[A-Z_0-9]*|AVX2|AVX_VNNI|FMA|F16C) = 1/g) ?? []).map((f) => f.replace(' = 1', '')).join(' ') || llama.systemInfo;
const loaded = await llama.loadModel({ modelPath: model!, useMmap: true });
const warmCtx = await loaded.createContext({ contextSize: 64, threads, batchSize: 64 });
const warmSeq = warmCtx.getSequence();
const warmTokens = benchPrompt(16) as any[];
for await (const _ of warmSeq.evaluate(warmTokens, { temperature: 0 })) break;
const loadS = (performance.now() - t0) / 1000;
await warmCtx.dispose();

// Batches of at most 512 tokens, llama.cpp's default micro-batch (node-llama-cpp makes the
// micro-batch the batch: a 32K batch would hold 32K tokens' activations at once).
const contextSize = contextArg ? Number(contextArg) : promptTokens + decodeTokens + 32;
const ctx = await loaded.createContext({ contextSize, threads, batchSize: Math.min(promptTokens, 512) });
const seq = ctx.getSequence();
const prompt = benchPrompt(promptTokens) as any[];
let t = performance.now();
await seq.evaluateWithoutGeneratingNewTokens(prompt.slice(0, -1));
// The last prompt token is evaluated together with sampling the first new one.
const iterator = seq.evaluate([prompt[prompt.length - 1]], { temperature: 0 })[Symbol.asyncIterator]();
await iterator.next();
const promptTps = promptTokens / ((performance.now() - t) / 1000);
t = performance.now();
for (let i = 0; i < decodeTokens; i++) await iterator.next();
const decodeTps = decodeTokens / ((performance.now() - t) / 1000);
await iterator.return?.(undefined);
console.log(JSON.stringify({ engine: 'node-llama-cpp', context: contextSize, prompt_tps: promptTps, decode_tps: decodeTps, peak_rss_mb: peakRssMb(), load_s: loadS, isa }));
await ctx.dispose();
await loaded.dispose();
