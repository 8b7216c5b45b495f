// What a format reader (checkpoint-folder.ts, gguf-file.ts) hands the assembler (assemble.ts):
// the same description whatever the files were. Everything is parsed and checked against the
// config, but no weight is read yet: the assembler reads them, once it has checked the options
// against the model and chosen the backend.
import type { ChatTemplate } from '../chat/chat-template.js';
import type { GgufSource } from '../formats/gguf.js';
import type { TensorSource } from '../formats/tensor-source.js';
import type { GenerationDefaults } from '../gemma3.js';
import type { Gemma3Config } from '../model/config.js';
import type { NormConvention } from '../model/weights.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import type { PreprocessorConfig } from '../vision/preprocess.js';

/** One part's weights (the text decoder, or the vision tower and projector) and how to read them. */
export interface WeightSet {
  readonly source: TensorSource;
  /** Canonical (GGUF-style) name → the name in `source`; presence and shapes already checked. */
  readonly names: ReadonlyMap<string, string>;
  /** How norm weights are stored: w of the (1 + w) RMSNorm (Hugging Face), or 1 + w (llama.cpp). */
  readonly norms: NormConvention;
  /**
   * `source` itself, when it is a GGUF file whose tensors a backend may serve as views of a
   * memory mapping (stored in the row layout its kernels read). Unset: every tensor is read.
   */
  readonly mappable?: GgufSource;
}

/** What a vision tower adds: its weights and the image preprocessing it expects. */
export interface VisionParts {
  readonly weights: WeightSet;
  /** Size, mean / std and tokens per image; its doPanAndScan is the default of load()'s `panAndScan`. */
  readonly preprocessor: PreprocessorConfig;
}

export interface ModelDescription {
  /** The folder or file the model was read from (for messages, and Gemma3.path). */
  readonly path: string;
  /** Hyper-parameters, the vision tower's included when the model has one. */
  readonly config: Gemma3Config;
  readonly tokenizer: Tokenizer;
  /** null when the files carry none (chat() then fails with a clear error). */
  readonly chatTemplate: ChatTemplate | null;
  /** Sampling defaults and stop ids, from generation_config.json or Gemma 3's own. */
  readonly defaults: GenerationDefaults;
  readonly text: WeightSet;
  readonly vision: VisionParts | null;
  /** Closes the files behind the weight sets (after the weights are read; views outlive it). */
  close(): void;
}
