// SigLIP vision encoder as Gemma 3 uses it: 14×14 patch convolution + learned position
// embedding (no class token) → numLayers pre-LN transformer blocks with full bidirectional
// attention → post LayerNorm. No pooling head.
// ref: transformers models/siglip/modeling_siglip.py (SiglipVisionEmbeddings, SiglipEncoderLayer)
import type { Backend, FullAttentionShape, WeightMatrix } from '../backend/backend.js';
import { toFloat32 } from '../formats/dtypes.js';
import type { TensorSource } from '../formats/tensor-source.js';
import type { SiglipVisionConfig } from './config.js';
import { toMatrix } from './weights.js';

export interface SiglipLayerWeights {
  ln1Weight: Float32Array; ln1Bias: Float32Array; // [hidden]
  attnQ: WeightMatrix; attnQBias: Float32Array; // [hidden, hidden], [hidden]
  attnK: WeightMatrix; attnKBias: Float32Array;
  attnV: WeightMatrix; attnVBias: Float32Array;
  attnOut: WeightMatrix; attnOutBias: Float32Array;
  ln2Weight: Float32Array; ln2Bias: Float32Array;
  ffnUp: WeightMatrix; ffnUpBias: Float32Array; // fc1 [intermediate, hidden]
  ffnDown: WeightMatrix; ffnDownBias: Float32Array; // fc2 [hidden, intermediate]
}

export interface SiglipWeights {
  patchEmbd: WeightMatrix; // [hidden, channels * patch * patch] (the conv kernel flattened)
  patchBias: Float32Array; // [hidden]
  positionEmbd: Float32Array; // [numPatches, hidden]
  layers: SiglipLayerWeights[];
  postLnWeight: Float32Array;
  postLnBias: Float32Array;
}

export function loadSiglipWeights(source: TensorSource, names: ReadonlyMap<string, string>, config: SiglipVisionConfig): SiglipWeights {
  const raw = (canonical: string) => source.read(names.get(canonical)!);
  const vec = (canonical: string) => toFloat32(raw(canonical));
  const mat = (canonical: string) => toMatrix(raw(canonical));
  const patch = raw('v.patch_embd.weight');
  const layers: SiglipLayerWeights[] = [];
  for (let j = 0; j < config.numLayers; j++) {
    const b = `v.blk.${j}.`;
    layers.push({
      ln1Weight: vec(b + 'ln1.weight'), ln1Bias: vec(b + 'ln1.bias'),
      attnQ: mat(b + 'attn_q.weight'), attnQBias: vec(b + 'attn_q.bias'),
      attnK: mat(b + 'attn_k.weight'), attnKBias: vec(b + 'attn_k.bias'),
      attnV: mat(b + 'attn_v.weight'), attnVBias: vec(b + 'attn_v.bias'),
      attnOut: mat(b + 'attn_out.weight'), attnOutBias: vec(b + 'attn_out.bias'),
      ln2Weight: vec(b + 'ln2.weight'), ln2Bias: vec(b + 'ln2.bias'),
      ffnUp: mat(b + 'ffn_up.weight'), ffnUpBias: vec(b + 'ffn_up.bias'),
      ffnDown: mat(b + 'ffn_down.weight'), ffnDownBias: vec(b + 'ffn_down.bias'),
    });
  }
  return {
    patchEmbd: { dtype: patch.dtype, rows: config.hiddenSize, cols: patch.shape.slice(1).reduce((a, b) => a * b, 1), data: patch.data },
    patchBias: vec('v.patch_embd.bias'),
    positionEmbd: vec('v.position_embd.weight'),
    layers,
    postLnWeight: vec('v.post_ln.weight'),
    postLnBias: vec('v.post_ln.bias'),
  };
}

export interface SiglipObserver {
  (stage: 'embeddings' | number | 'post_layernorm', x: Float32Array): void;
}

export class SiglipEncoder {
  readonly numPatches: number;
  readonly patchesPerSide: number;

  private readonly attnShape: FullAttentionShape;

  constructor(readonly config: SiglipVisionConfig, readonly weights: SiglipWeights, readonly backend: Backend) {
    this.patchesPerSide = config.imageSize / config.patchSize;
    this.numPatches = this.patchesPerSide ** 2;
    const headDim = config.hiddenSize / config.numHeads;
    this.attnShape = { numHeads: config.numHeads, headDim, scale: Math.fround(headDim ** -0.5) };
  }

