// Gemma 3 "pan and scan": extra crops of very wide or tall images, exactly as
// transformers' Gemma3ImageProcessor.pan_and_scan (image_processing_gemma3.py).

import { GemmaError } from '../errors.js';
import { assertRgbImage, cropRgb, type RgbImage } from './image.js';

export interface PanAndScanOptions {
  /** Smallest allowed crop side in pixels (default 256). */
  minCropSize?: number;
  /** Most crops per image (default 4). */
  maxNumCrops?: number;
  /** Aspect ratio (long side / short side) from which crops are made (default 1.2). */
  minRatioToActivate?: number;
}

export const PAN_AND_SCAN_DEFAULTS: Readonly<Required<PanAndScanOptions>> = Object.freeze({
  minCropSize: 256,
  maxNumCrops: 4,
  minRatioToActivate: 1.2,
});

export interface CropBox {
  x: number;
  y: number;
  width: number;
  height: number;
}

/** Fills defaults and validates (INVALID_ARGUMENT for values the reference would crash on). */
export function resolvePanAndScanOptions(opts: PanAndScanOptions = {}): Required<PanAndScanOptions> {
  const r = {
    minCropSize: opts.minCropSize ?? PAN_AND_SCAN_DEFAULTS.minCropSize,
    maxNumCrops: opts.maxNumCrops ?? PAN_AND_SCAN_DEFAULTS.maxNumCrops,
    minRatioToActivate: opts.minRatioToActivate ?? PAN_AND_SCAN_DEFAULTS.minRatioToActivate,
  };
  if (typeof r.minCropSize !== 'number' || !Number.isFinite(r.minCropSize) || r.minCropSize <= 0) {
    throw new GemmaError('INVALID_ARGUMENT', `panAndScan minCropSize must be a positive number, got ${String(r.minCropSize)}`);
  }
  if (!Number.isInteger(r.maxNumCrops) || r.maxNumCrops < 1) {
    throw new GemmaError('INVALID_ARGUMENT', `panAndScan maxNumCrops must be an integer >= 1, got ${String(r.maxNumCrops)}`);
  }
  if (typeof r.minRatioToActivate !== 'number' || Number.isNaN(r.minRatioToActivate)) {
    throw new GemmaError('INVALID_ARGUMENT', `panAndScan minRatioToActivate must be a number, got ${String(r.minRatioToActivate)}`);
  }
  return r;
}

/**
 * The crop rectangles pan-and-scan cuts from a width x height image (possibly none), in the
 * reference's order (row-major: all columns of the first row first). Rules, as in transformers:
 *  - landscape/square (w >= h): nothing if w/h < minRatio; n = floor(w/h + 0.5) (round half up),
 *    n = min(n, floor(w / minCropSize)), n = max(2, n), n = min(maxNumCrops, n), one row;
 *    portrait: the same with w and h swapped, one column;
 *  - crop size ceil(w / n_w) x ceil(h / n_h); nothing if its smaller side < minCropSize;
 *  - crop i starts at i * cropSize and is cut off at the image border (the last one may be smaller).
 */
export function panAndScanBoxes(width: number, height: number, opts: PanAndScanOptions = {}): CropBox[] {
  const { minCropSize, maxNumCrops, minRatioToActivate } = resolvePanAndScanOptions(opts);
  let nw: number;
  let nh: number;
  if (width >= height) {
    if (width / height < minRatioToActivate) return [];
    nw = Math.floor(width / height + 0.5);
    nw = Math.min(Math.floor(width / minCropSize), nw);
    nw = Math.max(2, nw);
    nw = Math.min(maxNumCrops, nw);
    nh = 1;
  } else {
    if (height / width < minRatioToActivate) return [];
    nh = Math.floor(height / width + 0.5);
    nh = Math.min(Math.floor(height / minCropSize), nh);
    nh = Math.max(2, nh);
    nh = Math.min(maxNumCrops, nh);
    nw = 1;
  }
  const cw = Math.ceil(width / nw);
  const ch = Math.ceil(height / nh);
  if (Math.min(cw, ch) < minCropSize) return [];
  const boxes: CropBox[] = [];
  for (let r = 0; r < nh; r++) {
    for (let c = 0; c < nw; c++) {
      const x = c * cw;
      const y = r * ch;
      const w = Math.min(cw, width - x);
      const h = Math.min(ch, height - y);
      if (w <= 0 || h <= 0) {
        // numpy would yield an empty slice here, which the reference's resize then fails on.
        throw new GemmaError(
          'INVALID_ARGUMENT',
          `pan-and-scan with minCropSize=${minCropSize}, maxNumCrops=${maxNumCrops} gives an empty crop for a ${width}x${height} image`,
        );
      }
      boxes.push({ x, y, width: w, height: h });
    }
  }
  return boxes;
}

/** The pan-and-scan crops of `img` (copies; empty when pan-and-scan does not activate). */
export function panAndScan(img: RgbImage, opts: PanAndScanOptions = {}): RgbImage[] {
  assertRgbImage(img);
  return panAndScanBoxes(img.width, img.height, opts).map((b) => cropRgb(img, b.x, b.y, b.width, b.height));
}
