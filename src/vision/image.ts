// The in-memory picture type of the vision path, and small pixel helpers shared by decoding,
// pan-and-scan and preprocessing.

import { GemmaError } from '../errors.js';

/** An 8-bit RGB picture, row-major, channels interleaved (HWC: `data[(y * width + x) * 3 + c]`). */
export interface RgbImage {
  width: number;
  height: number;
  data: Uint8Array;
}

/**
 * Raw pixels supplied by a caller: row-major, interleaved, 8 bits per channel. `channels` (default 3)
 * is 1 (grey), 2 (grey + alpha), 3 (RGB) or 4 (RGBA); the conversion to RGB is PIL's
 * `convert("RGB")`: grey is replicated, alpha is dropped (not composited).
 */
export interface RawPixels {
  data: Uint8Array | Uint8ClampedArray;
  width: number;
  height: number;
  channels?: number;
}

/** The default pixel limit of `decodeImage` (100 megapixels). */
export const DEFAULT_MAX_PIXELS = 100_000_000;

function isPositiveInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v > 0;
}

/** Throws INVALID_ARGUMENT unless `img` is a well-formed RgbImage (`what` names it in the message). */
export function assertRgbImage(img: RgbImage, what = 'image'): void {
  if (img == null || typeof img !== 'object') {
    throw new GemmaError('INVALID_ARGUMENT', `${what} must be an RgbImage {width, height, data}, got ${img === null ? 'null' : typeof img}`);
  }
  if (!isPositiveInt(img.width) || !isPositiveInt(img.height)) {
    throw new GemmaError(
      'INVALID_ARGUMENT',
      `${what} must have a positive integer width and height, got ${String(img.width)}x${String(img.height)} (zero-sized images cannot be processed)`,
    );
  }
  if (!(img.data instanceof Uint8Array)) {
    throw new GemmaError('INVALID_ARGUMENT', `${what}.data must be a Uint8Array of RGB bytes`);
  }
  const want = img.width * img.height * 3;
  if (img.data.length !== want) {
    throw new GemmaError(
      'INVALID_ARGUMENT',
      `${what}.data has ${img.data.length} bytes, expected width*height*3 = ${img.width}*${img.height}*3 = ${want}`,
    );
  }
}

/**
 * Converts raw pixels to an RgbImage the way PIL's `convert("RGB")` does (L/LA: grey replicated,
 * LA/RGBA: alpha dropped). A 3-channel `Uint8Array` is used as is (not copied).
 */
export function rgbFromRawPixels(raw: RawPixels, maxPixels = DEFAULT_MAX_PIXELS): RgbImage {
  const { width, height } = raw;
  const channels = raw.channels ?? 3;
  if (!isPositiveInt(width) || !isPositiveInt(height)) {
    throw new GemmaError(
      'INVALID_ARGUMENT',
      `raw image width and height must be positive integers, got ${String(width)}x${String(height)} (zero-sized images cannot be processed)`,
    );
  }
  if (channels !== 1 && channels !== 2 && channels !== 3 && channels !== 4) {
    throw new GemmaError('INVALID_ARGUMENT', `raw image channels must be 1, 2, 3 or 4, got ${String(channels)}`);
  }
  if (!(raw.data instanceof Uint8Array || raw.data instanceof Uint8ClampedArray)) {
    throw new GemmaError('INVALID_ARGUMENT', 'raw image data must be a Uint8Array (or Uint8ClampedArray) of 8-bit samples');
  }
  checkPixelLimit(width, height, maxPixels, 'raw image');
  const n = width * height;
  if (raw.data.length !== n * channels) {
    throw new GemmaError(
      'INVALID_ARGUMENT',
      `raw image data has ${raw.data.length} bytes, expected width*height*channels = ${width}*${height}*${channels} = ${n * channels}`,
    );
  }
  const src = raw.data;
  if (channels === 3) {
    const data = src instanceof Uint8Array ? src : new Uint8Array(src.buffer, src.byteOffset, src.length).slice();
    return { width, height, data };
  }
  const data = new Uint8Array(n * 3);
  if (channels === 1 || channels === 2) {
    for (let i = 0, j = 0; i < n; i++, j += 3) {
      const v = src[i * channels]!;
      data[j] = v;
      data[j + 1] = v;
      data[j + 2] = v;
    }
  } else {
    for (let i = 0, s = 0, j = 0; i < n; i++, s += 4, j += 3) {
      data[j] = src[s]!;
      data[j + 1] = src[s + 1]!;
      data[j + 2] = src[s + 2]!;
    }
  }
  return { width, height, data };
}

/** Throws INVALID_ARGUMENT when width*height exceeds `maxPixels`. */
export function checkPixelLimit(width: number, height: number, maxPixels: number, what: string): void {
  const n = width * height;
  if (n > maxPixels) {
    throw new GemmaError(
      'INVALID_ARGUMENT',
      `${what} is ${width}x${height} = ${n} pixels, over the limit of ${maxPixels} (raise the maxPixels option to allow it)`,
    );
  }
}

/** Copies the rectangle [x, x+w) x [y, y+h) of `img` (must lie inside it) into a new RgbImage. */
export function cropRgb(img: RgbImage, x: number, y: number, w: number, h: number): RgbImage {
  const out = new Uint8Array(w * h * 3);
  const rowBytes = w * 3;
  for (let r = 0; r < h; r++) {
    const s = ((y + r) * img.width + x) * 3;
    out.set(img.data.subarray(s, s + rowBytes), r * rowBytes);
  }
  return { width: w, height: h, data: out };
}