  /** One image [channels, imageSize, imageSize] → patch features [numPatches, hidden]. */
  encode(pixels: Float32Array, observe?: SiglipObserver): Float32Array {
    const c = this.config;
    const N = this.numPatches;
    const H = c.hiddenSize;
    const be = this.backend;
    const w = this.weights;

    const x = new Float32Array(N * H); // [N, H]
    be.matMul(x, w.patchEmbd, this.im2col(pixels), N);
    for (let n = 0; n < N; n++) {
      for (let i = 0; i < H; i++) x[n * H + i] = x[n * H + i]! + w.patchBias[i]! + w.positionEmbd[n * H + i]!;
    }
    observe?.('embeddings', x);

    const h = new Float32Array(N * H);
    const q = new Float32Array(N * H);
    const k = new Float32Array(N * H);
    const v = new Float32Array(N * H);
    const att = new Float32Array(N * H);
    const mlp = new Float32Array(N * c.intermediateSize);
    for (let j = 0; j < c.numLayers; j++) {
      const lw = w.layers[j]!;
      layerNorm(h, x, lw.ln1Weight, lw.ln1Bias, c.layerNormEps, N, H);
      linear(be, q, lw.attnQ, lw.attnQBias, h, N);
      linear(be, k, lw.attnK, lw.attnKBias, h, N);
      linear(be, v, lw.attnV, lw.attnVBias, h, N);
      be.fullAttention(att, q, k, v, N, this.attnShape); // every patch sees every patch
      linear(be, h, lw.attnOut, lw.attnOutBias, att, N);
      for (let i = 0; i < N * H; i++) x[i] = x[i]! + h[i]!;
      layerNorm(h, x, lw.ln2Weight, lw.ln2Bias, c.layerNormEps, N, H);
      linear(be, mlp, lw.ffnUp, lw.ffnUpBias, h, N); // [N, intermediate]
      be.geluTanh(mlp, N * c.intermediateSize);
      linear(be, h, lw.ffnDown, lw.ffnDownBias, mlp, N); // [N, H]
      for (let i = 0; i < N * H; i++) x[i] = x[i]! + h[i]!;
      observe?.(j, x);
    }
    layerNorm(x, x, w.postLnWeight, w.postLnBias, c.layerNormEps, N, H);
    observe?.('post_layernorm', x);
    return x;
  }

  /** Patches as rows [N, channels * patch * patch], flattened (channel, row, col) like the conv kernel. */
  private im2col(pixels: Float32Array): Float32Array {
    const { patchSize: P, imageSize: S, numChannels: C } = this.config;
    const side = this.patchesPerSide;
    const cols = new Float32Array(this.numPatches * C * P * P);
    let o = 0;
    for (let py = 0; py < side; py++) {
      for (let px = 0; px < side; px++) {
        for (let ch = 0; ch < C; ch++) {
          for (let ky = 0; ky < P; ky++) {
            const rowStart = ch * S * S + (py * P + ky) * S + px * P;
            for (let kx = 0; kx < P; kx++) cols[o++] = pixels[rowStart + kx]!;
          }
        }
      }
    }
    return cols;
  }
}

function linear(be: Backend, out: Float32Array, w: WeightMatrix, bias: Float32Array, x: Float32Array, batch: number): void {
  be.matMul(out, w, x, batch);
  const R = w.rows;
  for (let n = 0; n < batch; n++) for (let r = 0; r < R; r++) out[n * R + r] = out[n * R + r]! + bias[r]!;
}

/** LayerNorm with biased variance, as torch.nn.LayerNorm; out may alias x. */
export function layerNorm(out: Float32Array, x: Float32Array, weight: Float32Array, bias: Float32Array, eps: number, rows: number, n: number): void {
  for (let r = 0; r < rows; r++) {
    const o = r * n;
    let mean = 0;
    for (let i = 0; i < n; i++) mean += x[o + i]!;
    mean /= n;
    let variance = 0;
    for (let i = 0; i < n; i++) {
      const d = x[o + i]! - mean;
      variance += d * d;
    }
    variance /= n;
    const inv = 1 / Math.sqrt(variance + eps);
    for (let i = 0; i < n; i++) out[o + i] = (x[o + i]! - mean) * inv * weight[i]! + bias[i]!;
  }
}
