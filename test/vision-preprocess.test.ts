// Preprocessing: Gemma3ImageProcessor parity against the tiny-vlm `preprocess[]` goldens (transformers 4.57.6
// + Pillow 12.3), PIL BILINEAR resize, pan-and-scan, and loading the preprocessor config.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeImage } from '../src/vision/decode.js';
import { panAndScan, panAndScanBoxes } from '../src/vision/pan-and-scan.js';
import { defaultPreprocessorConfig, loadPreprocessorConfig, preprocessImage, preprocessImages } from '../src/vision/preprocess.js';
import { precomputeBilinearCoefficients, resizeBilinearU8 } from '../src/vision/resize.js';
import { fixturePath, readF32, readJson } from './helpers.js';
import { IMAGES_DIR, referenceResize, rejectsWith, samePixels, synthRgb, throwsWith } from './vision-helpers.js';

const MANIFEST_DIR = fixturePath('goldens', 'tiny-vlm');
const TINY_VLM = fixturePath('tiny-vlm');

// ---------------------------------------------------------------------------------------------
// Goldens: Gemma3ImageProcessor (PIL backend) on the four fixture images, pan-and-scan off and on.

interface PreprocessGolden {
  image: string;
  do_pan_and_scan: boolean;
  num_crops: number;
  crop_hw_before_resize: [number, number][];
  pixel_values: { file: string; shape: number[] };
  resized_uint8_hwc: { file: string; shape: number[] };
}

describe('Gemma3ImageProcessor goldens (tiny-vlm manifest preprocess[])', () => {
  const manifest = readJson<{ images: { name: string; file: string; width: number; height: number; mode: string }[]; preprocess: PreprocessGolden[] }>(
    join(MANIFEST_DIR, 'manifest.json'),
  );
  assert.equal(manifest.preprocess.length, 8);
  for (const g of manifest.preprocess) {
    test(`${g.image}, pan-and-scan ${g.do_pan_and_scan ? 'on' : 'off'}`, async () => {
      const info = manifest.images.find((i) => i.name === g.image)!;
      const img = await decodeImage(join(MANIFEST_DIR, info.file));
      assert.equal(img.width, info.width);
      assert.equal(img.height, info.height);
      const cfg = await loadPreprocessorConfig(TINY_VLM);
      const res = preprocessImage(img, { ...cfg, doPanAndScan: g.do_pan_and_scan });
      assert.equal(res.numCrops, g.num_crops);
      assert.deepEqual(
        res.sourceSizes.map((s) => [s.height, s.width]),
        g.crop_hw_before_resize,
      );
      const [n, h, w, c] = g.resized_uint8_hwc.shape as [number, number, number, number];
      assert.equal(n, 1 + g.num_crops);
      assert.equal(c, 3);
      const wantU8 = readF32(join(MANIFEST_DIR, g.resized_uint8_hwc.file));
      assert.equal(res.resized.length, n);
      for (let i = 0; i < n; i++) {
        const r = res.resized[i]!;
        assert.equal(r.width, w);
        assert.equal(r.height, h);
        const want = Uint8Array.from(wantU8.subarray(i * h * w * 3, (i + 1) * h * w * 3));
        samePixels(r, { width: w, height: h, data: want }, `${g.image} picture ${i} resized uint8`);
      }
      const wantPv = readF32(join(MANIFEST_DIR, g.pixel_values.file));
      assert.deepEqual(g.pixel_values.shape, [n, 3, h, w]);
      assert.equal(res.pixelValues.length, wantPv.length);
      let maxDiff = 0;
      let nDiff = 0;
      for (let i = 0; i < wantPv.length; i++) {
        const d = Math.abs(res.pixelValues[i]! - wantPv[i]!);
        if (d !== 0) nDiff++;
        if (d > maxDiff) maxDiff = d;
      }
      assert.ok(maxDiff <= 1e-6, `pixel_values max abs diff ${maxDiff}`);
      assert.equal(nDiff, 0, `pixel_values: ${nDiff} values not bit-identical (max diff ${maxDiff})`);
    });
  }

  test('preprocessImages concatenates pictures and reports crops per image', async () => {
    const cfg = { ...(await loadPreprocessorConfig(TINY_VLM)), doPanAndScan: true };
    const wide = await decodeImage(join(IMAGES_DIR, 'wide.png'));
    const square = await decodeImage(join(IMAGES_DIR, 'square.png'));
    const both = preprocessImages([wide, square], cfg);
    assert.deepEqual(both.numCrops, [3, 0]);
    assert.equal(both.numPictures, 5);
    const a = preprocessImage(wide, cfg).pixelValues;
    const b = preprocessImage(square, cfg).pixelValues;
    assert.equal(both.pixelValues.length, a.length + b.length);
    assert.deepEqual(both.pixelValues.subarray(a.length), b);
  });
});

