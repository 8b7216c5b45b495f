// The server's prompt cache: KV caches of finished sequences, kept (least recently used first
// out) within a byte budget, so that a new request whose prompt starts like one of them computes
// only the rest. A prefix is reused only where it is exact:
//   - token ids must match, and image blocks must match by the hash of their embeddings (the
//     placeholder ids are the same for every picture), never partially;
//   - a sliding-window ring can only be cut back as far as it still holds the window of the next
//     position (KvCache.canCutBack). Ring snapshots ("checkpoints", as llama.cpp's server calls
//     them) taken at the end of a prompt and where prompts were seen to part ways let a cache be
//     cut back further than its rings reach.
import { createHash } from 'node:crypto';
import type { KvCache, RingSnapshot } from '../model/kv-cache.js';
import { ringSnapshotBytes } from '../model/kv-cache.js';
import type { Prompt } from '../model/prompt.js';

/** An image block of a cached history: its positions and the hash of its embeddings. */
export interface ImageKey {
  readonly start: number;
  readonly end: number;
  readonly hash: string;
}

/** What a cache holds: the id at each position, and the image blocks among them. */
export interface CacheHistory {
  ids: number[];
  images: ImageKey[];
  /** Ring snapshots at earlier lengths of this same history, oldest first. */
  checkpoints: RingSnapshot[];
}

/** Most ring snapshots kept per cached sequence (the oldest goes first). */
export const MAX_CHECKPOINTS = 4;
/** Prompts at least this long get a ring snapshot at their end, and shared prefixes this long one where they part. */
export const MIN_CHECKPOINT_TOKENS = 256;

interface Entry extends CacheHistory {
  cache: KvCache;
  lastUsed: number;
}

/** A cache handed to a new sequence: `reused` positions of its prompt are already in it. */
export interface Acquired {
  cache: KvCache;
  reused: number;
  /** Snapshots still valid for the reused prefix (to keep with the sequence's history). */
  checkpoints: RingSnapshot[];
  /**
   * Where the prompt was seen to share a longer prefix (with a cached sequence) than could be
   * reused: a snapshot there would serve the next prompt like it. 0: none.
   */
  checkpointAt: number;
}

const hashes = new WeakMap<Float32Array, string>();

/** The content hash of an image block's embeddings (memoised per array). */
export function imageHash(features: Float32Array): string {
  let h = hashes.get(features);
  if (h === undefined) {
    h = createHash('sha256').update(new Uint8Array(features.buffer, features.byteOffset, features.byteLength)).digest('hex');
    hashes.set(features, h);
  }
  return h;
}

/** The image keys of a prompt. */
export function imageKeysOf(prompt: Prompt): ImageKey[] {
  return prompt.blocks.map((b) => ({ start: b.start, end: b.end, hash: imageHash(b.features) }));
}

export class PromptCache {
  private readonly entries: Entry[] = [];
  private clock = 0;

  /** `budgetBytes`: most bytes of idle caches (and their snapshots) kept; 0 keeps none. */
  constructor(readonly budgetBytes: number) {
    if (!(Number.isFinite(budgetBytes) && budgetBytes >= 0)) throw new RangeError(`the prompt cache budget must be a non-negative number of bytes, got ${budgetBytes}`);
  }

  /** Idle cached sequences. */
  get size(): number {
    return this.entries.length;
  }

  /** Bytes held by idle caches and their snapshots. */
  get bytes(): number {
    return this.entries.reduce((s, e) => s + entryBytes(e), 0);
  }

  /**
   * The best start for `prompt`: the cached sequence from which the most leading positions can be
   * reused exactly. A sequence the prompt extends whole (a follow-up turn) is handed over; one it
   * parts from is copied into `blank()` and stays cached for the next prompt like it. Null when
   * nothing can be reused (the caller takes a blank cache).
   */
  acquire(prompt: Prompt, blank: () => KvCache): Acquired | null {
    const images = imageKeysOf(prompt);
    let best: { entry: Entry; start: number; shared: number; checkpoint: RingSnapshot | null } | null = null;
    let longestShared = 0;
    for (const entry of this.entries) {
      const shared = sharedPrefix(entry, prompt, images);
      longestShared = Math.max(longestShared, shared);
      const option = usableStart(entry, shared, prompt);
      if (option.start > 0 && (!best || option.start > best.start || (option.start === best.start && entry.lastUsed > best.entry.lastUsed))) {
        best = { entry, shared, ...option };
      }
    }
    if (!best) {
      if (longestShared < MIN_CHECKPOINT_TOKENS) return null;
      const cache = blank();
      cache.reset();
      return { cache, reused: 0, checkpoints: [], checkpointAt: longestShared };
    }
    const { entry, start, shared, checkpoint } = best;
    const extendsWhole = shared === entry.ids.length && !checkpoint;
    let cache: KvCache;
    if (extendsWhole) {
      this.entries.splice(this.entries.indexOf(entry), 1);
      cache = entry.cache;
    } else {
      cache = blank();
      cache.copyFrom(entry.cache, start); // cut back to `start` below: later global positions are not needed
      entry.lastUsed = ++this.clock;
    }
    if (checkpoint) cache.restoreRings(checkpoint);
    cache.truncate(start);
    return {
      cache, reused: start,
      checkpoints: entry.checkpoints.filter((c) => c.length <= start),
      checkpointAt: shared - start >= MIN_CHECKPOINT_TOKENS ? shared : 0,
    };
  }

