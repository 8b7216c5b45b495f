// Gemma3ImageProcessor (transformers, PIL backend) on decoded RGB pictures:
//   [pan-and-scan crops] -> PIL BILINEAR resize to size (uint8) -> f32(u8 * rescale_factor in float64)
//   -> (x - mean) / std in float32 -> channels-first float32 [N, 3, H, W], original first.
// Plus loadPreprocessorConfig for preprocessor_config.json / processor_config.json.

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { GemmaError } from '../errors.js';
import { assertRgbImage, type RgbImage } from './image.js';
import { panAndScan, PAN_AND_SCAN_DEFAULTS, resolvePanAndScanOptions, type PanAndScanOptions } from './pan-and-scan.js';
import { resizeBilinearU8 } from './resize.js';

export interface PreprocessConfig {
  /** Target size of every picture (the real checkpoints: 896 x 896). */
  size: { height: number; width: number };
  /** Multiplier applied to the uint8 values, in float64 (1/255). */
  rescaleFactor: number;
  /** Per-channel mean and std (R, G, B), applied in float32. */
  imageMean: readonly number[];
  imageStd: readonly number[];
  /** Whether to add pan-and-scan crops (the processor default is false). */
  doPanAndScan: boolean;
  panAndScan?: PanAndScanOptions;
  /** Default true. When false, pixel values are the plain uint8 values as float32. */
  doRescale?: boolean;
  /** Default true. */
  doNormalize?: boolean;
}

/** A processor configuration as read from a checkpoint folder, every default filled in. */
export interface PreprocessorConfig extends PreprocessConfig {
  imageMean: [number, number, number];
  imageStd: [number, number, number];
  panAndScan: Required<PanAndScanOptions>;
  doRescale: boolean;
  doNormalize: boolean;
  /** do_convert_rgb (always applied by decodeImage; recorded for completeness). */
  doConvertRgb: boolean;
  /** Soft tokens per picture (image_seq_length; 256 for the real models). */
  imageSeqLength: number;
}

export interface PreprocessResult {
  /** Float32 [1 + numCrops, 3, size.height, size.width], channels-first; the original picture first. */
  pixelValues: Float32Array;
  /** Number of pan-and-scan crops (0 when not activated or disabled). */
  numCrops: number;
  /** The uint8 pictures right after the resize (original first, then crops), for inspection. */
  resized: RgbImage[];
  /** Size (width x height) of each picture before resizing, original first. */
  sourceSizes: { width: number; height: number }[];
}

/** The processor configuration of google/gemma-3-{4b,12b,27b}-it (used when a folder has none). */
export function defaultPreprocessorConfig(): PreprocessorConfig {
  return {
    size: { height: 896, width: 896 },
    rescaleFactor: 0.00392156862745098,
    imageMean: [0.5, 0.5, 0.5],
    imageStd: [0.5, 0.5, 0.5],
    doPanAndScan: false,
    panAndScan: { ...PAN_AND_SCAN_DEFAULTS },
    doRescale: true,
    doNormalize: true,
    doConvertRgb: true,
    imageSeqLength: 256,
  };
}

function channelTriple(v: readonly number[] | number, name: string): [number, number, number] {
  const arr = typeof v === 'number' ? [v, v, v] : v;
  if (!Array.isArray(arr) || arr.length !== 3 || !arr.every((x) => typeof x === 'number' && Number.isFinite(x))) {
    throw new GemmaError('INVALID_ARGUMENT', `${name} must be a number or 3 finite numbers (R, G, B), got ${JSON.stringify(v)}`);
  }
  return [arr[0]!, arr[1]!, arr[2]!];
}

function checkSize(size: { height: number; width: number } | undefined): void {
  if (
    size == null ||
    !Number.isInteger(size.height) ||
    !Number.isInteger(size.width) ||
    size.height <= 0 ||
    size.width <= 0
  ) {
    throw new GemmaError('INVALID_ARGUMENT', `size must be {height, width} with positive integers, got ${JSON.stringify(size)}`);
  }
}

/**
 * Per-channel lookup table uint8 -> float32 pixel value, computed exactly as the reference:
 * rescale `f32(u * rescaleFactor)` (the product in float64), then `f32(f32(x - mean) / std)` with
 * mean and std as float32 (numpy casts them to the image's float32 dtype).
 */
