// Shared helpers for the vision tests (vision-decode, vision-preprocess): GemmaError assertions, pixel
// comparisons, synthetic test pictures and an independent PIL BILINEAR reference resize.
import assert from 'node:assert/strict';
import { GemmaError, type GemmaErrorCode } from '../src/errors.js';
import type { RgbImage } from '../src/vision/image.js';
import { fixturePath } from './helpers.js';

export const IMAGES_DIR = fixturePath('goldens', 'images');

export async function rejectsWith(p: Promise<unknown>, code: GemmaErrorCode, re?: RegExp): Promise<GemmaError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof GemmaError, `expected a GemmaError, got ${String(e)}`);
    assert.equal(e.code, code, `expected ${code}, got ${e.code}: ${e.message}`);
    if (re) assert.match(e.message, re);
    return e;
  }
  assert.fail(`expected a GemmaError ${code}, but it resolved`);
}

export function throwsWith(fn: () => unknown, code: GemmaErrorCode, re?: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof GemmaError, `expected a GemmaError, got ${String(e)}`);
    assert.equal(e.code, code, `expected ${code}, got ${e.code}: ${e.message}`);
    if (re) assert.match(e.message, re);
    return true;
  });
}

export function samePixels(a: RgbImage, b: RgbImage, what: string): void {
  assert.equal(a.width, b.width, `${what}: width`);
  assert.equal(a.height, b.height, `${what}: height`);
  assert.equal(a.data.length, b.data.length, `${what}: length`);
  let first = -1;
  let n = 0;
  for (let i = 0; i < a.data.length; i++) {
    if (a.data[i] !== b.data[i]) {
      if (first < 0) first = i;
      n++;
    }
  }
  assert.equal(n, 0, `${what}: ${n} bytes differ, first at ${first} (${a.data[first]} vs ${b.data[first]})`);
}

export function meanAbsDiff(a: Uint8Array, b: Uint8Array): number {
  assert.equal(a.length, b.length);
  let s = 0;
  for (let i = 0; i < a.length; i++) s += Math.abs(a[i]! - b[i]!);
  return s / a.length;
}

/** A deterministic test picture with smooth gradients plus noise. */
export function synthRgb(width: number, height: number, seed = 1): RgbImage {
  const data = new Uint8Array(width * height * 3);
  let s = seed >>> 0;
  const rnd = (): number => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s >>> 24;
  };
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const o = (y * width + x) * 3;
      data[o] = (x * 7 + (rnd() & 15)) & 255;
      data[o + 1] = (y * 5 + (rnd() & 15)) & 255;
      data[o + 2] = ((x + y) * 3 + (rnd() & 31)) & 255;
    }
  }
  return { width, height, data };
}

/** A picture with few flat colours (survives GIF/palette quantisation exactly). */
export function flatColours(width: number, height: number): RgbImage {
  const palette = [
    [255, 0, 0],
    [0, 128, 255],
    [20, 200, 40],
    [250, 250, 10],
    [0, 0, 0],
    [255, 255, 255],
  ];
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const c = palette[(Math.floor(x / 4) + Math.floor(y / 3) * 2) % palette.length]!;
      data.set(c, (y * width + x) * 3);
    }
  }
  return { width, height, data };
}

export function rawInput(img: RgbImage, channels = 3): { raw: { width: number; height: number; channels: 1 | 2 | 3 | 4 } } {
  return { raw: { width: img.width, height: img.height, channels: channels as 1 | 2 | 3 | 4 } };
}

/** Independent float64 version of the README's PIL BILINEAR recipe (both passes always run). */
export function referenceResize(img: RgbImage, outW: number, outH: number): RgbImage {
  const axis = (inSize: number, outSize: number): { lo: number[]; k: number[][] } => {
    const scale = inSize / outSize;
    const fs = Math.max(scale, 1);
    const lo: number[] = [];
    const ks: number[][] = [];
    for (let o = 0; o < outSize; o++) {
      const center = (o + 0.5) * scale;
      const xmin = Math.max(Math.trunc(center - fs + 0.5), 0);
      const xmax = Math.min(Math.trunc(center + fs + 0.5), inSize);
      const w: number[] = [];
      for (let x = xmin; x < xmax; x++) w.push(Math.max(0, 1 - Math.abs((x - center + 0.5) / fs)));
      const sum = w.reduce((a, b) => a + b, 0);
      lo.push(xmin);
      ks.push(w.map((v) => Math.trunc(0.5 + (v / sum) * 4194304)));
    }
    return { lo, k: ks };
  };
  const h = axis(img.width, outW);
  const tmp = new Uint8Array(outW * img.height * 3);
  for (let y = 0; y < img.height; y++) {
    for (let o = 0; o < outW; o++) {
      for (let c = 0; c < 3; c++) {
        let s = 1 << 21;
        h.k[o]!.forEach((k, j) => (s += img.data[(y * img.width + h.lo[o]! + j) * 3 + c]! * k));
        tmp[(y * outW + o) * 3 + c] = Math.min(255, Math.max(0, Math.floor(s / 4194304)));
      }
    }
  }
  const v = axis(img.height, outH);
  const out = new Uint8Array(outW * outH * 3);
  for (let o = 0; o < outH; o++) {
    for (let x = 0; x < outW; x++) {
      for (let c = 0; c < 3; c++) {
        let s = 1 << 21;
        v.k[o]!.forEach((k, j) => (s += tmp[((v.lo[o]! + j) * outW + x) * 3 + c]! * k));
        out[(o * outW + x) * 3 + c] = Math.min(255, Math.max(0, Math.floor(s / 4194304)));
      }
    }
  }
  return { width: outW, height: outH, data: out };
}
