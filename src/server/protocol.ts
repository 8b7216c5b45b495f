// The messages between the HTTP thread and the model worker (worker.ts). Everything here is
// plain data: it crosses postMessage by structured clone.
import type { FinishReason } from '../generate/reply.js';
import type { KvType } from '../backend/backend.js';
import type { ApiErrorData } from './api-error.js';
import type { StructuredOptions } from './structured.js';

/** Sampling, length and grammar options of a job, already validated for types by the HTTP side. */
export interface JobOptions extends StructuredOptions {
  maxTokens?: number;
  temperature?: number;
  topP?: number;
  topK?: number;
  minP?: number;
  repetitionPenalty?: number;
  seed?: number;
  stop?: string[];
  presencePenalty?: number;
  frequencyPenalty?: number;
  logitBias?: Record<number, number>;
  /** Log-probabilities of the sampled tokens with this many alternatives (0..20). */
  logprobs?: number;
  /** False: compute the whole prompt, neither reusing a cached prefix nor keeping this one (default true). */
  cachePrompt?: boolean;
}

/** A token's text as clients see it: its decoded text and UTF-8 bytes (a lone byte of a byte-fallback run as itself). */
export interface TokenText {
  token: string;
  bytes: number[];
  logprob: number;
}

/** A sampled token's log-probability, with the most likely alternatives. */
export interface TokenLogprobData extends TokenText {
  top: TokenText[];
}

/** An image as the HTTP side hands it over: a data: URL (checked) or encoded bytes. */
export type JobImage = string | Uint8Array;

/** A content part of a job message: text, or an image in prompt order. */
export type JobPart = { type: 'text'; text: string } | { type: 'image'; image: JobImage; /** The request field it came from. */ param?: string };

export interface JobMessage {
  role: string;
  content: string | JobPart[];
}

/** What to generate after: a conversation (chat template) or a raw prompt. */
export type Job =
  | { kind: 'chat'; messages: JobMessage[]; options: JobOptions }
  | { kind: 'complete'; prompt: string | number[]; options: JobOptions };

/** load() options the worker passes through (plain data: kernels, threads, GGUF quantization...). */
export interface ModelLoadOptions {
  backend?: 'auto' | 'native' | 'js';
  threads?: number;
  quant?: string;
  mmproj?: string;
  mmap?: 'auto' | boolean;
  /** How the KV cache stores keys and values ('f32', 'f16', 'bf16'). */
  kvType?: KvType;
  panAndScan?: boolean;
  /** Largest image decoded, in pixels. */
  maxImagePixels?: number;
}

export interface WorkerConfig {
  modelPath: string;
  load?: ModelLoadOptions;
  /** KV cache capacity of each sequence, in tokens (undefined: the default). */
  context?: number;
  /** Most sequences decoded together. */
  parallel: number;
  /** The id clients name the model by (default: derived from the path, model-id.ts). */
  alias?: string;
  /** Bytes of finished sequences' KV caches kept for reuse (the prompt cache); 0 disables it. */
  cacheBytes: number;
}

export interface ModelInfo {
  id: string;
  path: string;
  contextLength: number;
  /** How the KV cache stores keys and values. */
  kvType: KvType;
  vision: boolean;
  backend: string;
  parameters: number;
  /** Storage type of most decoder weights, e.g. 'Q4_0', 'BF16'. */
  quantization: string;
  family: string;
  /** The checkpoint's chat template (Jinja source), or null. */
  chatTemplate: string | null;
  /** Sampling defaults from generation_config.json. */
  defaults: { temperature: number; topK: number; topP: number; minP: number; repetitionPenalty: number };
  /** Decoder dimensions (Ollama's model_info). */
  dims: { vocabSize: number; hiddenSize: number; intermediateSize: number; numLayers: number; numHeads: number; numKvHeads: number; headDim: number; slidingWindow: number; maxPositionEmbeddings: number };
}

export type ToWorker =
  /** `cancelFlag[0]` becomes 1 when the client goes away (shared memory: read inside synchronous work). */
  | { type: 'submit'; id: number; job: Job; cancelFlag: Int32Array }
  | { type: 'cancel'; id: number }
  | { type: 'shutdown' };


export interface DoneData {
  /** Text held back until the end (the last piece of the reply). */
  text: string;
  finishReason: FinishReason;
  promptTokens: number;
  /** Prompt tokens that came from the prompt cache (not computed). */
  cachedTokens?: number;
  completionTokens: number;
  /** Milliseconds spent computing the prompt, and decoding after the first token. */
  prefillMs: number;
  decodeMs: number;
}

export type FromWorker =
  | { type: 'ready'; info: ModelInfo }
  | { type: 'fatal'; message: string }
  /** Loading: the fraction of the weights read, in [0, 1]. */
  | { type: 'progress'; fraction: number }
  /** The prompt was prepared and fits: generation is queued. */
  | { type: 'accepted'; id: number; promptTokens: number }
  /** The job was refused before generation (bad image, prompt too long, bad option...). */
  | { type: 'rejected'; id: number; error: ApiErrorData }
  /** One sampled token (`text` may be empty while bytes or a possible stop string are held back). */
  | { type: 'token'; id: number; text: string; logprob?: TokenLogprobData }
  | { type: 'done'; id: number; done: DoneData }
  /** Generation failed after it was accepted. */
  | { type: 'failed'; id: number; message: string }
  /** Sequences decoding / waiting for a slot, sent whenever either changes. */
  | { type: 'load'; active: number; waiting: number }
  /** One batched decode step: how many sequences it advanced and how long it took. */
  | { type: 'step'; batch: number; ms: number }
  /** The prompt cache now holds `sequences` finished sequences in `bytes` (sent when it changes). */
  | { type: 'promptCache'; sequences: number; bytes: number }
  /** Several of the above, in order (the worker sends each step's events together). */
  | { type: 'batch'; messages: FromWorker[] };
