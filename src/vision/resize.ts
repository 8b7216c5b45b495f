// PIL's `Image.resize(size, Image.BILINEAR)` for 8-bit RGB, bit for bit.
//
// This is Pillow's libImaging/Resample.c (ImagingResample with the BILINEAR filter) transcribed:
//  * a separable convolution with the triangle filter, antialiased: for an axis scaled
//    in -> out, scale = in/out, filterscale = max(scale, 1), support = 1 * filterscale;
//  * per output index o: center = (o + 0.5) * scale, xmin = max(trunc(center - support + 0.5), 0),
//    xmax = min(trunc(center + support + 0.5), in); w[x] = tri((x + xmin - center + 0.5) * (1/filterscale))
//    for the xmax - xmin taps, normalised by their float64 sum;
//  * weights to 22-bit fixed point: k = trunc(0.5 + w * 2^22) (w >= 0 for this filter);
//  * each pass computes clip8((2^21 + sum(pixel * k)) >> 22) per channel and stores uint8;
//  * the horizontal pass runs first, then the vertical one; a pass whose size does not change is
//    skipped (PIL's need_horizontal / need_vertical), which is the identity anyway.
// All sums fit in 31 bits (255 * 2^22 * (1 + tiny rounding)), so plain JS number arithmetic is exact.

import { GemmaError } from '../errors.js';
import { assertRgbImage, type RgbImage } from './image.js';

const PRECISION_BITS = 22;
const ONE = 1 << PRECISION_BITS;
const HALF = 1 << (PRECISION_BITS - 1);

/** Fixed-point coefficients for one axis: for output o, taps bounds[2o] .. bounds[2o] + bounds[2o+1] - 1. */
export interface AxisCoefficients {
  ksize: number;
  /** [xmin, count] per output index. */
  bounds: Int32Array;
  /** outSize * ksize fixed-point weights (22 fractional bits); unused slots are 0. */
  kk: Int32Array;
}

/** Pillow's precompute_coeffs + normalize_coeffs_8bpc for the BILINEAR filter (support 1). */
export function precomputeBilinearCoefficients(inSize: number, outSize: number): AxisCoefficients {
  const scale = inSize / outSize;
  const filterscale = scale < 1 ? 1 : scale;
  const support = 1.0 * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const ss = 1.0 / filterscale;
  const bounds = new Int32Array(outSize * 2);
  const kk = new Int32Array(outSize * ksize);
  const w = new Float64Array(ksize);
  for (let xx = 0; xx < outSize; xx++) {
    const center = 0 + (xx + 0.5) * scale;
    let xmin = Math.trunc(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    let xmax = Math.trunc(center + support + 0.5);
    if (xmax > inSize) xmax = inSize;
    xmax -= xmin;
    let ww = 0.0;
    for (let x = 0; x < xmax; x++) {
      let t = (x + xmin - center + 0.5) * ss;
      if (t < 0) t = -t;
      const v = t < 1.0 ? 1.0 - t : 0.0;
      w[x] = v;
      ww += v;
    }
    const base = xx * ksize;
    for (let x = 0; x < xmax; x++) {
      const v = ww !== 0.0 ? w[x]! / ww : w[x]!;
      kk[base + x] = v < 0 ? Math.trunc(-0.5 + v * ONE) : Math.trunc(0.5 + v * ONE);
    }
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = xmax;
  }
  return { ksize, bounds, kk };
}

function clip8(ss: number): number {
  const v = ss >> PRECISION_BITS;
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/** Horizontal pass over rows [y0, y0 + rows) of src (width inW) -> rows x outW. */
function resampleHorizontal(
  src: Uint8Array,
  inW: number,
  y0: number,
  rows: number,
  outW: number,
  c: AxisCoefficients,
): Uint8Array {
  const out = new Uint8Array(outW * rows * 3);
  const { ksize, bounds, kk } = c;
  let o = 0;
  for (let yy = 0; yy < rows; yy++) {
    const rowBase = (yy + y0) * inW * 3;
    for (let xx = 0; xx < outW; xx++) {
      const xmin = bounds[xx * 2]!;
      const n = bounds[xx * 2 + 1]!;
      const kb = xx * ksize;
      const end = kb + n;
      // int32 arithmetic (| 0): the sums stay below 2^31, see the header comment.
      let s0 = HALF | 0;
      let s1 = HALF | 0;
      let s2 = HALF | 0;
      let p = rowBase + xmin * 3;
      for (let j = kb; j < end; j++, p += 3) {
        const k = kk[j]!;
        s0 = (s0 + src[p]! * k) | 0;
        s1 = (s1 + src[p + 1]! * k) | 0;
        s2 = (s2 + src[p + 2]! * k) | 0;
      }
      out[o++] = clip8(s0);
      out[o++] = clip8(s1);
      out[o++] = clip8(s2);
    }
  }
  return out;
}

/** Vertical pass: src is (rows) x w, bounds already relative to src's first row -> outH x w. */
function resampleVertical(src: Uint8Array, w: number, outH: number, c: AxisCoefficients, rowShift: number): Uint8Array {
  const out = new Uint8Array(w * outH * 3);
  const { ksize, bounds, kk } = c;
  const stride = w * 3;
  const acc = new Int32Array(stride);
  for (let yy = 0; yy < outH; yy++) {
    const ymin = bounds[yy * 2]! - rowShift;
    const n = bounds[yy * 2 + 1]!;
    const kb = yy * ksize;
    acc.fill(HALF);
    for (let y = 0; y < n; y++) {
      const k = kk[kb + y]!;
      if (k === 0) continue;
      const rb = (ymin + y) * stride;
      for (let i = 0; i < stride; i++) acc[i] = (acc[i]! + src[rb + i]! * k) | 0;
    }
    const ob = yy * stride;
    for (let i = 0; i < stride; i++) out[ob + i] = clip8(acc[i]!);
  }
  return out;
}

/**
 * Resizes an 8-bit RGB image to `width` x `height` exactly as PIL's `Image.resize((width, height),
 * Image.BILINEAR)` does (antialiased convolution, 22-bit fixed point, uint8 after each pass).
 * Aspect ratio is not preserved. Returns a new image (a copy when the size is unchanged).
 */
export function resizeBilinearU8(img: RgbImage, width: number, height: number): RgbImage {
  assertRgbImage(img);
  if (!Number.isInteger(width) || !Number.isInteger(height) || width <= 0 || height <= 0) {
    throw new GemmaError('INVALID_ARGUMENT', `resize target must be positive integers, got ${String(width)}x${String(height)}`);
  }
  const needH = width !== img.width;
  const needV = height !== img.height;
  if (!needH && !needV) return { width, height, data: img.data.slice() };

  const vert = precomputeBilinearCoefficients(img.height, height);
  let data = img.data;
  let rowShift = 0;
  if (needH) {
    const horiz = precomputeBilinearCoefficients(img.width, width);
    // Only the source rows the vertical pass reads (PIL's ybox_first .. ybox_last).
    let y0 = 0;
    let y1 = img.height;
    if (needV) {
      y0 = vert.bounds[0]!;
      y1 = vert.bounds[(height - 1) * 2]! + vert.bounds[(height - 1) * 2 + 1]!;
      rowShift = y0;
    }
    data = resampleHorizontal(img.data, img.width, y0, y1 - y0, width, horiz);
  }
  if (needV) {
    data = resampleVertical(data, width, height, vert, rowShift);
  }
  return { width, height, data };
}
