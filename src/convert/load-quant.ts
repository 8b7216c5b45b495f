// load({ quant: 'q8_0' | 'q4_0' | 'q4_k_m' | 'q5_k_m' | 'q6_k' }): float weights quantised as they are read, with
// the tensor types `gemma3 convert --type q8_0 | q4_0 | q4_k_m | q5_k_m | q6_k` writes (convert.ts textTensorType and the mmproj rules), so a
// checkpoint loaded with `quant` runs the same weights as its converted GGUF. Norms and every 1-D
// tensor stay float (the decoder keeps them as float32 scales anyway). Differences, on purpose:
//   * q4_0: the tied embedding / output head, which convert writes as Q6_K (llama-quantize's
//     choice), is quantised straight to Q8_0 (what this option did before the engine ran Q6_K
//     as stored; kept so `--quant q4_0` keeps its results);
//   * a matrix whose rows are not whole 32-value blocks keeps its stored type (convert writes F16
//     for q8_0 and refuses q4_0);
//   * the embedding keeps all its rows (convert cuts the 4B+ checkpoints' 64 padding rows).
// Tensors already quantised (a Q8_0 GGUF) are left alone.
import type { RawTensor, TensorInfo, TensorSource, DType } from '../formats/tensor-source.js';
import type { Gemma3Config } from '../model/config.js';
import { textWeightSpecs, visionWeightSpecs } from '../model/weight-names.js';
import { encodeTensor, textTensorType } from './convert.js';

export type LoadQuant = 'q8_0' | 'q4_0' | 'q4_k_m' | 'q5_k_m' | 'q6_k';

const FLOAT: ReadonlySet<DType> = new Set(['f32', 'f16', 'bf16']);

/**
 * Stored name → target type for the text tensors (`names`: canonical → stored, as
 * resolveTextTensors / resolveGgufTextTensors give) and, if `visionNames` is given, the vision ones.
 */
export function quantPlan(source: TensorSource, config: Gemma3Config, quant: LoadQuant, names: ReadonlyMap<string, string>,
                          visionNames?: ReadonlyMap<string, string>): Map<string, DType> {
  const plan = new Map<string, DType>();
  const text = config.text;
  for (const spec of textWeightSpecs(text)) {
    const stored = names.get(spec.canonical);
    if (stored === undefined || !FLOAT.has(source.info(stored).dtype)) continue;
    if (spec.shape.length !== 2 || spec.canonical.endsWith('norm.weight') || spec.shape[1]! % 32 !== 0) continue;
    const head = (text.tieWordEmbeddings && spec.canonical === 'token_embd.weight') || spec.canonical === 'output.weight';
    if (quant === 'q4_0') {
      const type = head ? 'q8_0' : textTensorType(spec, spec.shape, quant, head);
      plan.set(stored, type === 'q6_k' ? 'q8_0' : type);
      continue;
    }
    plan.set(stored, textTensorType(spec, spec.shape, quant, head, text.numLayers));
  }
  if (visionNames !== undefined && quant === 'q8_0') {
    // convert's mmproj: patch / position embeddings F32 and the projection F16 (kept as stored
    // here), the SigLIP matrices Q8_0; for q4_0 llama-quantize leaves the mmproj alone.
    for (const spec of visionWeightSpecs(config)) {
      const stored = visionNames.get(spec.canonical);
      if (stored === undefined || !FLOAT.has(source.info(stored).dtype)) continue;
      if (!/^v\.blk\.\d+\.(attn_[qkv]|attn_out|ffn_up|ffn_down)\.weight$/.test(spec.canonical) || spec.shape[1]! % 32 !== 0) continue;
      plan.set(stored, 'q8_0');
    }
  }
  return plan;
}

/** `source` with the planned tensors read back in their planned types. */
export function quantizingSource(source: TensorSource, plan: ReadonlyMap<string, DType>): TensorSource {
  return {
    names: () => source.names(),
    has: (name) => source.has(name),
    info: (name): TensorInfo => source.info(name),
    read: (name): RawTensor => {
      const raw = source.read(name);
      const dtype = plan.get(name);
      if (dtype === undefined || dtype === raw.dtype) return raw;
      return { name: raw.name, dtype, shape: raw.shape, data: encodeTensor(raw, dtype) };
    },
    close: () => source.close(),
  };
}
