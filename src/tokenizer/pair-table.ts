// The merge ranks of a BPE vocabulary as an open-addressing hash table keyed by the pair of ids
// (no strings), the structure the merge loop in bpe.ts probes for every adjacent pair.

/** The rank of a pair that never merges. */
export const NO_RANK = 0x7fffffff;

/**
 * Open-addressing hash table from a pair of non-negative int32s to (rank, merged id). Slot i is
 * [a, b, rank, merged] at 4i of one Int32Array, so a probe touches one cache line.
 */
export class PairTable {
  private mask: number;
  private t: Int32Array;
  private count = 0;

  constructor(expected: number) {
    let cap = 16;
    while (cap < expected * 2) cap *= 2;
    this.mask = cap - 1;
    this.t = PairTable.alloc(cap);
  }

  private static alloc(cap: number): Int32Array {
    const t = new Int32Array(cap * 4);
    for (let i = 0; i < t.length; i += 4) t[i] = -1;
    return t;
  }

  get size(): number {
    return this.count;
  }

  /** Index (4 * slot) where (a, b) is or would go. */
  private slot(a: number, b: number): number {
    let h = Math.imul(a ^ Math.imul(b, 0x85ebca6b), 0x9e3779b1);
    h ^= h >>> 15;
    const mask = this.mask;
    const t = this.t;
    let i = h & mask;
    for (;;) {
      const k = t[4 * i]!;
      if (k === -1 || (k === a && t[4 * i + 1] === b)) return 4 * i;
      i = (i + 1) & mask;
    }
  }

  /** Inserts or overwrites (a later duplicate wins, like the Rust HashMap built from the merges). */
  set(a: number, b: number, rank: number, merged: number): void {
    let i = this.slot(a, b);
    if (this.t[i] === -1) {
      if ((this.count + 1) * 2 > this.mask + 1) {
        this.rehash((this.mask + 1) * 2);
        i = this.slot(a, b);
      }
      this.count++;
      this.t[i] = a;
      this.t[i + 1] = b;
    }
    this.t[i + 2] = rank;
    this.t[i + 3] = merged;
  }

  private rehash(cap: number): void {
    const old = this.t;
    this.mask = cap - 1;
    this.t = PairTable.alloc(cap);
    for (let j = 0; j < old.length; j += 4) {
      if (old[j] === -1) continue;
      const i = this.slot(old[j]!, old[j + 1]!);
      this.t[i] = old[j]!;
      this.t[i + 1] = old[j + 1]!;
      this.t[i + 2] = old[j + 2]!;
      this.t[i + 3] = old[j + 3]!;
    }
  }

  has(a: number, b: number): boolean {
    return this.t[this.slot(a, b)] !== -1;
  }

  /** Handle of (a, b) for rankAt / mergedAt, or -1. */
  find(a: number, b: number): number {
    const i = this.slot(a, b);
    return this.t[i] === -1 ? -1 : i;
  }

  rankAt(handle: number): number {
    return this.t[handle + 2]!;
  }

  mergedAt(handle: number): number {
    return this.t[handle + 3]!;
  }
}
