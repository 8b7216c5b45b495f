// One 896×896 image through the full-size SigLIP tower (27 layers, hidden 1152, 16 heads,
// 4096 patches) and the Gemma 3 projector, with random BF16 weights, on the native backend.
import type { WeightMatrix } from '../src/backend/backend.js';
import { selectBackend } from '../src/backend/native-backend.js';
import { parseConfig } from '../src/model/config.js';
import { Gemma3Projector } from '../src/model/projector.js';
import { SiglipEncoder, type SiglipLayerWeights } from '../src/model/siglip.js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from './paths.js';

/**
 * `layers` < 27 times only that many tower layers and scales the time up to all 27 (for the
 * TypeScript backend, whose full tower takes tens of minutes).
 */
export async function benchVision(threads: number, log: (s: string) => void, backendName: 'native' | 'js' = 'native', layerCount?: number): Promise<void> {
  const config = parseConfig(JSON.parse(readFileSync(join(REPO_ROOT, 'test', 'fixtures', 'configs', 'gemma-3-4b-it', 'config.json'), 'utf8')));
  const full = config.vision!;
  const v = { ...full, numLayers: Math.min(layerCount ?? full.numLayers, full.numLayers) };
  const scaleUp = full.numLayers / v.numLayers;
  const backend = selectBackend(backendName, threads);
  let s = 1;
  const bf16 = (rows: number, cols: number): WeightMatrix => {
    const u16 = new Uint16Array(rows * cols);
    for (let i = 0; i < u16.length; i++) {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      u16[i] = ((s >>> 16) & 0x807f) | 0x3c80;
    }
    return { dtype: 'bf16', rows, cols, data: new Uint8Array(u16.buffer) };
  };
  const vec = (n: number, value: number) => new Float32Array(n).fill(value);
  const H = v.hiddenSize;
  const I = v.intermediateSize;
  const layers: SiglipLayerWeights[] = [];
  for (let j = 0; j < v.numLayers; j++) {
    layers.push({
      ln1Weight: vec(H, 1), ln1Bias: vec(H, 0), attnQ: bf16(H, H), attnQBias: vec(H, 0), attnK: bf16(H, H), attnKBias: vec(H, 0),
      attnV: bf16(H, H), attnVBias: vec(H, 0), attnOut: bf16(H, H), attnOutBias: vec(H, 0), ln2Weight: vec(H, 1), ln2Bias: vec(H, 0),
      ffnUp: bf16(I, H), ffnUpBias: vec(I, 0), ffnDown: bf16(H, I), ffnDownBias: vec(H, 0),
    });
  }
  const patches = (v.imageSize / v.patchSize) ** 2;
  const siglip = new SiglipEncoder(v, {
    patchEmbd: bf16(H, 3 * v.patchSize * v.patchSize), patchBias: vec(H, 0), positionEmbd: vec(patches * H, 0.01),
    layers, postLnWeight: vec(H, 1), postLnBias: vec(H, 0),
  }, backend);
  const projector = new Gemma3Projector(config, { softEmbNorm: vec(H, 1), projection: bf16(config.text.hiddenSize, H) }, backend);
  const pixels = new Float32Array(3 * v.imageSize * v.imageSize).map((_, i) => ((i * 7919) % 255) / 127.5 - 1);
  const times: number[] = [];
  for (let round = 0; round < 2; round++) {
    const t = performance.now();
    projector.project(siglip.encode(pixels));
    times.push(((performance.now() - t) / 1000) * scaleUp);
    if (scaleUp > 1) break;
    log(`vision round ${round + 1}: ${times[times.length - 1]!.toFixed(2)} s`);
  }
  times.sort((a, b) => a - b);
  const how = scaleUp > 1 ? `extrapolated from ${v.numLayers} of ${full.numLayers} layers` : 'best of 2';
  console.log(`\n| vision (896×896, SigLIP 27×1152 + projector, ${backend.name}, ${threads} threads) | seconds per image (${how}) |`);
  console.log('| --- | --- |');
  console.log(`| one image → 256 soft tokens | ${times[0]!.toFixed(2)} |`);
}
