// Runs the vision tower on prepared pictures, remembering the last few results: a multi-turn
// chat re-renders (and so re-prepares) every earlier image on each turn, and SigLIP on an
// 896 x 896 picture costs far more than hashing its pixels.
import { createHash } from 'node:crypto';
import { GemmaError } from '../errors.js';
import type { VisionEncoder } from './vision-model.js';

export class ImageFeatureCache {
  private readonly entries = new Map<string, Float32Array>();

  constructor(private readonly encoder: VisionEncoder, private readonly capacity = 16) {}

  /**
   * [mmTokensPerImage, textHidden] soft-token embeddings of one picture [3, S, S]. `signal` is
   * polled after every SigLIP layer (a tower pass takes seconds on the large models), so it only
   * stops the pass if something can set it while this runs synchronously (e.g. memory shared with
   * another thread).
   */
  encode(pixels: Float32Array, signal?: { readonly aborted: boolean }): Float32Array {
    const key = createHash('sha256').update(new Uint8Array(pixels.buffer, pixels.byteOffset, pixels.byteLength)).digest('hex');
    const hit = this.entries.get(key);
    if (hit) {
      this.entries.delete(key);
      this.entries.set(key, hit); // most recently used last
      return hit;
    }
    const stopIfAborted = () => {
      if (signal?.aborted) throw new GemmaError('ABORTED', 'aborted while encoding the images');
    };
    const features = this.encoder.encodeImage(pixels, signal ? { siglip: stopIfAborted } : undefined);
    this.entries.set(key, features);
    while (this.entries.size > this.capacity) this.entries.delete(this.entries.keys().next().value!);
    return features;
  }

  clear(): void {
    this.entries.clear();
  }
}
