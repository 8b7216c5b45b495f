// The addon in worker threads: Node unloads it when the last thread that loaded it ends, so the
// kernel thread pool must stop first (and a late-starting pool thread must not miss a job); and
// products computed from two threads at once never mix their inputs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { join } from 'node:path';
import { loadNativeBinding } from '../src/backend/native-backend.js';
import { REPO_ROOT } from './helpers.js';

const skip = loadNativeBinding() instanceof Error ? 'native addon not built' : false;

test('workers that use the native kernels can start and exit repeatedly', { skip, timeout: 60_000 }, async () => {
  const module = join(REPO_ROOT, 'dist', 'src', 'backend', 'native-backend.js');
  const code = `
    const { selectBackend } = await import(${JSON.stringify(module)});
    const be = selectBackend('native', 2);
    const w = { dtype: 'f32', rows: 64, cols: 64, data: new Uint8Array(new Float32Array(64 * 64).fill(1).buffer) };
    const out = new Float32Array(64);
    be.matMul(out, w, new Float32Array(64).fill(2), 1);
    (await import('node:worker_threads')).parentPort.postMessage(out[0]);
  `;
  for (let i = 0; i < 4; i++) {
    const value = await new Promise<number>((resolve, reject) => {
      const worker = new Worker(code, { eval: true });
      let got = NaN;
      worker.on('message', (v: number) => (got = v));
      worker.on('error', reject);
      worker.on('exit', (exitCode) => (exitCode === 0 ? resolve(got) : reject(new Error(`worker exit ${exitCode}`))));
    });
    assert.equal(value, 128);
  }
});

test('models in two worker threads multiplying quantized weights at the same time get their own results', { skip, timeout: 120_000 }, async () => {
  const module = join(REPO_ROOT, 'dist', 'src', 'backend', 'native-backend.js');
  const quant = join(REPO_ROOT, 'dist', 'src', 'formats', 'quant.js');
  // Each worker multiplies the same Q8_0 matrix by its own activations many times; activations
  // are quantized into a per-thread scratch, so a shared one would mix the two workers' inputs.
  const code = (seed: number) => `
    const { selectBackend } = await import(${JSON.stringify(module)});
    const { quantizeRowQ8_0 } = await import(${JSON.stringify(quant)});
    const be = selectBackend('native', 2);
    const rows = 64, cols = 2048, batch = 4;
    const data = new Uint8Array(rows * (cols / 32) * 34);
    for (let r = 0; r < rows; r++) data.set(quantizeRowQ8_0(Float32Array.from({ length: cols }, (_, c) => Math.sin(r * 7 + c))), r * (cols / 32) * 34);
    const w = { dtype: 'q8_0', rows, cols, data };
    const x = Float32Array.from({ length: batch * cols }, (_, i) => Math.cos(i * ${seed}));
    const first = new Float32Array(batch * rows);
    be.matMul(first, w, x, batch);
    let mismatches = 0;
    const out = new Float32Array(batch * rows);
    for (let i = 0; i < 300; i++) {
      be.matMul(out, w, x, batch);
      for (let j = 0; j < out.length; j++) if (out[j] !== first[j]) { mismatches++; break; }
    }
    (await import('node:worker_threads')).parentPort.postMessage(mismatches);
  `;
  const run = (seed: number) => new Promise<number>((resolve, reject) => {
    const worker = new Worker(code(seed), { eval: true });
    let got = NaN;
    worker.on('message', (v: number) => (got = v));
    worker.on('error', reject);
    worker.on('exit', (exitCode) => (exitCode === 0 ? resolve(got) : reject(new Error(`worker exit ${exitCode}`))));
  });
  const [a, b] = await Promise.all([run(3), run(5)]);
  assert.equal(a, 0);
  assert.equal(b, 0);
});
