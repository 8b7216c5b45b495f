// Image input: file paths, encoded bytes, data: URLs, http(s) URLs (opt-in) and raw pixels, decoded
// to 8-bit RGB the way the reference loader does (transformers `load_image`: PIL open,
// `ImageOps.exif_transpose`, `convert("RGB")`).
//
// Decoding uses sharp (libvips). Verified pixel-identical to Pillow 12.3 `exif_transpose(...).convert("RGB")`
// for: RGB/grey/CMYK JPEG (baseline, progressive, 4:2:0 and 4:4:4), PNG of modes RGB, RGBA, L, LA, P,
// P + tRNS, 1-bit, 16-bit RGB and 16-bit grey, WebP lossy/lossless/with alpha, GIF, TIFF RGB/CMYK,
// EXIF orientations, PNG/JPEG with (non-sRGB) ICC profiles. Rules, all PIL's:
//  * alpha is dropped, never composited (RGBA, LA, palette with transparency);
//  * embedded ICC profiles are ignored (PIL's convert does no colour management);
//  * CMYK -> RGB is Pillow's cmyk2rgb: nk = 255 - K, R = clip(nk - MULDIV255(C, nk)) etc., where
//    MULDIV255(a, b) = (t >> 8 + t) >> 8 with t = a * b + 128 (Adobe-inverted JPEGs are un-inverted
//    on load by both libraries);
//  * 16-bit grey (PIL mode I;16) -> RGB clamps: v > 255 becomes 255 (Pillow's I16_RGB), which turns
//    most of a real 16-bit grey image white, as in the reference; 16-bit RGB(A) and grey+alpha keep the
//    high byte (PIL reads them as RGB/RGBA/LA with rawmode ;16B);
//  * GIF: the first frame only;
//  * truncated or corrupt data is an error (BAD_FORMAT), as in PIL without LOAD_TRUNCATED_IMAGES;
//    decoder warnings PIL also ignores (e.g. stray bytes between JPEG markers) are tolerated.
// Known differences from Pillow: AVIF with 4:2:0 chroma is decoded by libheif with a different chroma
// upsampling than Pillow's libavif (differences of many levels at sharp colour edges; 4:4:4 AVIF agrees
// within 1 level); for a GIF whose first frame has transparent pixels libvips yields black there
// where PIL yields the palette colour of the transparent index; exotic TIFFs (float, Lab, >8-bit
// multi-band other than RGB) are converted to sRGB by libvips.
// Unsupported on purpose: SVG (PIL cannot open it, its raster size is arbitrary and it may reference
// external resources), PDF, HEIC, BMP, JPEG XL and anything else not listed in SUPPORTED_FORMATS.

import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { Metadata, Sharp, SharpOptions } from 'sharp';
import { GemmaError } from '../errors.js';
import { DEFAULT_MAX_PIXELS, checkPixelLimit, rgbFromRawPixels, type RawPixels, type RgbImage } from './image.js';

export type ImageInput = string | Uint8Array | ArrayBuffer | RgbImage | RawPixels;

export interface DecodeImageOptions {
  /** Allow http:// and https:// URLs (default false: they are refused with INVALID_ARGUMENT). */
  allowRemote?: boolean;
  /** Largest width*height accepted, checked from the header before any pixel is decoded (default 100e6). */
  maxPixels?: number;
  /** Timeout of a remote fetch, in milliseconds (default 30000). */
  fetchTimeoutMs?: number;
  /** Largest encoded size accepted from a remote URL or a data: URL, in bytes (default 64 MiB). */
  maxBytes?: number;
  /** Aborts a remote fetch (ABORTED). */
  signal?: AbortSignal;
}

export const SUPPORTED_FORMATS = ['jpeg', 'png', 'webp', 'gif', 'avif', 'tiff'] as const;
export type SupportedFormat = (typeof SUPPORTED_FORMATS)[number];

const DEFAULT_FETCH_TIMEOUT_MS = 30_000;
const DEFAULT_MAX_BYTES = 64 * 1024 * 1024;
const SUPPORTED_LIST = 'JPEG, PNG, WebP, GIF, AVIF or TIFF';

type SharpFactory = (input?: Buffer | Uint8Array | string, options?: SharpOptions) => Sharp;
let sharpLoader: Promise<SharpFactory> | undefined;

