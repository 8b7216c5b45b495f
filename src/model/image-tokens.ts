// Where image features go in a token sequence: each run of image soft tokens is one image
// block (see Prompt.withImages, which this names for the research API).
import { Prompt } from './prompt.js';

/**
 * Maps per-image embeddings ([tokensPerImage, hidden] each, in prompt order) onto the runs of
 * `imageTokenId` in `ids`. Each run must hold exactly one image's tokens.
 */
export function imageInputs(ids: readonly number[], images: readonly Float32Array[], imageTokenId: number): Prompt {
  return Prompt.withImages(ids, images, imageTokenId);
}
