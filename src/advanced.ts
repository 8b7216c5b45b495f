// Building blocks for research use: the tokenizer, decoder, caches, sampler, image
// preprocessing and backends. Less stable than the main API (index.ts).
export { loadTokenizer, StreamingDetokenizer, type Tokenizer } from './tokenizer/tokenizer.js';
export { loadChatTemplate, ChatTemplate, expandImagePlaceholders } from './chat/chat-template.js';
export { loadConfig, parseConfig, type Gemma3Config, type Gemma3TextConfig } from './model/config.js';
export { Gemma3TextDecoder, type DecoderInput, type DecoderOptions } from './model/gemma3-text.js';
export { KvCache } from './model/kv-cache.js';
export { loadTextDecoder } from './model/text-model.js';
export { loadVisionEncoder, VisionEncoder } from './model/vision-model.js';
export { imageInputs } from './model/image-tokens.js';
export { Sampler, validateSamplingOptions, type SamplingOptions } from './generate/sampler.js';
export { StopMatcher } from './generate/stop.js';
export { Reply } from './generate/reply.js';
export { decodeImage } from './vision/decode.js';
export { preprocessImage, loadPreprocessorConfig } from './vision/preprocess.js';
export { panAndScan } from './vision/pan-and-scan.js';
export { resizeBilinearU8 } from './vision/resize.js';
export { openCheckpoint, openSafetensors } from './formats/safetensors.js';
export { openGguf } from './formats/gguf.js';
export { convertCheckpoint, type ConvertProgress, type ConvertType } from './convert/convert.js';
export { selectBackend, NativeBackend, type BackendPreference } from './backend/native-backend.js';
export { JsBackend } from './backend/js-backend.js';
export type { Backend, WeightMatrix } from './backend/backend.js';
export { summarizeModel, type ModelSummary } from './load/summary.js';
export { countParameters } from './model/parameters.js';
export {
  hubSettings, hubCacheDir, parseModelReference, looksLikeReference, formatReference, scanCache, removeRepo, removeFile, repoDir,
  findCachedModel, pullModel, listCachedModels, removeModel, DEFAULT_QUANTS, quantOf, availableQuants, ggufModels, isMmproj,
  type HubSettings, type ModelReference, type CachedRepo, type CachedRevision, type CachedFile, type CachedModel, type PullEvent,
  type PullOptions, type PullResult, type ModelKind, type RemoteFile, type CachedModelEntry,
} from './hub/index.js';
