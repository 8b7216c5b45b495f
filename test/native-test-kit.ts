// What the native kernel tests share: the addon (or why it is missing), the two backends, random
// matrices of every weight type and the error measure.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { WeightMatrix } from '../src/backend/backend.js';
import { JsBackend } from '../src/backend/js-backend.js';
import { decodeRow } from '../src/backend/rows.js';
import { NativeBackend, loadNativeBinding } from '../src/backend/native-backend.js';
import { f32ToBf16 } from '../src/formats/dtypes.js';
import { f32ToF16, quantizeRow } from '../src/formats/quant.js';
import type { Rng } from '../src/generate/rng.js';

export const binding: ReturnType<typeof loadNativeBinding> = loadNativeBinding();
export const skip = binding instanceof Error ? `native addon not built: ${binding.message.split('\n')[0]}` : false;
export const js = new JsBackend();

export function randn(rng: Rng, n: number, scale = 1): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = Math.max(rng.nextFloat(), 1e-12);
    out[i] = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng.nextFloat()) * scale;
  }
  return out;
}

export function makeMatrix(dtype: WeightMatrix['dtype'], rows: number, cols: number, values: Float32Array): WeightMatrix {
  switch (dtype) {
    case 'f32':
      return { dtype, rows, cols, data: new Uint8Array(values.buffer.slice(0)) };
    case 'bf16':
    case 'f16': {
      const u16 = Uint16Array.from(values, (v) => (dtype === 'bf16' ? f32ToBf16(v) : f32ToF16(v)));
      return { dtype, rows, cols, data: new Uint8Array(u16.buffer) };
    }
    case 'q8_0':
    case 'q4_0':
    case 'q5_0':
    case 'q5_1':
    case 'q4_k':
    case 'q5_k':
    case 'q6_k': {
      const parts: Uint8Array[] = [];
      for (let r = 0; r < rows; r++) {
        const row = values.subarray(r * cols, (r + 1) * cols);
        parts.push(quantizeRow(dtype, row));
      }
      const data = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
      let o = 0;
      for (const p of parts) {
        data.set(p, o);
        o += p.length;
      }
      return { dtype, rows, cols, data };
    }
    default:
      throw new Error(dtype);
  }
}

export function relErr(a: Float32Array, b: Float32Array): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num = Math.max(num, Math.abs(a[i]! - b[i]!));
    den = Math.max(den, Math.abs(b[i]!));
  }
  return num / Math.max(den, 1e-30);
}

export const native = skip ? undefined : new NativeBackend(binding as Exclude<typeof binding, Error>, 2);

/** Every row of `packed` (an interleaved layout) decodes to the same floats as the same row of `w` (as stored). */
export function assertRowsDecodeAlike(w: WeightMatrix, packed: WeightMatrix, label: string): void {
  const ref = new Float32Array(w.cols);
  const got = new Float32Array(w.cols);
  for (let r = 0; r < w.rows; r++) {
    decodeRow(w, r, ref);
    decodeRow(packed, r, got);
    assert.deepEqual(got, ref, `${label} row ${r}`);
  }
}

export const SHAPES: [number, number, number][] = [[2, 8, 96], [1, 13, 64], [5, 7, 96], [6, 33, 160], [64, 1, 32], [3, 17, 2560 + 32]];

/** A product for productsWithAvx2: weights as stored, activations [batch, cols]. */
export interface ProductCase { dtype: WeightMatrix['dtype']; rows: number; cols: number; batch: number; w: Uint8Array; x: Float32Array }

/**
 * The outputs of `cases` computed in a child process with the AVX2 kernels forced
 * (GEMMA3_NATIVE_KERNELS=avx2, or avx2-vnni: the x16 products with 256-bit dpbusd), each matrix through prepareMatrix as a model's would be. `expect`
 * is checked against the child's backend info first (e.g. that the x16 or K-quant kernels it
 * should run are the ones chosen), so a comparison never passes for code that did not run; with
 * 'kquant-x16' every matrix whose rows are a multiple of 16 must also come back in the x16 layout.
 */
export async function productsWithAvx2(cases: readonly ProductCase[], expect: 'x16' | 'kquant' | 'kquant-x16', kernels: 'avx2' | 'avx2-vnni' = 'avx2'): Promise<Float32Array[]> {
  const dir = mkdtempSync(join(tmpdir(), 'gemma3-avx2-child-'));
  try {
    writeFileSync(join(dir, 'cases.json'), JSON.stringify(cases.map((c) => ({ ...c, w: Buffer.from(c.w).toString('base64'), x: Buffer.from(c.x.buffer, c.x.byteOffset, c.x.byteLength).toString('base64') }))));
    const backendUrl = new URL('../src/backend/native-backend.js', import.meta.url).href;
    const check = expect === 'x16' ? `be.info.kernels === '${kernels}' && be.info.x16`
      : expect === 'kquant-x16' ? `be.info.kquantX16 && be.info.kquantKernels === '${kernels}'` : "be.info.kquantKernels === 'avx2'";
    const child = `
      import { readFileSync, writeFileSync } from 'node:fs';
      const { NativeBackend, loadNativeBinding } = await import(${JSON.stringify(backendUrl)});
      const be = new NativeBackend(loadNativeBinding(), 2);
      if (!(${check})) throw new Error('the AVX2 ${expect} kernels were not chosen: ' + JSON.stringify(be.info));
      const cases = JSON.parse(readFileSync(${JSON.stringify(join(dir, 'cases.json'))}, 'utf8'));
      const outs = cases.map((c) => {
        const w = new Uint8Array(Buffer.from(c.w, 'base64'));
        const xb = Buffer.from(c.x, 'base64');
        const x = new Float32Array(xb.buffer.slice(xb.byteOffset, xb.byteOffset + xb.length));
        const out = new Float32Array(c.batch * c.rows);
        const prepared = be.prepareMatrix({ dtype: c.dtype, rows: c.rows, cols: c.cols, data: w });
        if (${expect === 'kquant-x16'} && c.rows % 16 === 0 && prepared.layout !== 'x16') {
          throw new Error(c.dtype + ' ' + c.rows + 'x' + c.cols + ' was not repacked into the x16 layout: ' + prepared.layout);
        }
        be.matMul(out, prepared, x, c.batch);
        return Buffer.from(out.buffer).toString('base64');
      });
      writeFileSync(${JSON.stringify(join(dir, 'outs.json'))}, JSON.stringify(outs));`;
    const code = await new Promise<number | null>((resolve) => {
      const p = spawn(process.execPath, ['--input-type=module', '-e', child], { env: { ...process.env, GEMMA3_NATIVE_KERNELS: kernels }, stdio: ['ignore', 'inherit', 'inherit'] });
      p.on('exit', resolve);
    });
    assert.equal(code, 0, 'the AVX2 child ran');
    const outs = JSON.parse(readFileSync(join(dir, 'outs.json'), 'utf8')) as string[];
    return outs.map((o) => {
      const b = Buffer.from(o, 'base64');
      return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.length));
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
