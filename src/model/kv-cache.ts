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

  /**
   * Whether a cache holding `from` positions (rings as they were then) could be cut back to `to`:
   * canTruncateTo for a length the cache had, or will have after restoreRings.
   */
  canCutBack(from: number, to: number): boolean {
    if (to > from || to < 0) return false;
    const ring = this.layers.find((l) => l.ring > 0)?.ring ?? 0;
    return to === 0 || ring === 0 || from <= ring || to - this.slidingWindow + 1 >= from - ring;
  }

  truncate(n: number): void {
    if (!this.canTruncateTo(n)) throw new Error(`cannot truncate the cache from ${this.length} to ${n}`);
    this.length = n;
  }

  reset(): void {
    this.length = 0;
  }

  /** Whether `other` has this cache's layout (same layers, slots and rings): copies between them are exact. */
  sameLayout(other: KvCache): boolean {
    return this.layers.length === other.layers.length && this.layers.every((l, i) => {
      const o = other.layers[i]!;
      return l.slots === o.slots && l.ring === o.ring && l.k.length === o.k.length && l.v.length === o.v.length;
    });
  }

  /**
   * Makes this cache an exact copy of `source` (same layout): its positions, keys and values.
   * `keep`: only positions [0, keep) of the global layers are needed (the copy is about to be cut
   * back there), so only those are copied; the rings are copied whole.
   */
  copyFrom(source: KvCache, keep = source.length): void {
    if (!this.sameLayout(source)) throw new Error('cannot copy a KV cache of another layout');
    const n = Math.min(keep, source.length);
    this.layers.forEach((l, i) => {
      const s = source.layers[i]!;
      // A global layer needs only the blocks that hold positions [0, n); a ring needs all of it.
      const used = l.ring > 0 ? l.k.length : Math.min(l.k.length, Math.ceil(n / l.block) * l.block * (l.k.length / blockedSlots(l)));
      l.k.set(s.k.subarray(0, used));
      l.v.set(s.v.subarray(0, used));
    });
    this.length = source.length;
  }

  /**
   * A copy of the sliding rings as they are now (the global layers are not copied: they keep
   * every position). restoreRings() later brings back this moment, so the cache can again be cut
   * back to just before `length` although the rings have since moved on.
   */
  snapshotRings(): RingSnapshot {
    return {
      length: this.length,
      rings: this.layers.filter((l) => l.ring > 0).map((l) => ({ k: l.k.slice(), v: l.v.slice() })),
    };
  }

  /**
   * Puts back the rings of `snapshot`, taken from this cache (or a copy of it) when it held the
   * same first `snapshot.length` positions it holds now; the cache then holds exactly those.
   */
  restoreRings(snapshot: RingSnapshot): void {
    if (snapshot.length > this.length) throw new Error(`cannot restore rings of ${snapshot.length} positions into a cache of ${this.length}`);
    const sliding = this.layers.filter((l) => l.ring > 0);
    if (sliding.length !== snapshot.rings.length) throw new Error('the ring snapshot is of another layout');
    sliding.forEach((l, i) => {
      l.k.set(snapshot.rings[i]!.k);
      l.v.set(snapshot.rings[i]!.v);
    });
    this.length = snapshot.length;
  }
}

/** The sliding rings of a cache at one moment (see KvCache.snapshotRings). */
export interface RingSnapshot {
  readonly length: number;
  readonly rings: ReadonlyArray<{ readonly k: ArrayLike<number> & { readonly byteLength: number }; readonly v: ArrayLike<number> & { readonly byteLength: number } }>;
}

/** Bytes a snapshot holds. */
export function ringSnapshotBytes(snapshot: RingSnapshot): number {
  return snapshot.rings.reduce((s, r) => s + r.k.byteLength + r.v.byteLength, 0);
}

function blockedSlots(l: LayerCache): number {
  return Math.ceil(l.slots / l.block) * l.block;
}