function valueTables(cfg: PreprocessConfig): Float32Array[] {
  const mean = channelTriple(cfg.imageMean, 'imageMean');
  const std = channelTriple(cfg.imageStd, 'imageStd');
  const doRescale = cfg.doRescale ?? true;
  const doNormalize = cfg.doNormalize ?? true;
  if (doRescale && (typeof cfg.rescaleFactor !== 'number' || !Number.isFinite(cfg.rescaleFactor))) {
    throw new GemmaError('INVALID_ARGUMENT', `rescaleFactor must be a finite number, got ${String(cfg.rescaleFactor)}`);
  }
  const tables: Float32Array[] = [];
  for (let c = 0; c < 3; c++) {
    const t = new Float32Array(256);
    const m = Math.fround(mean[c]!);
    const s = Math.fround(std[c]!);
    for (let u = 0; u < 256; u++) {
      let x = doRescale ? Math.fround(u * cfg.rescaleFactor) : u;
      if (doNormalize) x = Math.fround(Math.fround(x - m) / s);
      t[u] = x;
    }
    tables.push(t);
  }
  return tables;
}

/**
 * Gemma3ImageProcessor.preprocess for one decoded (RGB) image: optional pan-and-scan crops cut from
 * the original, each picture resized with PIL BILINEAR to `size`, rescaled and normalised, laid out
 * channels-first. Matches the transformers PIL path bit for bit.
 */
export function preprocessImage(img: RgbImage, config: PreprocessConfig): PreprocessResult {
  assertRgbImage(img);
  checkSize(config.size);
  const tables = valueTables(config);
  const crops = config.doPanAndScan ? panAndScan(img, resolvePanAndScanOptions(config.panAndScan)) : [];
  const pictures = [img, ...crops];
  const { height: H, width: W } = config.size;
  const plane = H * W;
  const pixelValues = new Float32Array(pictures.length * 3 * plane);
  const resized: RgbImage[] = [];
  const [t0, t1, t2] = tables as [Float32Array, Float32Array, Float32Array];
  pictures.forEach((pic, i) => {
    const r = resizeBilinearU8(pic, W, H);
    resized.push(r);
    const d = r.data;
    const b0 = i * 3 * plane;
    const b1 = b0 + plane;
    const b2 = b1 + plane;
    for (let p = 0, s = 0; p < plane; p++, s += 3) {
      pixelValues[b0 + p] = t0[d[s]!]!;
      pixelValues[b1 + p] = t1[d[s + 1]!]!;
      pixelValues[b2 + p] = t2[d[s + 2]!]!;
    }
  });
  return {
    pixelValues,
    numCrops: crops.length,
    resized,
    sourceSizes: pictures.map((p) => ({ width: p.width, height: p.height })),
  };
}

/** Several images in one batch: pixel values concatenated in order, one numCrops entry per image. */
export function preprocessImages(
  images: readonly RgbImage[],
  config: PreprocessConfig,
): { pixelValues: Float32Array; numCrops: number[]; numPictures: number } {
  const parts = images.map((im) => preprocessImage(im, config));
  const total = parts.reduce((a, p) => a + p.pixelValues.length, 0);
  const pixelValues = new Float32Array(total);
  let off = 0;
  for (const p of parts) {
    pixelValues.set(p.pixelValues, off);
    off += p.pixelValues.length;
  }
  return { pixelValues, numCrops: parts.map((p) => p.numCrops), numPictures: parts.reduce((a, p) => a + 1 + p.numCrops, 0) };
}

async function readJsonIfExists(path: string): Promise<Record<string, unknown> | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw new GemmaError('FILE_NOT_FOUND', `cannot read ${path}: ${(e as Error).message}`, { cause: e });
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new GemmaError('BAD_FORMAT', `${path} is not valid JSON: ${(e as Error).message}`, { cause: e });
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) {
    throw new GemmaError('BAD_FORMAT', `${path} must contain a JSON object`);
  }
  return v as Record<string, unknown>;
}

/**
 * Reads `dir/preprocessor_config.json` (and `dir/processor_config.json`, whose `image_processor`
 * section is used when the former is missing, and whose `image_seq_length` is a fallback).
 * `null` or absent keys take the Gemma3ImageProcessor/Gemma3Processor defaults: do_convert_rgb true,
 * do_pan_and_scan false, min crop 256, max crops 4, min ratio 1.2. With neither file, the result is
 * the real 4B configuration (896x896, 1/255, mean = std = 0.5).
 * Throws BAD_FORMAT for malformed JSON or values, UNSUPPORTED_MODEL for settings this engine does
 * not implement (a resample filter other than BILINEAR, do_resize false).
 */
