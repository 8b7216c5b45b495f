// Keys (after QK-norm and RoPE) and values per layer, float32 or 16-bit (KvType). Global layers keep every
// position up to `capacity`; sliding layers keep a ring of the last `slidingWindow` positions,
// indexed by pos % slidingWindow (RoPE uses absolute positions, so slots are interchangeable).
import { kvElementBytes, type KvStore, type KvType } from '../backend/backend.js';
import type { Gemma3TextConfig } from './config.js';

/** Keys and values in the blocked layout of KvStore; ring: the ring size of a sliding layer, 0 for a global one. */
export type LayerCache = KvStore;

/**
 * Extra ring slots beyond the window on sliding layers, so the cache can be cut back by up to
 * this many positions (a chat reply that re-tokenizes differently) without recomputing.
 */
export const SLIDING_ROLLBACK = 256;

/** Slots per block of the cache layout (see KvStore). */
export const KV_BLOCK = 64;

/** Slots of each layer: `capacity` on a global one, a ring of the window plus `rollback` on a sliding one. */
function layerSlots(config: Gemma3TextConfig, capacity: number, rollback: number): { ring: number; slots: number }[] {
  return config.layerTypes.map((type) => {
    const ring = type === 'sliding' ? Math.min(config.slidingWindow + rollback, capacity) : 0;
    return { ring, slots: ring || capacity };
  });
}

/** Slots rounded up to whole blocks: what is allocated. */
function blocked(slots: number): number {
  return Math.ceil(slots / KV_BLOCK) * KV_BLOCK;
}

/**
 * Bytes a KvCache of `capacity` positions allocates for keys and values (its sizeBytes), without
 * allocating it: global layers hold every position, sliding layers a ring of slidingWindow +
 * rollback slots, each rounded up to whole blocks of KV_BLOCK.
 */
export function kvCacheBytes(config: Gemma3TextConfig, capacity: number, type: KvType, rollback = SLIDING_ROLLBACK): number {
  const kvDim = config.numKvHeads * config.headDim;
  return layerSlots(config, capacity, rollback).reduce((s, l) => s + 2 * blocked(l.slots) * kvDim, 0) * kvElementBytes(type);
}

export class KvCache {
  readonly layers: LayerCache[];
  /** Positions written so far; the next token takes position `length`. */
  length = 0;

  /** How keys and values are stored (default 'f32'). */
  readonly type: KvType;

  private readonly slidingWindow: number;

  /**
   * `rollback`: extra sliding-ring slots (default SLIDING_ROLLBACK); 0 keeps exactly the window.
   * `allocate`: where the keys and values live (a backend's allocateFloats); plain arrays otherwise.
   * `type`: the storage type of keys and values (default 'f32').
   */
  constructor(config: Gemma3TextConfig, readonly capacity: number,
              options: { rollback?: number; allocate?: ((n: number) => Float32Array) | undefined; type?: KvType } = {}) {
    const rollback = options.rollback ?? SLIDING_ROLLBACK;
    const type = options.type ?? 'f32';
    this.type = type;
    this.slidingWindow = config.slidingWindow;
    const kvDim = config.numKvHeads * config.headDim;
    const slotsOf = layerSlots(config, capacity, rollback);
    // One allocation for every layer's keys and values: a backend's huge-page memory then
    // rounds up once, not per array.
    const total = slotsOf.reduce((s, l) => s + 2 * blocked(l.slots) * kvDim, 0);
    // 16-bit types: the same float storage, half as many floats, seen as 16-bit words.
    const floats = type === 'f32' ? total : Math.ceil(total / 2);
    const words = options.allocate ? options.allocate(floats) : new Float32Array(floats);
    const storage = type === 'f32' ? words : new Uint16Array(words.buffer, words.byteOffset, total);
    let offset = 0;
    const take = (n: number): Float32Array | Uint16Array => storage.subarray(offset, (offset += n));
    this.layers = slotsOf.map(({ ring, slots }) => ({
      k: take(blocked(slots) * kvDim), v: take(blocked(slots) * kvDim), slots, ring, block: KV_BLOCK, type,
    }));
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
    const ring = this.layers.find((l) => l.ring > 0)?.ring ?? 0;
    // Position n attends back to n - slidingWindow + 1; the ring holds [length - ring, length).
    return n === 0 || ring === 0 || this.length <= ring || n - this.slidingWindow + 1 >= this.length - ring;
  }

  truncate(n: number): void {
    if (!this.canTruncateTo(n)) throw new Error(`cannot truncate the cache from ${this.length} to ${n}`);
    this.length = n;
  }

  reset(): void {
    this.length = 0;
  }
}
