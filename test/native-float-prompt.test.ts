// Float weights (F32, F16, BF16) times prompt-sized batches. With GEMMA3_NATIVE_KERNELS=avx2-packed
// (native-kernels-avx2-packed.test.ts) these go through packed float32 panels
// (native/kernels-packed-avx2.c: 16 weight rows × 256 columns, register tiles of 6 activation
// rows, blocks of 256 rows and 256 activation rows); the shapes below reach every edge of that
// blocking: columns past one block and not a multiple of 8, panels cut short by the end of a row
// range, activation rows past one block and not a multiple of 6. Every other kernel runs them too.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../src/generate/rng.js';
import { binding, js, makeMatrix, native, randn, relErr, skip } from './native-test-kit.js';

const setThreads = (n: number) => (binding as { setThreads(n: number): void }).setThreads(n);

// [batch, rows, cols]: 16 (the smallest packed batch), one activation row block and a bit, two
// row blocks and a short panel, a short panel alone, columns just past one block.
const SHAPES: [number, number, number][] = [[16, 16, 256], [400, 40, 600], [20, 300, 259], [23, 9, 35], [17, 33, 515]];

for (const dtype of ['f32', 'bf16', 'f16'] as const) {
  test(`matMul ${dtype} with prompt-sized batches equals TypeScript, with the same bits for every thread count and row range`, { skip }, () => {
    const rng = new Rng(dtype === 'f32' ? 61 : dtype === 'bf16' ? 62 : 63);
    try {
      for (const [batch, rows, cols] of SHAPES) {
        const w = makeMatrix(dtype, rows, cols, randn(rng, rows * cols, 0.1));
        const x = randn(rng, batch * cols);
        const want = new Float32Array(batch * rows);
        js.matMul(want, w, x, batch);
        setThreads(1);
        const one = new Float32Array(batch * rows);
        native!.matMul(one, w, x, batch);
        const label = `${dtype} batch ${batch} rows ${rows} cols ${cols}`;
        assert.ok(relErr(one, want) < 1e-5, `${label}: relative error ${relErr(one, want)}`);
        for (const threads of [2, 3]) {
          setThreads(threads);
          const got = new Float32Array(batch * rows);
          native!.matMul(got, w, x, batch);
          assert.deepEqual(got, one, `${label}: ${threads} threads`);
        }
        // A row range at a stride (a split product): those rows, the same bits, nothing else written.
        const rowStart = Math.floor(rows / 3), outStride = rows - rowStart + 2;
        const part = new Float32Array(batch * outStride).fill(7);
        native!.matMul(part, w, x, batch, { rowStart, rowEnd: rows, outStride });
        for (let n = 0; n < batch; n++) {
          for (let r = rowStart; r < rows; r++) assert.equal(part[n * outStride + r - rowStart], one[n * rows + r], `${label}: range row ${r}`);
          assert.equal(part[n * outStride + rows - rowStart], 7, `${label}: wrote past the range`);
        }
      }
    } finally {
      setThreads(2);
    }
  });
}

// A prompt cut into chunks (the scheduler's prompt chunks, a prompt cache's suffix) must give each
// token the bits the whole prompt gives it, as long as every chunk is a prompt-sized batch.
test('a float product of activation rows 16 to 39 equals those rows of the whole 40-row product, bit for bit', { skip }, () => {
  const rng = new Rng(64);
  const rows = 35, cols = 300;
  for (const dtype of ['f32', 'bf16', 'f16'] as const) {
    const w = makeMatrix(dtype, rows, cols, randn(rng, rows * cols, 0.1));
    const x = randn(rng, 40 * cols);
    const whole = new Float32Array(40 * rows);
    native!.matMul(whole, w, x, 40);
    const tail = new Float32Array(24 * rows);
    native!.matMul(tail, w, x.subarray(16 * cols), 24);
    assert.deepEqual(tail, whole.subarray(16 * rows), dtype);
  }
});
