// Q4_0 / Q8_0 matrices served straight from a memory mapping of the model file, and the x16
// copies of them that the native backend makes in the background once several streams decode
// together. Kept apart from the kernel adapter (native-backend.ts): this is weight placement
// over time, not a kernel call.
import type { WeightMatrix } from './backend.js';

/** The addon's background-copy calls (native/background-repack.c). */
export interface BackgroundCopyBinding {
  repackLater(w: Uint8Array, dtype: number, rows: number, cols: number): object | null;
  repackResult(handle: object): Uint8Array | null | false;
  releaseView(view: Uint8Array): void;
}

/** A Q4_0 / Q8_0 matrix served from a file mapping in the row layout, and its x16 copy's job. */
interface MappedMatrix {
  matrix: { -readonly [K in keyof WeightMatrix]: WeightMatrix[K] };
  handle: object | null;
}

/**
 * One decoding stream over a mapped matrix (each row prefetched ahead, blocks rearranged in
 * registers) runs as fast as over an x16 copy, and prompts about 8% slower; so loading needs no
 * fresh memory and nothing competes with the first tokens. Several streams decoding together
 * (products with a few activation rows) are compute-bound, and about 25% faster over copies:
 * the first prepareForStreams with several streams starts background copies of every mapped
 * matrix (in huge-page memory, the mapping's pages dropped behind), and every call (each pass,
 * one stream or several) swaps the finished ones in. The model's matrix objects are updated in
 * place (data and layout), between passes only.
 */
export class MappedMatrixCopies {
  /** Mapped matrices still in the row layout, in load order (their copies, once started). */
  private readonly mapped: MappedMatrix[] = [];
  private copiesStarted = false;

  constructor(private readonly binding: BackgroundCopyBinding, private readonly dtypeCode: (dtype: WeightMatrix['dtype']) => number) {}

  /** The matrix the model holds for the view `w` (rows % 16 == 0): its copy replaces the view later. */
  serve(w: WeightMatrix): WeightMatrix {
    const matrix: MappedMatrix['matrix'] = { dtype: w.dtype, rows: w.rows, cols: w.cols, data: w.data, layout: 'rows' };
    this.mapped.push({ matrix, handle: null });
    if (this.copiesStarted) this.startCopies();
    return matrix;
  }

  /** How many mapped matrices are not served from their x16 copies yet (finished ones are taken first). */
  inProgress(): number {
    this.adoptCopies();
    return this.copiesStarted ? this.mapped.length : 0;
  }

  /** Several streams start the copies (the first time); every call serves the finished ones from then on. */
  prepareForStreams(streams: number): void {
    if (streams > 1 && !this.copiesStarted && this.mapped.length > 0) this.startCopies();
    this.adoptCopies();
  }

  /** The copies of the matrices mapped so far, and of later ones. */
  private startCopies(): void {
    this.copiesStarted = true;
    for (let i = 0; i < this.mapped.length; i++) {
      const m = this.mapped[i]!;
      if (m.handle !== null) continue;
      const { dtype, data, rows, cols } = m.matrix;
      m.handle = this.binding.repackLater(data, this.dtypeCode(dtype), rows, cols);
      if (m.handle === null) this.mapped.splice(i--, 1); // stays in the row layout
    }
  }

  /**
   * Takes the finished background copies in the order they were queued, up to the first one
   * still being made (two threads make them, so a later one may wait a moment for its turn).
   */
  private adoptCopies(): void {
    while (this.copiesStarted && this.mapped.length > 0) {
      const { matrix, handle } = this.mapped[0]!;
      const copy = this.binding.repackResult(handle!);
      if (copy === null) return;
      if (copy !== false) {
        const view = matrix.data;
        matrix.data = copy;
        matrix.layout = 'x16';
        this.binding.releaseView(view);
      }
      this.mapped.shift();
    }
  }
}
