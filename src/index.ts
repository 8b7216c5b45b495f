// The public API. Three values (load, collect, GemmaError) and the types they use.

// Loading
export { load, DEFAULT_CONTEXT_LENGTH, type LoadOptions } from './load.js';
export { Gemma3, collect, type ChatOptions, type GenerationDefaults, type GenerationResult, type LogitsResult } from './gemma3.js';

// Generation
export type { GenerateOptions, GenerationChunk, GenerationStats, FinishReason } from './generate/generate.js';

// Chat
export type { ChatMessage, ContentPart } from './chat/messages.js';

// Model description
export type { Gemma3Config, Gemma3TextConfig, SiglipVisionConfig } from './model/config.js';
export type { Tokenizer } from './tokenizer/tokenizer.js';

// Errors
export { GemmaError, type GemmaErrorCode } from './errors.js';