// ---------------------------------------------------------------------------------------------

describe('resizeBilinearU8 (PIL BILINEAR)', () => {
  test('matches an independent float64 implementation of the recipe, up and down, odd ratios', () => {
    const sizes: [number, number, number, number][] = [
      [37, 23, 56, 56],
      [120, 120, 56, 56],
      [7, 5, 19, 11],
      [200, 3, 9, 17],
      [1, 1, 4, 3],
      [13, 40, 13, 7],
      [40, 13, 7, 13],
      [301, 643, 31, 29],
      [5, 9, 1, 1],
      [64, 48, 64, 48],
    ];
    sizes.forEach(([iw, ih, ow, oh], k) => {
      const img = synthRgb(iw, ih, k + 3);
      samePixels(resizeBilinearU8(img, ow, oh), referenceResize(img, ow, oh), `${iw}x${ih} -> ${ow}x${oh}`);
    });
  });

  test('same size is a copy; coefficients sum to about 2^22', () => {
    const img = synthRgb(9, 4);
    const r = resizeBilinearU8(img, 9, 4);
    samePixels(r, img, 'identity');
    assert.notEqual(r.data, img.data);
    const c = precomputeBilinearCoefficients(4000, 896);
    for (let o = 0; o < 896; o++) {
      let s = 0;
      for (let j = 0; j < c.bounds[o * 2 + 1]!; j++) s += c.kk[o * c.ksize + j]!;
      assert.ok(Math.abs(s - 4194304) <= c.ksize, `output ${o}: sum ${s}`);
    }
  });

  test('a flat image stays flat; bad target sizes are rejected', () => {
    const img = { width: 50, height: 30, data: new Uint8Array(50 * 30 * 3).fill(200) };
    const r = resizeBilinearU8(img, 17, 61);
    assert.ok(r.data.every((v) => v === 200));
    throwsWith(() => resizeBilinearU8(img, 0, 5), 'INVALID_ARGUMENT');
    throwsWith(() => resizeBilinearU8(img, 2.5, 5), 'INVALID_ARGUMENT');
    throwsWith(() => resizeBilinearU8({ width: 2, height: 2, data: new Uint8Array(5) }, 3, 3), 'INVALID_ARGUMENT', /expected/);
  });
});

// ---------------------------------------------------------------------------------------------

describe('panAndScan', () => {
  const dims = (boxes: { width: number; height: number }[]): string[] => boxes.map((b) => `${b.width}x${b.height}`);

  test('crop counts and sizes follow Gemma3ImageProcessor.pan_and_scan', () => {
    assert.deepEqual(dims(panAndScanBoxes(768, 256)), ['256x256', '256x256', '256x256']);
    assert.deepEqual(dims(panAndScanBoxes(301, 643)), ['301x322', '301x321']);
    assert.deepEqual(panAndScanBoxes(301, 643).map((b) => b.y), [0, 322]);
    assert.deepEqual(dims(panAndScanBoxes(60, 170, { minCropSize: 32 })), ['60x57', '60x57', '60x56']);
    assert.deepEqual(panAndScanBoxes(2000, 200), [], 'crops would be 200 px high: none');
    assert.deepEqual(panAndScanBoxes(120, 120), []);
    assert.deepEqual(panAndScanBoxes(37, 23), []);
    assert.deepEqual(panAndScanBoxes(1190, 1000), [], 'ratio 1.19 < 1.2');
    assert.deepEqual(dims(panAndScanBoxes(1200, 1000)), ['600x1000', '600x1000'], 'ratio 1.2 activates, at least 2 crops');
    assert.deepEqual(dims(panAndScanBoxes(4000, 500)), ['1000x500', '1000x500', '1000x500', '1000x500'], 'capped at 4');
    assert.equal(panAndScanBoxes(4000, 500, { maxNumCrops: 6 }).length, 6);
    assert.deepEqual(dims(panAndScanBoxes(700, 256)), ['350x256', '350x256'], 'floor(700/256) = 2 caps floor(2.73 + 0.5)');
    assert.deepEqual(dims(panAndScanBoxes(1000, 400)), ['334x400', '334x400', '332x400'], 'round half up: 2.5 -> 3');
    assert.deepEqual(panAndScanBoxes(1000, 400, { minRatioToActivate: 3 }), []);
  });

  test('crops are the pixels of the original', () => {
    const img = synthRgb(30, 10);
    const crops = panAndScan(img, { minCropSize: 4 });
    assert.deepEqual(dims(crops), ['10x10', '10x10', '10x10']);
    const c = crops[1]!;
    for (let y = 0; y < 10; y++) {
      for (let x = 0; x < 10; x++) {
        for (let ch = 0; ch < 3; ch++) {
          assert.equal(c.data[(y * 10 + x) * 3 + ch], img.data[(y * 30 + x + 10) * 3 + ch]);
        }
      }
    }
  });

  test('invalid options and degenerate crops are INVALID_ARGUMENT', () => {
    throwsWith(() => panAndScanBoxes(100, 10, { minCropSize: 0 }), 'INVALID_ARGUMENT', /minCropSize/);
    throwsWith(() => panAndScanBoxes(100, 10, { maxNumCrops: 0 }), 'INVALID_ARGUMENT', /maxNumCrops/);
    throwsWith(() => panAndScanBoxes(5, 1, { minCropSize: 1 }), 'INVALID_ARGUMENT', /empty crop/);
  });
});

