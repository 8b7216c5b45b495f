// Gemma 3 hyper-parameters as one flat typed record. Nothing below this file reads config.json.

export type LayerType = 'sliding' | 'global';

export interface Gemma3TextConfig {
  vocabSize: number; // embedding rows (262144 for 1B, 262208 for 4B+)
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  queryPreAttnScalar: number; // attention scale = queryPreAttnScalar^-0.5
  slidingWindow: number;
  layerTypes: LayerType[]; // length numLayers
  ropeGlobalBase: number; // rope_theta
  ropeLocalBase: number; // rope_local_base_freq
  ropeGlobalScalingFactor: number; // linear rope_scaling factor on global layers (1 = none)
  ropeLocalScalingFactor: number; // 1 unless a v5 config scales sliding layers too
  rmsNormEps: number;
  maxPositionEmbeddings: number;
  finalLogitSoftcap: number | null;
  attnLogitSoftcap: number | null;
  tieWordEmbeddings: boolean;
  bosTokenId: number;
  eosTokenIds: number[];
  padTokenId: number;
}

export interface SiglipVisionConfig {
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numChannels: number;
  imageSize: number;
  patchSize: number;
  layerNormEps: number;
}

export interface Gemma3Config {
  modelType: 'gemma3_text' | 'gemma3';
  text: Gemma3TextConfig;
  /** Present only for multimodal checkpoints (model_type gemma3). */
  vision: SiglipVisionConfig | null;
  mmTokensPerImage: number; // 256 for the real models
  boiTokenId: number; // 255999
  eoiTokenId: number; // 256000
  imageTokenId: number; // 262144
}
