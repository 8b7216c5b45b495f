// Image preprocessing speed: decode + Gemma3ImageProcessor on a synthetic 4000x3000 JPEG (made with
// sharp in the OS temp folder) to 896x896, with and without pan-and-scan (2 crops of 2000x3000 for
// this 4:3 picture). Prints the median of several runs of each stage.
//
//   node dist/bench/preprocess.js [runs=5]

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { decodeImage } from '../src/vision/decode.js';
import { defaultPreprocessorConfig, preprocessImage } from '../src/vision/preprocess.js';
import { resizeBilinearU8 } from '../src/vision/resize.js';

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

async function time(runs: number, fn: () => unknown | Promise<unknown>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await fn();
    out.push(performance.now() - t0);
  }
  return out;
}

async function main(): Promise<void> {
  const runs = Math.max(1, Number(process.argv[2] ?? 5) | 0);
  const W = 4000;
  const H = 3000;
  const dir = mkdtempSync(join(tmpdir(), 'gemma3-bench-'));
  try {
    // Smooth gradients plus noise, so the JPEG has realistic entropy.
    const px = new Uint8Array(W * H * 3);
    let s = 12345;
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
        const n = s >>> 27;
        const o = (y * W + x) * 3;
        px[o] = ((x >> 4) + n) & 255;
        px[o + 1] = ((y >> 4) + n) & 255;
        px[o + 2] = (((x + y) >> 5) + n) & 255;
      }
    }
    const path = join(dir, 'synthetic-4000x3000.jpg');
    writeFileSync(path, await sharp(px, { raw: { width: W, height: H, channels: 3 } }).jpeg({ quality: 90 }).toBuffer());

    const cfg = defaultPreprocessorConfig();
    const img = await decodeImage(path); // warm-up (loads sharp)
    preprocessImage(img, cfg);

    const rows: [string, number[]][] = [];
    rows.push(['decode JPEG 4000x3000 -> RGB', await time(runs, () => decodeImage(path))]);
    rows.push(['resize 4000x3000 -> 896x896 (PIL BILINEAR)', await time(runs, () => resizeBilinearU8(img, 896, 896))]);
    rows.push(['preprocess, pan-and-scan off (1 picture)', await time(runs, () => preprocessImage(img, cfg))]);
    const pas = { ...cfg, doPanAndScan: true };
    const nCrops = preprocessImage(img, pas).numCrops;
    rows.push([`preprocess, pan-and-scan on (1 + ${nCrops} pictures)`, await time(runs, () => preprocessImage(img, pas))]);
    rows.push([
      'decode + preprocess, pan-and-scan off',
      await time(runs, async () => preprocessImage(await decodeImage(path), cfg)),
    ]);
    rows.push([
      'decode + preprocess, pan-and-scan on',
      await time(runs, async () => preprocessImage(await decodeImage(path), pas)),
    ]);

    const w = Math.max(...rows.map((r) => r[0].length));
    console.log(`Image preprocessing, ${runs} runs each (median / min ms), Node ${process.version}`);
    console.log(`${'stage'.padEnd(w)}  median ms   min ms`);
    for (const [name, t] of rows) {
      console.log(`${name.padEnd(w)}  ${median(t).toFixed(1).padStart(9)}  ${Math.min(...t).toFixed(1).padStart(7)}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