/** Loads sharp on first use, so text-only use of the library never loads libvips. */
export function loadSharp(): Promise<SharpFactory> {
  sharpLoader ??= import('sharp').then(
    (m) => m.default as unknown as SharpFactory,
    (e: unknown) => {
      sharpLoader = undefined;
      throw new GemmaError(
        'NATIVE_UNAVAILABLE',
        `image decoding needs the 'sharp' package, which could not be loaded: ${(e as Error)?.message ?? String(e)}`,
        { cause: e },
      );
    },
  );
  return sharpLoader;
}

/**
 * Decodes an image to 8-bit RGB (HWC). `input` is one of:
 *  - a file path (or `file:` URL);
 *  - a `data:[<type>][;base64],<data>` URL;
 *  - an `http(s)://` URL, only with `allowRemote: true` (fetched with a timeout and a byte limit);
 *  - a Uint8Array / Buffer / ArrayBuffer holding an encoded JPEG, PNG, WebP, GIF, AVIF or TIFF file;
 *  - raw pixels `{ data, width, height, channels? }` (1, 2, 3 or 4 channels; an RgbImage is returned
 *    as is).
 * EXIF orientation is applied. Errors (GemmaError): FILE_NOT_FOUND (missing file, HTTP 404/410),
 * BAD_FORMAT (empty, corrupt, truncated or unsupported data), INVALID_ARGUMENT (bad input or options,
 * remote URL without allowRemote, image over maxPixels, download over maxBytes or timed out),
 * ABORTED (signal), NATIVE_UNAVAILABLE (sharp cannot load).
 */
export async function decodeImage(input: ImageInput, options: DecodeImageOptions = {}): Promise<RgbImage> {
  const maxPixels = options.maxPixels ?? DEFAULT_MAX_PIXELS;
  if (typeof maxPixels !== 'number' || Number.isNaN(maxPixels) || maxPixels <= 0) {
    throw new GemmaError('INVALID_ARGUMENT', `maxPixels must be a positive number, got ${String(maxPixels)}`);
  }
  if (typeof input === 'string') {
    return decodeString(input, options, maxPixels);
  }
  if (input instanceof Uint8Array) {
    return decodeEncoded(input, 'image buffer', maxPixels);
  }
  if (input instanceof ArrayBuffer) {
    return decodeEncoded(new Uint8Array(input), 'image buffer', maxPixels);
  }
  if (input !== null && typeof input === 'object' && 'data' in input && 'width' in input && 'height' in input) {
    return rgbFromRawPixels(input as RawPixels, maxPixels);
  }
  throw new GemmaError(
    'INVALID_ARGUMENT',
    `image must be a file path, a data: or http(s) URL, a Uint8Array of an encoded image or raw pixels {data, width, height, channels}, got ${
      input === null ? 'null' : Array.isArray(input) ? 'an array' : typeof input
    }`,
  );
}

async function decodeString(s: string, options: DecodeImageOptions, maxPixels: number): Promise<RgbImage> {
  if (s.length === 0) throw new GemmaError('INVALID_ARGUMENT', 'image path must not be empty');
  const lower = s.slice(0, 12).toLowerCase();
  if (lower.startsWith('data:')) {
    const bytes = parseDataUrl(s, options.maxBytes ?? DEFAULT_MAX_BYTES);
    return decodeEncoded(bytes, 'data: URL image', maxPixels);
  }
  if (lower.startsWith('http://') || lower.startsWith('https://')) {
    if (!options.allowRemote) {
      throw new GemmaError(
        'INVALID_ARGUMENT',
        `remote images are disabled: refusing to fetch ${shortUrl(s)} (pass allowRemote: true to enable, or give a local path, a data: URL or bytes)`,
      );
    }
    const bytes = await fetchBytes(s, options);
    return decodeEncoded(bytes, shortUrl(s), maxPixels);
  }
  let path = s;
  if (lower.startsWith('file:')) {
    try {
      path = fileURLToPath(s);
    } catch (e) {
      throw new GemmaError('INVALID_ARGUMENT', `invalid file URL ${shortUrl(s)}: ${(e as Error).message}`, { cause: e });
    }
  } else if (/^[a-z][a-z0-9+.-]*:\/\//i.test(s)) {
    throw new GemmaError('INVALID_ARGUMENT', `unsupported URL scheme in ${shortUrl(s)}: use a file path, file:, data:, http: or https:`);
  }
  let bytes: Uint8Array;
  try {
    // Read it ourselves: lets us sniff the format, and avoids libvips' file-name-keyed cache.
    bytes = await readFile(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      throw new GemmaError('FILE_NOT_FOUND', `image file not found: ${path}`, { cause: e });
    }
    if (code === 'EISDIR') throw new GemmaError('INVALID_ARGUMENT', `image path is a directory, not a file: ${path}`, { cause: e });
    throw new GemmaError('INVALID_ARGUMENT', `cannot read image file ${path}: ${(e as Error).message}`, { cause: e });
  }
  return decodeEncoded(bytes, path, maxPixels);
}

