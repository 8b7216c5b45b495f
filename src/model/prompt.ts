// A prompt as the decoder takes it: token ids, plus image blocks, the runs of positions whose
// embeddings come from the vision tower and whose tokens attend to each other both ways. Every
// caller that computes a prompt in pieces (prefill chunks, the part after a cached prefix, scoring
// a few positions at a time) cuts it with slice(), which re-indexes the images from the cut and
// refuses to split a block; chunkEnd() chooses cut points that never do. So the rule that an
// image block is computed in one piece lives here and nowhere else.
import { GemmaError } from '../errors.js';

/** What the decoder reads of a prompt (a Prompt is one; tests may pass plain objects). */
export interface DecoderInput {
  ids: ArrayLike<number>; // [T]
  /**
   * Embeddings that replace the token embedding at some positions (image features), used as
   * given: not multiplied by √hiddenSize. Keyed by input index.
   */
  embeddings?: ReadonlyMap<number, Float32Array>;
  /** Input indices of image blocks [start, end) whose tokens attend to each other bidirectionally. */
  imageBlocks?: ReadonlyArray<readonly [number, number]>;
}

/** One image's place in a prompt: positions [start, end) and their features [end - start, hidden]. */
export interface ImageBlock {
  readonly start: number;
  readonly end: number;
  readonly features: Float32Array;
}

export class Prompt implements DecoderInput {
  readonly embeddings: ReadonlyMap<number, Float32Array> | undefined;
  readonly imageBlocks: ReadonlyArray<readonly [number, number]> | undefined;

  private constructor(readonly ids: readonly number[], readonly blocks: readonly ImageBlock[]) {
    if (blocks.length === 0) {
      this.embeddings = undefined;
      this.imageBlocks = undefined;
      return;
    }
    const embeddings = new Map<number, Float32Array>();
    for (const { start, end, features } of blocks) {
      const hidden = features.length / (end - start);
      for (let t = start; t < end; t++) embeddings.set(t, features.subarray((t - start) * hidden, (t - start + 1) * hidden));
    }
    this.embeddings = embeddings;
    this.imageBlocks = blocks.map((b) => [b.start, b.end] as const);
  }

  /** A text-only prompt. */
  static ofIds(ids: readonly number[]): Prompt {
    return new Prompt(ids, []);
  }

  /** `prompt` itself, or a text-only prompt of these ids. */
  static from(prompt: Prompt | readonly number[]): Prompt {
    return prompt instanceof Prompt ? prompt : Prompt.ofIds(prompt);
  }

  /**
   * Places per-image features ([tokensPerImage, hidden] each, in prompt order) on the runs of
   * `imageTokenId` in `ids`; each run must hold exactly one image's tokens.
   */
  static withImages(ids: readonly number[], images: readonly Float32Array[], imageTokenId: number): Prompt {
    const runs: [number, number][] = [];
    for (let i = 0; i < ids.length; i++) {
      if (ids[i] !== imageTokenId) continue;
      const start = i;
      while (i < ids.length && ids[i] === imageTokenId) i++;
      runs.push([start, i]);
    }
    if (runs.length !== images.length) {
      throw new GemmaError('INVALID_ARGUMENT', `the prompt has ${runs.length} image blocks but ${images.length} images were given`);
    }
    const blocks = runs.map(([start, end], b): ImageBlock => {
      const features = images[b]!;
      if (!Number.isInteger(features.length / (end - start))) {
        throw new GemmaError('INVALID_ARGUMENT', `image ${b} has ${end - start} placeholder tokens, which does not match its ${features.length} feature values`);
      }
      return { start, end, features };
    });
    return new Prompt(ids, blocks);
  }

  get length(): number {
    return this.ids.length;
  }

  /** The first image position, or the length when there is none: a cached prefix is reusable only before it. */
  get firstImagePosition(): number {
    return this.blocks[0]?.start ?? this.ids.length;
  }

  /** The end of a piece that starts at `from` and holds about `maxTokens` (at least one), moved past any block it would split. */
  chunkEnd(from: number, maxTokens: number): number {
    return blockSafeEnd(this.imageBlocks, from, Math.min(this.ids.length, from + Math.max(1, maxTokens)));
  }

  /** Positions [from, to) as a prompt of their own, indexed from 0; an image block may not be cut. */
  slice(from: number, to = this.ids.length): Prompt {
    if (!(Number.isInteger(from) && Number.isInteger(to) && 0 <= from && from <= to && to <= this.ids.length)) {
      throw new GemmaError('INVALID_ARGUMENT', `cannot slice [${from}, ${to}) of a prompt of ${this.ids.length} tokens`);
    }
    const blocks: ImageBlock[] = [];
    for (const b of this.blocks) {
      if (b.end <= from || b.start >= to) continue;
      if (b.start < from || b.end > to) {
        throw new GemmaError('INVALID_ARGUMENT', `cutting the prompt at [${from}, ${to}) would split the image block [${b.start}, ${b.end})`);
      }
      blocks.push({ start: b.start - from, end: b.end - from, features: b.features });
    }
    return new Prompt(this.ids.slice(from, to), blocks);
  }
}

/** `limit`, moved to the end of the image block it would fall inside (if any). */
export function blockSafeEnd(blocks: DecoderInput['imageBlocks'], from: number, limit: number): number {
  let end = Math.max(limit, from + 1);
  for (const [s, e] of blocks ?? []) if (s < end && e > end) end = e;
  return end;
}
