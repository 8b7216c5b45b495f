// The public API. Three values (load, collect, GemmaError) and the types they use.

// Loading
export { load, DEFAULT_CONTEXT_LENGTH, DEFAULT_KV_TYPE, type ContextLength, type KvType, type LoadOptions } from './load.js';
export {
  Gemma3, collect, type ChatOptions, type GenerationDefaults, type GenerationResult, type LogitsResult, type PrepareOptions,
} from './gemma3.js';
export type { Session } from './session.js';

// Generation
export type { GenerateOptions, GenerationChunk, GenerationStats, FinishReason } from './generate/generate.js';

// Chat
export type { ChatMessage, ContentPart, TextPart, ImagePart, OtherPart } from './chat/messages.js';
export type { PreparedPrompt } from './chat/prompt.js';

// Images
export type { ImageInput } from './vision/decode.js';
export type { RgbImage, RawPixels } from './vision/image.js';

// Model description
export type { Gemma3Config, Gemma3TextConfig, SiglipVisionConfig } from './model/config.js';
export type { Tokenizer } from './tokenizer/tokenizer.js';

// Errors
export { GemmaError, type GemmaErrorCode } from './errors.js';
