// Typed weight records for the text decoder, built once from a TensorSource. Matrices stay in
// their stored dtype (Q4_K / Q5_K / Q6_K / Q5_0 / Q5_1 too: both backends multiply them as stored);
// norm vectors become float32 effective scales (1 + w) so the forward pass never needs to know
// which format the weights came from.
import type { WeightMatrix } from '../backend/backend.js';
import { toFloat32 } from '../formats/dtypes.js';
import type { RawTensor, TensorSource } from '../formats/tensor-source.js';
import type { Gemma3TextConfig } from './config.js';

export interface LayerWeights {
  attnNorm: Float32Array; // [hiddenSize]
  attnQ: WeightMatrix; // [numHeads * headDim, hiddenSize]
  attnK: WeightMatrix; // [numKvHeads * headDim, hiddenSize]
  attnV: WeightMatrix; // [numKvHeads * headDim, hiddenSize]
  attnQNorm: Float32Array; // [headDim]
  attnKNorm: Float32Array; // [headDim]
  attnOutput: WeightMatrix; // [hiddenSize, numHeads * headDim]
  postAttentionNorm: Float32Array; // [hiddenSize]
  ffnNorm: Float32Array; // [hiddenSize]
  ffnGate: WeightMatrix; // [intermediateSize, hiddenSize]
  ffnUp: WeightMatrix; // [intermediateSize, hiddenSize]
  ffnDown: WeightMatrix; // [hiddenSize, intermediateSize]
  postFfwNorm: Float32Array; // [hiddenSize]
}

export interface TextWeights {
  tokenEmbd: WeightMatrix; // [vocabSize, hiddenSize]; also the output head when tied
  output?: WeightMatrix; // [vocabSize, hiddenSize], only for untied checkpoints (tie_word_embeddings false)
  outputNorm: Float32Array; // [hiddenSize]
  layers: LayerWeights[];
}

/**
 * How stored norm weights relate to the effective scale: Hugging Face checkpoints store w of
 * the (1 + w) RMSNorm; llama.cpp GGUFs store 1 + w already.
 */
export type NormConvention = 'offset-by-one' | 'stored-as-is';

/** Reads the text weights; `names` maps canonical (GGUF-style) names to names in `source`. */
export function loadTextWeights(source: TensorSource, names: ReadonlyMap<string, string>, config: Gemma3TextConfig,
                                norms: NormConvention, onTensor?: () => void,
                                prepare: (w: WeightMatrix) => WeightMatrix = (w) => w): TextWeights {
  const read = (canonical: string): RawTensor => {
    const name = names.get(canonical);
    if (name === undefined) throw new Error(`internal: no mapping for ${canonical}`);
    const t = source.read(name);
    onTensor?.();
    return t;
  };
  const matrix = (canonical: string): WeightMatrix => prepare(toMatrix(read(canonical)));
  const norm = (canonical: string): Float32Array => {
    const v = toFloat32(read(canonical));
    if (norms === 'offset-by-one') for (let i = 0; i < v.length; i++) v[i] = Math.fround(1 + v[i]!);
    return v;
  };
  const layers: LayerWeights[] = [];
  for (let i = 0; i < config.numLayers; i++) {
    const b = `blk.${i}.`;
    layers.push({
      attnNorm: norm(b + 'attn_norm.weight'),
      attnQ: matrix(b + 'attn_q.weight'),
      attnK: matrix(b + 'attn_k.weight'),
      attnV: matrix(b + 'attn_v.weight'),
      attnQNorm: norm(b + 'attn_q_norm.weight'),
      attnKNorm: norm(b + 'attn_k_norm.weight'),
      attnOutput: matrix(b + 'attn_output.weight'),
      postAttentionNorm: norm(b + 'post_attention_norm.weight'),
      ffnNorm: norm(b + 'ffn_norm.weight'),
      ffnGate: matrix(b + 'ffn_gate.weight'),
      ffnUp: matrix(b + 'ffn_up.weight'),
      ffnDown: matrix(b + 'ffn_down.weight'),
      postFfwNorm: norm(b + 'post_ffw_norm.weight'),
    });
  }
  const weights: TextWeights = { tokenEmbd: matrix('token_embd.weight'), outputNorm: norm('output_norm.weight'), layers };
  // The weight-name table requires output.weight exactly when the config is untied.
  if (names.has('output.weight')) weights.output = matrix('output.weight');
  return weights;
}

export function toMatrix(t: RawTensor): WeightMatrix {
  const [rows, cols] = t.shape.length === 2 ? t.shape : [1, t.shape[0] ?? 0];
  return { dtype: t.dtype, rows: rows!, cols: cols!, data: t.data };
}
