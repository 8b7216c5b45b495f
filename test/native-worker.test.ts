// The addon in worker threads: Node unloads it when the last thread that loaded it ends, so the
// kernel thread pool must stop first (and a late-starting pool thread must not miss a job).
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
