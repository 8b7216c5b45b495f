// Where image features go in a token sequence: each run of image soft tokens is one image
// block; its positions take the image's embeddings and attend to each other bidirectionally.
import { GemmaError } from '../errors.js';
import type { DecoderInput } from './gemma3-text.js';

/**
 * Maps per-image embeddings ([tokensPerImage, hidden] each, in prompt order) onto the runs of
 * `imageTokenId` in `ids`. Each run must hold exactly one image's tokens.
 */
export function imageInputs(ids: readonly number[], images: readonly Float32Array[], imageTokenId: number): Pick<DecoderInput, 'embeddings' | 'imageBlocks'> {
  const blocks: [number, number][] = [];
  for (let i = 0; i < ids.length; i++) {
    if (ids[i] !== imageTokenId) continue;
    const start = i;
    while (i < ids.length && ids[i] === imageTokenId) i++;
    blocks.push([start, i]);
  }
  if (blocks.length !== images.length) {
    throw new GemmaError('INVALID_ARGUMENT', `the prompt has ${blocks.length} image blocks but ${images.length} images were given`);
  }
  const embeddings = new Map<number, Float32Array>();
  blocks.forEach(([s, e], b) => {
    const features = images[b]!;
    const hidden = features.length / (e - s);
    if (!Number.isInteger(hidden)) {
      throw new GemmaError('INVALID_ARGUMENT', `image ${b} has ${e - s} placeholder tokens, which does not match its ${features.length} feature values`);
    }
    for (let t = s; t < e; t++) embeddings.set(t, features.subarray((t - s) * hidden, (t - s + 1) * hidden));
  });
  return blocks.length ? { embeddings, imageBlocks: blocks } : {};
}
