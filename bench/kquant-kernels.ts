// CPU time of the K-quant matrix products (not part of npm run bench): one pool thread, Q4_K and
// Q6_K matrices of the 4B's FFN shapes, one activation row (decode: GB of weights per
// CPU-second) and 64 (a prompt: GFLOP per CPU-second). CPU seconds (process.cpuUsage), not wall
// time, so a busy shared machine still gives comparable numbers. The kernel is the one the addon
// picks; compare classes by running it again with GEMMA3_NATIVE_KERNELS=avx2 (or generic). Each
// matrix runs as stored ('rows') and, where the addon repacks K-quants, in the x16 layout.
// Usage: node dist/bench/kquant-kernels.js [MIN_CPU_SECONDS]
import type { WeightMatrix } from '../src/backend/backend.js';
import { NativeBackend, loadNativeBinding } from '../src/backend/native-backend.js';
import { randomMatrixBytes } from './synthetic.js';

const minCpuS = Number(process.argv[2] ?? 1);
const binding = loadNativeBinding();
if (binding instanceof Error) throw binding;
const be = new NativeBackend(binding, 1);
console.log(`K-quant kernels: ${be.info.kquantKernels} (GEMMA3_NATIVE_KERNELS=${process.env.GEMMA3_NATIVE_KERNELS ?? ''}), 1 thread`);

const cpuSeconds = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

for (const dtype of ['q4_k', 'q6_k'] as const) {
  for (const [rows, cols] of [[10240, 2560], [2560, 10240]] as const) {
    const stored: WeightMatrix = { dtype, rows, cols, data: randomMatrixBytes(dtype, rows, cols) };
    const layouts = be.repacksKQuants ? [stored, be.prepareMatrix(stored)] : [stored];
    for (const w of layouts) for (const batch of [1, 64]) {
      const x = Float32Array.from({ length: batch * cols }, (_, i) => Math.sin(i * 0.37) * 2);
      const out = new Float32Array(batch * rows);
      be.matMul(out, w, x, batch); // warm: pages touched, scratch allocated
      let calls = 0;
      const t0 = cpuSeconds();
      let t = t0;
      while (t - t0 < minCpuS) {
        be.matMul(out, w, x, batch);
        calls++;
        t = cpuSeconds();
      }
      const perCall = (t - t0) / calls;
      const rate = batch === 1 ? `${(w.data.length / perCall / 1e9).toFixed(2)} GB/CPU-s`
        : `${((2 * rows * cols * batch) / perCall / 1e9).toFixed(1)} GFLOP/CPU-s`;
      console.log(`${dtype} ${w.layout ?? 'rows'} ${rows}x${cols} batch ${batch}: ${(perCall * 1e3).toFixed(2)} ms CPU per product, ${rate}`);
    }
  }
}