function shortUrl(u: string): string {
  return u.length > 100 ? `${u.slice(0, 97)}...` : u;
}

/** Parses a data: URL (RFC 2397), base64 or percent-encoded; the media type is not trusted. */
export function parseDataUrl(url: string, maxBytes = DEFAULT_MAX_BYTES): Uint8Array {
  const comma = url.indexOf(',');
  if (comma < 0) throw new GemmaError('INVALID_ARGUMENT', 'malformed data: URL (no comma before the data)');
  const meta = url.slice(5, comma);
  const payload = url.slice(comma + 1);
  const isBase64 = /;base64$/i.test(meta.trim());
  if (isBase64) {
    const b64 = payload.replace(/\s+/g, '').replace(/%3D/gi, '=');
    if (!/^[A-Za-z0-9+/\-_]*={0,2}$/.test(b64) || b64.replace(/=+$/, '').length % 4 === 1) {
      throw new GemmaError('INVALID_ARGUMENT', 'malformed data: URL (the base64 payload has invalid characters or length)');
    }
    if (Math.floor((b64.length * 3) / 4) > maxBytes + 3) {
      throw new GemmaError('INVALID_ARGUMENT', `data: URL image is larger than maxBytes=${maxBytes}`);
    }
    return new Uint8Array(Buffer.from(b64, 'base64'));
  }
  const out: number[] = [];
  for (let i = 0; i < payload.length; i++) {
    const ch = payload.charCodeAt(i);
    if (ch === 0x25 /* % */ && i + 2 < payload.length && /^[0-9a-f]{2}$/i.test(payload.slice(i + 1, i + 3))) {
      out.push(parseInt(payload.slice(i + 1, i + 3), 16));
      i += 2;
    } else if (ch < 0x80) {
      out.push(ch);
    } else {
      const cp = payload.codePointAt(i)!;
      if (cp > 0xffff) i++;
      for (const b of Buffer.from(String.fromCodePoint(cp), 'utf8')) out.push(b);
    }
    if (out.length > maxBytes) throw new GemmaError('INVALID_ARGUMENT', `data: URL image is larger than maxBytes=${maxBytes}`);
  }
  return Uint8Array.from(out);
}

async function fetchBytes(url: string, options: DecodeImageOptions): Promise<Uint8Array> {
  const timeoutMs = options.fetchTimeoutMs ?? DEFAULT_FETCH_TIMEOUT_MS;
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
  if (!(timeoutMs > 0)) throw new GemmaError('INVALID_ARGUMENT', `fetchTimeoutMs must be a positive number, got ${String(timeoutMs)}`);
  if (!(maxBytes > 0)) throw new GemmaError('INVALID_ARGUMENT', `maxBytes must be a positive number, got ${String(maxBytes)}`);
  if (options.signal?.aborted) throw new GemmaError('ABORTED', `fetch of ${shortUrl(url)} aborted`);
  const timeout = AbortSignal.timeout(timeoutMs);
  const signal = options.signal ? anySignal([timeout, options.signal]) : timeout;
  const fail = (e: unknown): never => {
    if (options.signal?.aborted) throw new GemmaError('ABORTED', `fetch of ${shortUrl(url)} aborted`, { cause: e });
    if (timeout.aborted) {
      throw new GemmaError('INVALID_ARGUMENT', `fetching ${shortUrl(url)} timed out after ${timeoutMs} ms`, { cause: e });
    }
    if (e instanceof GemmaError) throw e;
    throw new GemmaError('INVALID_ARGUMENT', `fetching ${shortUrl(url)} failed: ${(e as Error)?.message ?? String(e)}`, { cause: e });
  };
  let res: Response;
  try {
    res = await fetch(url, { signal, redirect: 'follow' });
  } catch (e) {
    return fail(e);
  }
  if (!res.ok) {
    await res.body?.cancel().catch(() => {});
    const code = res.status === 404 || res.status === 410 ? 'FILE_NOT_FOUND' : 'INVALID_ARGUMENT';
    throw new GemmaError(code, `fetching ${shortUrl(url)} failed: HTTP ${res.status} ${res.statusText}`.trimEnd());
  }
  const declared = Number(res.headers.get('content-length') ?? NaN);
  if (Number.isFinite(declared) && declared > maxBytes) {
    await res.body?.cancel().catch(() => {});
    throw new GemmaError('INVALID_ARGUMENT', `remote image ${shortUrl(url)} is ${declared} bytes, over maxBytes=${maxBytes}`);
  }
  if (!res.body) return new Uint8Array(0);
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.length;
      if (total > maxBytes) {
        await reader.cancel().catch(() => {});
        throw new GemmaError('INVALID_ARGUMENT', `remote image ${shortUrl(url)} is larger than maxBytes=${maxBytes}`);
      }
      chunks.push(value);
    }
  } catch (e) {
    return fail(e);
  }
  const out = new Uint8Array(total);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.length;
  }
  return out;
}