  /**
   * Keeps a finished sequence's cache (its history: the ids in it), then evicts the least recently
   * used until the budget holds. Returns the caches let go (blank buffers for reuse).
   */
  put(cache: KvCache, history: CacheHistory): KvCache[] {
    const ids = history.ids.slice(0, cache.length);
    const evicted: KvCache[] = [];
    if (ids.length === 0 || this.budgetBytes === 0) return [cache];
    const images = history.images.filter((b) => b.end <= ids.length);
    // A snapshot is worth its memory only where the rings no longer reach back as far as it does
    // (a reply shorter than the rollback leaves the prompt-end snapshot redundant).
    const checkpoints = history.checkpoints
      .filter((c) => c.length <= ids.length && !cache.canTruncateTo(lowestCut(cache, c.length)))
      .slice(-MAX_CHECKPOINTS);
    this.entries.push({ cache, ids, images, checkpoints, lastUsed: ++this.clock });
    let total = this.bytes;
    while (total > this.budgetBytes && this.entries.length > 0) {
      let oldest = 0;
      this.entries.forEach((e, i) => {
        if (e.lastUsed < this.entries[oldest]!.lastUsed) oldest = i;
      });
      const [gone] = this.entries.splice(oldest, 1);
      total -= entryBytes(gone!);
      evicted.push(gone!.cache);
    }
    return evicted;
  }

  /** Drops every idle cache; returns them. */
  clear(): KvCache[] {
    return this.entries.splice(0).map((e) => e.cache);
  }
}

/** The lowest position a cache holding `length` positions could be cut back to (its rings as they were then). */
function lowestCut(cache: KvCache, length: number): number {
  let lo = 0;
  let hi = length; // canCutBack(length, n) is monotone in n and true at n = length
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (cache.canCutBack(length, mid) && mid > 0) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

function entryBytes(e: Entry): number {
  return e.cache.sizeBytes + e.checkpoints.reduce((s, c) => s + ringSnapshotBytes(c), 0);
}

/**
 * How many leading positions of `prompt` the entry holds exactly: equal ids, equal image blocks
 * (by hash) wherever either has one, never inside a block, and at most all but the prompt's last
 * position (its logits are needed).
 */
function sharedPrefix(entry: Entry, prompt: Prompt, images: readonly ImageKey[]): number {
  const limit = Math.min(entry.ids.length, prompt.length - 1);
  let n = 0;
  while (n < limit && entry.ids[n] === prompt.ids[n]) n++;
  const same = (a: ImageKey, b: ImageKey) => a.start === b.start && a.end === b.end && a.hash === b.hash;
  for (const b of images) if (b.start < n && !entry.images.some((e) => same(e, b))) n = b.start;
  for (const b of entry.images) if (b.start < n && !images.some((p) => same(p, b))) n = b.start;
  return outsideBlocks(n, prompt);
}

/** `n`, moved back to the start of an image block of the prompt it falls inside. */
function outsideBlocks(n: number, prompt: Prompt): number {
  for (const b of prompt.blocks) if (b.start < n && n < b.end) return b.start;
  return n;
}

/**
 * Where a prompt sharing `shared` positions with the entry can start: the cache cut back in place
 * (if its rings still reach), or a snapshot restored and cut back from there.
 */
function usableStart(entry: Entry, shared: number, prompt: Prompt): { start: number; checkpoint: RingSnapshot | null } {
  const cache = entry.cache;
  if (shared > 0 && cache.canTruncateTo(shared)) return { start: shared, checkpoint: null };
  let best = { start: 0, checkpoint: null as RingSnapshot | null };
  for (const c of entry.checkpoints) {
    const start = outsideBlocks(Math.min(shared, c.length), prompt);
    if (start > best.start && cache.canCutBack(c.length, start)) best = { start, checkpoint: c };
  }
  return best;
}
