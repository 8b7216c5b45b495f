// Keys (after QK-norm and RoPE) and values per layer, float32. Global layers keep every
// position up to `capacity`; sliding layers keep a ring of the last `slidingWindow` positions,
// indexed by pos % slidingWindow (RoPE uses absolute positions, so slots are interchangeable).
import type { Gemma3TextConfig } from './config.js';

export interface LayerCache {
  readonly k: Float32Array; // [slots, numKvHeads * headDim]
  readonly v: Float32Array; // [slots, numKvHeads * headDim]
  /** Ring size for sliding layers; 0 for global layers (slot = position). */
  readonly ring: number;
}

export class KvCache {
  readonly layers: LayerCache[];
  /** Positions written so far; the next token takes position `length`. */
  length = 0;

  constructor(config: Gemma3TextConfig, readonly capacity: number) {
    const kvDim = config.numKvHeads * config.headDim;
    this.layers = config.layerTypes.map((type) => {
      const ring = type === 'sliding' ? Math.min(config.slidingWindow, capacity) : 0;
      const slots = ring || capacity;
      return { k: new Float32Array(slots * kvDim), v: new Float32Array(slots * kvDim), ring };
    });
  }

  /** Bytes held by keys and values. */
  get sizeBytes(): number {
    return this.layers.reduce((s, l) => s + l.k.byteLength + l.v.byteLength, 0);
  }

  /**
   * Whether the cache can be cut back to `n` positions and extended from there: a sliding ring
   * must still hold the window that position n attends to.
   */
  canTruncateTo(n: number): boolean {
    if (n > this.length || n < 0) return false;
    const window = this.layers.find((l) => l.ring > 0)?.ring ?? 0;
    return window === 0 || n === this.length || n >= this.length - 1 || this.length <= window;
  }

  truncate(n: number): void {
    if (!this.canTruncateTo(n)) throw new Error(`cannot truncate the cache from ${this.length} to ${n}`);
    this.length = n;
  }

  reset(): void {
    this.length = 0;
  }
}