export async function loadPreprocessorConfig(dir: string): Promise<PreprocessorConfig> {
  const prePath = join(dir, 'preprocessor_config.json');
  const procPath = join(dir, 'processor_config.json');
  const pre = await readJsonIfExists(prePath);
  const proc = await readJsonIfExists(procPath);
  const out = defaultPreprocessorConfig();
  let src: Record<string, unknown> | undefined = pre;
  let srcPath = prePath;
  if (!src && proc && proc['image_processor'] && typeof proc['image_processor'] === 'object') {
    src = proc['image_processor'] as Record<string, unknown>;
    srcPath = `${procPath} (image_processor)`;
  }
  const procSeq = proc?.['image_seq_length'];
  if (procSeq != null) out.imageSeqLength = positiveInt(procSeq, 'image_seq_length', procPath);
  if (!src) return out;

  const get = (k: string): unknown => (src![k] === null ? undefined : src![k]);
  const bool = (k: string, dflt: boolean): boolean => {
    const v = get(k);
    if (v === undefined) return dflt;
    if (typeof v !== 'boolean') throw new GemmaError('BAD_FORMAT', `${srcPath}: ${k} must be true, false or null, got ${JSON.stringify(v)}`);
    return v;
  };
  const num = (k: string, dflt: number): number => {
    const v = get(k);
    if (v === undefined) return dflt;
    if (typeof v !== 'number' || !Number.isFinite(v)) {
      throw new GemmaError('BAD_FORMAT', `${srcPath}: ${k} must be a number or null, got ${JSON.stringify(v)}`);
    }
    return v;
  };
  const triple = (k: string, dflt: [number, number, number]): [number, number, number] => {
    const v = get(k);
    if (v === undefined) return dflt;
    try {
      return channelTriple(v as number[] | number, k);
    } catch {
      throw new GemmaError('BAD_FORMAT', `${srcPath}: ${k} must be a number or a list of 3 numbers, got ${JSON.stringify(v)}`);
    }
  };

  if (get('do_resize') === false) {
    throw new GemmaError('UNSUPPORTED_MODEL', `${srcPath}: do_resize false is not supported (Gemma 3 needs a fixed picture size)`);
  }
  const resample = get('resample');
  if (resample !== undefined && resample !== 2) {
    throw new GemmaError(
      'UNSUPPORTED_MODEL',
      `${srcPath}: resample ${JSON.stringify(resample)} is not supported; only 2 (PIL BILINEAR) is implemented`,
    );
  }
  const size = get('size');
  if (size !== undefined) {
    const s = size as Record<string, unknown>;
    if (typeof s === 'object' && s !== null && s['height'] != null && s['width'] != null) {
      out.size = { height: positiveInt(s['height'], 'size.height', srcPath), width: positiveInt(s['width'], 'size.width', srcPath) };
    } else if (typeof size === 'number') {
      const e = positiveInt(size, 'size', srcPath);
      out.size = { height: e, width: e };
    } else {
      throw new GemmaError('BAD_FORMAT', `${srcPath}: size must be {height, width}, got ${JSON.stringify(size)}`);
    }
  }
  out.doRescale = bool('do_rescale', true);
  out.rescaleFactor = num('rescale_factor', out.rescaleFactor);
  out.doNormalize = bool('do_normalize', true);
  // Gemma3ImageProcessor's own fallback for a missing mean/std is IMAGENET_STANDARD (0.5).
  out.imageMean = triple('image_mean', out.imageMean);
  out.imageStd = triple('image_std', out.imageStd);
  out.doConvertRgb = bool('do_convert_rgb', true);
  out.doPanAndScan = bool('do_pan_and_scan', false);
  out.panAndScan = {
    minCropSize: num('pan_and_scan_min_crop_size', PAN_AND_SCAN_DEFAULTS.minCropSize),
    maxNumCrops: num('pan_and_scan_max_num_crops', PAN_AND_SCAN_DEFAULTS.maxNumCrops),
    minRatioToActivate: num('pan_and_scan_min_ratio_to_activate', PAN_AND_SCAN_DEFAULTS.minRatioToActivate),
  };
  try {
    resolvePanAndScanOptions(out.panAndScan);
  } catch (e) {
    throw new GemmaError('BAD_FORMAT', `${srcPath}: ${(e as Error).message}`, { cause: e });
  }
  const seq = get('image_seq_length');
  if (seq !== undefined) out.imageSeqLength = positiveInt(seq, 'image_seq_length', srcPath);
  return out;
}

function positiveInt(v: unknown, name: string, path: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) {
    throw new GemmaError('BAD_FORMAT', `${path}: ${name} must be a positive integer, got ${JSON.stringify(v)}`);
  }
  return v;
}