function anySignal(signals: AbortSignal[]): AbortSignal {
  const any = (AbortSignal as unknown as { any?: (s: AbortSignal[]) => AbortSignal }).any;
  if (any) return any(signals);
  const ctrl = new AbortController();
  for (const s of signals) {
    if (s.aborted) {
      ctrl.abort(s.reason);
      break;
    }
    s.addEventListener('abort', () => ctrl.abort(s.reason), { once: true });
  }
  return ctrl.signal;
}

function ascii(b: Uint8Array, start: number, len: number): string {
  let s = '';
  for (let i = start; i < start + len && i < b.length; i++) s += String.fromCharCode(b[i]!);
  return s;
}

/** Identifies the container from its magic bytes; returns a supported format or throws BAD_FORMAT. */
export function sniffImageFormat(b: Uint8Array, label = 'image'): SupportedFormat {
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return 'jpeg';
  if (b.length >= 8 && ascii(b, 0, 8) === '\x89PNG\r\n\x1a\n') return 'png';
  if (b.length >= 6 && (ascii(b, 0, 6) === 'GIF87a' || ascii(b, 0, 6) === 'GIF89a')) return 'gif';
  if (b.length >= 12 && ascii(b, 0, 4) === 'RIFF' && ascii(b, 8, 4) === 'WEBP') return 'webp';
  if (b.length >= 4) {
    const h = ascii(b, 0, 4);
    if (h === 'II*\0' || h === 'MM\0*' || h === 'II+\0' || h === 'MM\0+') return 'tiff';
  }
  if (b.length >= 12 && ascii(b, 4, 4) === 'ftyp') {
    const boxLen = Math.min(b.length, ((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0 || 12);
    const brands: string[] = [ascii(b, 8, 4)];
    for (let o = 16; o + 4 <= boxLen; o += 4) brands.push(ascii(b, o, 4));
    if (brands.includes('avif') || brands.includes('avis')) return 'avif';
    if (brands.some((x) => ['heic', 'heix', 'hevc', 'hevx', 'heim', 'heis'].includes(x))) {
      throw new GemmaError('BAD_FORMAT', `${label}: HEIC/HEIF (HEVC) images are not supported; convert to ${SUPPORTED_LIST}`);
    }
    if (brands.includes('mif1') || brands.includes('msf1')) return 'avif'; // decided by the decoder below
    throw new GemmaError('BAD_FORMAT', `${label}: unsupported ISO media file (brand ${JSON.stringify(brands[0])}); expected ${SUPPORTED_LIST}`);
  }
  throw new GemmaError('BAD_FORMAT', `${label}: ${describeUnknown(b)}; supported formats are ${SUPPORTED_LIST}`);
}

function describeUnknown(b: Uint8Array): string {
  const head = ascii(b, 0, 16);
  if (head.startsWith('BM')) return 'BMP images are not supported';
  if (head.startsWith('%PDF')) return 'PDF documents are not supported';
  if (head.startsWith('8BPS')) return 'Photoshop (PSD) files are not supported';
  if ((b[0] === 0xff && b[1] === 0x0a) || ascii(b, 4, 4) === 'JXL ') return 'JPEG XL images are not supported';
  if (ascii(b, 4, 8) === 'jP  \r\n\x87\n' || (b[0] === 0xff && b[1] === 0x4f && b[2] === 0xff && b[3] === 0x51)) {
    return 'JPEG 2000 images are not supported';
  }
  if (b[0] === 0x1f && b[1] === 0x8b) return 'gzip data (e.g. SVGZ) is not an image format we support';
  const text = Buffer.from(b.subarray(0, 512)).toString('utf8').replace(/^\uFEFF/, '').trimStart();
  if (text.startsWith('<')) {
    return /<svg[\s>]/i.test(Buffer.from(b.subarray(0, 4096)).toString('utf8'))
      ? 'SVG images are not supported (rasterise them first)'
      : 'the data looks like XML/HTML text, not an image';
  }
  let printable = 0;
  const n = Math.min(b.length, 512);
  for (let i = 0; i < n; i++) {
    const c = b[i]!;
    if (c === 9 || c === 10 || c === 13 || (c >= 32 && c < 127)) printable++;
  }
  if (n > 0 && printable === n) return 'the data is plain text, not an image';
  return 'unrecognised image format';
}

/** libvips repeats itself across lines; keep the distinct lines, joined, at most ~300 characters. */
function compactMessage(msg: string): string {
  const lines = [...new Set(msg.split('\n').map((l) => l.trim()).filter((l) => l.length > 0 && !/^source: bad seek/.test(l)))];
  const s = lines.join('; ');
  return s.length > 300 ? `${s.slice(0, 297)}...` : s;
}

function sharpError(e: unknown, label: string, stage: string): GemmaError {
  const msg = compactMessage((e as Error)?.message ?? String(e));
  if (/pixel limit/i.test(msg)) {
    return new GemmaError('INVALID_ARGUMENT', `${label}: image is over the pixel limit (${msg})`, { cause: e });
  }
  const truncated = /truncat|premature end|unexpected end|end of (file|stream|data)|not enough data|short read|read error/i.test(msg);
  return new GemmaError(
    'BAD_FORMAT',
    `${label}: ${truncated ? 'the image data is truncated' : 'the image data is corrupt or cannot be decoded'} (${stage}: ${msg})`,
    { cause: e },
  );
}

function muldiv255(a: number, b: number): number {
  const t = a * b + 128;
  return ((t >> 8) + t) >> 8;
}

/**
 * A lower bound on the size of a file whose header declares its dimensions, where the format
 * allows a rigorous one (0 otherwise): a PNG's pixel rows through deflate, which packs at most
 * 1032 bytes into one; a Huffman-coded JPEG (SOF0/1/2; arithmetic coding has no such bound)
 * spends at least one bit (a DC code) on each 8x8 block of its full-resolution component.
 */
export function leastEncodedBytes(format: SupportedFormat, b: Uint8Array): number {
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  if (format === 'png') {
    if (b.length < 26 || ascii(b, 12, 4) !== 'IHDR') return 0;
    const width = view.getUint32(16);
    const height = view.getUint32(20);
    const depth = b[24]!;
    const channels = ({ 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 } as Record<number, number>)[b[25]!] ?? 1;
    const rowBytes = 1 + Math.ceil((width * channels * depth) / 8);
    return Math.floor((height * rowBytes) / 1032);
  }
  if (format === 'jpeg') {
    for (let at = 2; at + 9 < b.length && b[at] === 0xff;) {
      const marker = b[at + 1]!;
      if (marker === 0xda) break; // start of scan: no frame header before it
      if (marker === 0xc0 || marker === 0xc1 || marker === 0xc2) {
        const height = view.getUint16(at + 5);
        const width = view.getUint16(at + 7);
        return Math.floor((Math.ceil(width / 8) * Math.ceil(height / 8)) / 8);
      }
      at += 2 + view.getUint16(at + 2);
    }
  }
  return 0;
}

/** Decodes encoded bytes (any supported format) to RGB, following PIL's conversion rules. */
async function decodeEncoded(bytes: Uint8Array, label: string, maxPixels: number): Promise<RgbImage> {
  if (bytes.length === 0) throw new GemmaError('BAD_FORMAT', `${label}: the image data is empty (0 bytes)`);
  const format = sniffImageFormat(bytes, label);
  const sharp = await loadSharp();
  const input = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  const opts: SharpOptions = {
    // The header check below is the real limit; this one also guards the decoder itself.
    limitInputPixels: Number.isFinite(maxPixels) ? Math.max(1, Math.floor(maxPixels)) : false,
    ignoreIcc: true,
    // 'error' also stops on truncated data and decoder errors; mere warnings (e.g. stray bytes
    // between JPEG markers, which PIL also accepts) are tolerated.
    failOn: 'error',
    autoOrient: true,
    pages: 1,
    page: 0,
  };

  let meta: Metadata;
  try {
    // Header only; the size is checked below with a message that names it.
    meta = await sharp(input, { ...opts, limitInputPixels: false }).metadata();
  } catch (e) {
    throw sharpError(e, label, `reading the ${format} header`);
  }
  const actual = meta.format as string;
  const expected = format === 'avif' ? 'heif' : format;
  if (actual !== expected) {
    throw new GemmaError('BAD_FORMAT', `${label}: looks like ${format} but decodes as ${actual}; supported formats are ${SUPPORTED_LIST}`);
  }
  if (format === 'avif' && meta.compression !== 'av1') {
    throw new GemmaError(
      'BAD_FORMAT',
      `${label}: HEIF images with ${meta.compression ?? 'unknown'} compression are not supported (only AVIF); convert to ${SUPPORTED_LIST}`,
    );
  }
  const w = meta.width ?? 0;
  const h = meta.height ?? 0;
  if (!(w > 0 && h > 0)) throw new GemmaError('BAD_FORMAT', `${label}: the image has zero size (${w}x${h})`);
  checkPixelLimit(w, h, maxPixels, label);
  const least = leastEncodedBytes(format, bytes);
  if (bytes.length < least) {
    // libjpeg fills what a short JPEG lacks with grey and only warns: a 2 KB file whose header says
    // 9000x9000 would decode to 243 MB of nothing (780 MB at the peak).
    throw new GemmaError('BAD_FORMAT',
      `${label}: the image data is truncated or corrupt: a ${w}x${h} ${format.toUpperCase()} takes at least ${least} bytes, this one has ${bytes.length}`);
  }

  const space = meta.space as string | undefined;
  try {
    if (space === 'cmyk') {
      // Raw CMYK (no ICC transform), then Pillow's naive cmyk2rgb.
      const { data, info } = await sharp(input, opts)
        .pipelineColourspace('cmyk')
        .toColourspace('cmyk')
        .raw()
        .toBuffer({ resolveWithObject: true });
      const n = info.width * info.height;
      const ch = info.channels;
      if (ch < 4 || data.length !== n * ch) throw new Error(`unexpected CMYK raw layout: ${ch} channels`);
      const out = new Uint8Array(n * 3);
      for (let i = 0, s = 0, o = 0; i < n; i++, s += ch, o += 3) {
        const nk = 255 - data[s + 3]!;
        out[o] = Math.max(0, nk - muldiv255(data[s]!, nk));
        out[o + 1] = Math.max(0, nk - muldiv255(data[s + 1]!, nk));
        out[o + 2] = Math.max(0, nk - muldiv255(data[s + 2]!, nk));
      }
      return { width: info.width, height: info.height, data: out };
    }
    if (space === 'grey16' && !meta.hasAlpha) {
      // PIL mode I;16 -> RGB saturates at 255 (Pillow's I16_RGB).
      const { data, info } = await sharp(input, opts)
        .toColourspace('grey16')
        .raw({ depth: 'ushort' })
        .toBuffer({ resolveWithObject: true });
      const n = info.width * info.height;
      const ch = info.channels;
      if (data.length !== n * ch * 2) throw new Error(`unexpected 16-bit raw layout: ${ch} channels, ${data.length} bytes`);
      const u16 = new Uint16Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.length));
      const out = new Uint8Array(n * 3);
      for (let i = 0, o = 0; i < n; i++, o += 3) {
        const v = u16[i * ch]!;
        const b = v > 255 ? 255 : v;
        out[o] = b;
        out[o + 1] = b;
        out[o + 2] = b;
      }
      return { width: info.width, height: info.height, data: out };
    }
    const { data, info } = await sharp(input, opts)
      .removeAlpha()
      .toColourspace('srgb')
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3 || data.length !== info.width * info.height * 3) {
      throw new Error(`unexpected raw layout: ${info.channels} channels, ${data.length} bytes for ${info.width}x${info.height}`);
    }
    return { width: info.width, height: info.height, data: new Uint8Array(data.buffer, data.byteOffset, data.length) };
  } catch (e) {
    if (e instanceof GemmaError) throw e;
    throw sharpError(e, label, `decoding the ${format} pixels`);
  }
}
