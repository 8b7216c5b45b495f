// Where one decode step's time goes (not part of npm run bench): wraps the backend's methods
// with timers. Usage: node dist/bench/profile-decode.js MODEL [TOKENS] [BATCH]
// PROFILE_CONTEXT=N: positions already in the cache (default 4); PROFILE_PREFAULT=1: touch the
// KV cache first (no page faults in the timings); PROFILE_PREFILL=1: time a 512-token prompt.
import { load } from '../src/index.js';

const [model, tokensArg, batchArg] = process.argv.slice(2);
const tokens = Number(tokensArg ?? 32);
const B = Number(batchArg ?? 1);
const m = await load(model!, { backend: 'native', threads: 2, contextLength: 1200 });
const be = m.decoder.backend as unknown as Record<string, (...a: unknown[]) => unknown>;
const times = new Map<string, number>();
const pendingCopies = be.copiesInProgress?.bind(be);
for (const name of ['matMul', 'matMulShared', 'attention', 'geluTanhMul', 'rmsNorm', 'rmsNormAdd', 'writeKv']) {
  const f = be[name]!.bind(be);
  be[name] = (...a: unknown[]) => {
    const t = performance.now();
    const r = f(...a);
    const shape = (w: { rows: number; cols: number }): string => `${w.rows}x${w.cols}`;
    const key = name === 'matMul' ? `matMul ${shape(a[1] as { rows: number; cols: number })}`
      : name === 'matMulShared' ? `matMulShared ${(a[1] as { rows: number; cols: number }[]).map(shape).join('+')}` : name;
    times.set(key, (times.get(key) ?? 0) + performance.now() - t);
    return r;
  };
}
if (process.env.PROFILE_PREFILL) {
  const c = m.decoder.createCache(1200);
  const t = performance.now();
  m.decoder.forward({ ids: Array.from({ length: 512 }, (_, i) => 1000 + i) }, c, { logits: 'last' });
  const total = performance.now() - t;
  let inBackend = 0;
  for (const [k, v] of [...times].sort((a, b) => b[1] - a[1])) { inBackend += v; console.log(`${k.padEnd(24)} ${v.toFixed(0)} ms`); }
  console.log(`prefill 512: ${total.toFixed(0)} ms, outside backend ${(total - inBackend).toFixed(0)} ms, ${(512000 / total).toFixed(1)} tok/s`);
  process.exit(0);
}
const caches = Array.from({ length: B }, () => m.decoder.createCache(1200));
if (process.env.PROFILE_PREFAULT) for (const c of caches) for (const l of c.layers) { l.k.fill(1); l.v.fill(1); }
const context = Number(process.env.PROFILE_CONTEXT ?? 4);
for (const c of caches) m.decoder.forward({ ids: Array.from({ length: context }, (_, i) => 2 + i) }, c, { logits: 'none' });
// Background x16 copies (K-quants: they start after the first pass) still being made would time
// the mapping's views and two busy copy threads.
if (pendingCopies) while ((pendingCopies() as number) > 0) await new Promise((r) => setTimeout(r, 100));
times.clear();
const into = new Float32Array(B * m.config.text.vocabSize);
const t0 = performance.now();
for (let i = 0; i < tokens; i++) {
  if (B === 1) m.decoder.forward({ ids: [1000 + i] }, caches[0]!, { logits: 'last', into });
  else m.decoder.decodeBatch(caches.map((_, b) => 1000 + i + b), caches, into);
}
const total = performance.now() - t0;
let inBackend = 0;
for (const [k, v] of [...times].sort((a, b) => b[1] - a[1])) {
  inBackend += v;
  console.log(`${k.padEnd(24)} ${(v / tokens).toFixed(2)} ms/step`);
}
console.log(`total ${(total / tokens).toFixed(2)} ms/step, outside backend ${((total - inBackend) / tokens).toFixed(2)} ms; ${(B * tokens / total * 1000).toFixed(2)} tok/s`);
m.dispose();
