// The Hugging Face hub: references, the cache laid out as huggingface_hub writes it, and pull.
export { hubSettings, hubCacheDir, type HubSettings } from './settings.js';
export { parseModelReference, looksLikeReference, formatReference, type ModelReference } from './reference.js';
export { scanCache, removeRepo, removeFile, repoDir, type CachedRepo, type CachedRevision, type CachedFile } from './cache.js';
export { findCachedModel, type CachedModel } from './resolve.js';
export { pullModel, type PullEvent, type PullOptions, type PullResult } from './pull.js';
export { DEFAULT_QUANTS, quantOf, availableQuants, ggufModels, isMmproj, type ModelKind } from './select.js';
export type { RemoteFile } from './download.js';
export { listCachedModels, removeModel, type CachedModelEntry } from './models.js';