// ---------------------------------------------------------------------------------------------

describe('loadPreprocessorConfig', () => {
  let dir = '';
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'gemma3-ppcfg-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));
  const sub = (name: string, files: Record<string, string>): string => {
    const d = join(dir, name);
    mkdirSync(d, { recursive: true });
    for (const [f, text] of Object.entries(files)) writeFileSync(join(d, f), text);
    return d;
  };

  test('tiny-vlm: explicit values, nulls become processor defaults', async () => {
    const cfg = await loadPreprocessorConfig(TINY_VLM);
    assert.deepEqual(cfg.size, { height: 56, width: 56 });
    assert.equal(cfg.rescaleFactor, 0.00392156862745098);
    assert.deepEqual(cfg.imageMean, [0.5, 0.5, 0.5]);
    assert.deepEqual(cfg.imageStd, [0.5, 0.5, 0.5]);
    assert.equal(cfg.doPanAndScan, false);
    assert.equal(cfg.doConvertRgb, true);
    assert.deepEqual(cfg.panAndScan, { minCropSize: 256, maxNumCrops: 4, minRatioToActivate: 1.2 });
    assert.equal(cfg.imageSeqLength, 4);
  });

  test('no files: the real 4B configuration', async () => {
    const cfg = await loadPreprocessorConfig(sub('empty', {}));
    assert.deepEqual(cfg, defaultPreprocessorConfig());
    assert.deepEqual(cfg.size, { height: 896, width: 896 });
    assert.equal(cfg.imageSeqLength, 256);
  });

  test('real-4B style file with nulls; processor_config fallback; scalar mean', async () => {
    const real = sub('real', {
      'preprocessor_config.json': JSON.stringify({
        do_convert_rgb: null,
        do_pan_and_scan: null,
        pan_and_scan_min_crop_size: null,
        pan_and_scan_max_num_crops: null,
        pan_and_scan_min_ratio_to_activate: null,
        size: { height: 896, width: 896 },
        resample: 2,
        image_mean: 0.5,
        image_std: [0.5, 0.5, 0.5],
        rescale_factor: 0.00392156862745098,
      }),
      'processor_config.json': JSON.stringify({ image_seq_length: 256, processor_class: 'Gemma3Processor' }),
    });
    assert.deepEqual(await loadPreprocessorConfig(real), defaultPreprocessorConfig());
    const nested = sub('nested', {
      'processor_config.json': JSON.stringify({ image_seq_length: 64, image_processor: { size: { height: 224, width: 224 }, do_pan_and_scan: true } }),
    });
    const cfg = await loadPreprocessorConfig(nested);
    assert.deepEqual(cfg.size, { height: 224, width: 224 });
    assert.equal(cfg.doPanAndScan, true);
    assert.equal(cfg.imageSeqLength, 64);
  });

  test('malformed files', async () => {
    await rejectsWith(loadPreprocessorConfig(sub('badjson', { 'preprocessor_config.json': '{"size": ' })), 'BAD_FORMAT', /not valid JSON/);
    await rejectsWith(loadPreprocessorConfig(sub('badsize', { 'preprocessor_config.json': '{"size": {"height": -1, "width": 3}}' })), 'BAD_FORMAT', /size.height/);
    await rejectsWith(loadPreprocessorConfig(sub('badmean', { 'preprocessor_config.json': '{"image_mean": [1, 2]}' })), 'BAD_FORMAT', /image_mean/);
    await rejectsWith(loadPreprocessorConfig(sub('bicubic', { 'preprocessor_config.json': '{"resample": 3}' })), 'UNSUPPORTED_MODEL', /resample/);
  });
});
