// Q4_0 / Q8_0 / Q4_K / Q6_K matrices served straight from a memory mapping of the model file,
// and the x16 copies of them that the native backend makes in the background (Q4_0 / Q8_0 once
// several streams decode together, Q4_K / Q6_K at once). Kept apart from the kernel adapter (native-backend.ts): this is weight placement
// over time, not a kernel call.
import type { WeightMatrix } from './backend.js';

/** The addon's background-copy calls (native/background-repack.c). */
export interface BackgroundCopyBinding {
  /** hugePages false: the copy goes in 4 KiB pages. */
  repackLater(w: Uint8Array, dtype: number, rows: number, cols: number, hugePages?: boolean): object | null;
  holdCopies(on: boolean): void;
  repackResult(handle: object): Uint8Array | null | false;
  releaseView(view: Uint8Array): void;
}

/** A matrix served from a file mapping in the row layout, and its x16 copy's job. */
interface MappedMatrix {
  matrix: { -readonly [K in keyof WeightMatrix]: WeightMatrix[K] };
  handle: object | null;
}

/**
 * Whether background x16 copies of `dtype` matrices go in huge pages (else 4 KiB ones), under the
 * addon's K-quant kernels `kquantKernels`. A host that backs a virtual machine's memory lazily
 * (this one, with free page reporting) took 8 ms per fresh 2 MiB page on its first touch
 * (0.26 GB/s) and 0.8 ms per 2 MiB of 4 KiB pages (2.6 GB/s): the copies of a 4B Q4_K_M then took
 * several CPU-seconds from its first prompt. Decoding over 4 KiB pages costs TLB misses only
 * where it runs near the memory wall, so:
 * - Q4_K / Q5_K under the 256-bit kernels (AVX2, AVX-VNNI), compute-bound: 4 KiB pages. AVX2
 *   Q4_K_M here: 512-token prompt 27 -> 35 tokens/s, decode unchanged (13.2-14.1 tokens/s both);
 * - Q6_K there (decode 9.9 -> 9.45 tokens/s over 4 KiB pages), Q4_0 / Q8_0, and everything under
 *   AVX-512 (Q4_K_M decode 17.5 -> 15-16): huge pages.
 */
export function copiesInHugePages(kquantKernels: string): (dtype: WeightMatrix['dtype']) => boolean {
  const on256BitKernels = kquantKernels === 'avx2' || kquantKernels === 'avx2-vnni';
  return (dtype) => !(on256BitKernels && (dtype === 'q4_k' || dtype === 'q5_k'));
}

/**
 * Q4_0 / Q8_0: one decoding stream over a mapped matrix (each row prefetched ahead, blocks
 * rearranged in registers) runs as fast as over an x16 copy, and prompts about 8% slower; so
 * loading needs no fresh memory and nothing competes with the first tokens. Several streams
 * decoding together (products with a few activation rows) are compute-bound, and about 25% faster
 * over copies: the first prepareForStreams with several streams starts background copies of
 * every such matrix (in huge-page memory, the mapping's pages dropped behind; the page size of
 * each copy is the backend's choice).
 * Q4_K / Q6_K ('eager'): their row kernels decode at 55-65% of the x16 ones' speed
 * (bench/kquant-kernels.ts), so their copies start as soon as they are served: the model answers
 * from the mapping at once (no fresh memory to touch before the first token, whose first touch
 * ran at 0.2-10 GB/s on this virtual machine) and moves to the copies as they finish. The
 * copying uses the core the load's JavaScript leaves idle; during the model's first pass one of
 * its two threads waits (with AVX2 both of them had doubled a 4B Q6_K's first 16-token prompt,
 * 0.6-1.0 to 1.3-2.1 s), and after it both go on.
 * Every call of prepareForStreams (each pass, one stream or several) swaps the finished copies
 * in, and so does refresh right before a product reads the matrix. The model's matrix objects are
 * updated in place (data and layout): the results are the same bits in either layout.
 */
export class MappedMatrixCopies {
  /** Mapped matrices still in the row layout, in load order (their copies, once started). */
  private readonly mapped: MappedMatrix[] = [];
  /** The same entries by the matrix the model holds (refresh). */
  private readonly byMatrix = new Map<WeightMatrix, MappedMatrix>();
  private copiesStarted = false;
  /** Where the model's first pass is: it holds one of the two copy threads while it runs. */
  private firstPass: 'ahead' | 'running' | 'done' = 'ahead';

  constructor(private readonly binding: BackgroundCopyBinding, private readonly dtypeCode: (dtype: WeightMatrix['dtype']) => number,
              private readonly inHugePages: (dtype: WeightMatrix['dtype']) => boolean) {}

  /** The matrix the model holds for the view `w` (rows % 16 == 0): its copy replaces the view later; `eager`: the copy starts now. */
  serve(w: WeightMatrix, eager = false): WeightMatrix {
    const entry: MappedMatrix = { matrix: { dtype: w.dtype, rows: w.rows, cols: w.cols, data: w.data, layout: 'rows' }, handle: null };
    this.mapped.push(entry);
    this.byMatrix.set(entry.matrix, entry);
    if (eager || this.copiesStarted) this.startCopy(entry);
    return entry.matrix;
  }

  /**
   * Swaps in `w`'s copy if it has just been finished, right before a product reads it: a view
   * read while its copy is made faults back the pages the copy drops, so an eager copy adopted
   * only at the end of a long pass (a prompt) would hold the file's pages and the copies at once.
   */
  refresh(w: WeightMatrix): void {
    if (this.byMatrix.size === 0) return;
    const entry = this.byMatrix.get(w);
    if (entry?.handle && this.adopt(entry)) this.mapped.splice(this.mapped.indexOf(entry), 1);
  }

  /** How many mapped matrices are not served from their x16 copies yet, of those whose copies started (finished ones are taken first). */
  inProgress(): number {
    this.adoptCopies();
    return this.mapped.filter((m) => m.handle !== null).length;
  }

  /** A pass begins: the first one holds one of the process's two copy threads until it ends. */
  passStarted(): void {
    if (this.firstPass !== 'ahead') return;
    this.firstPass = 'running';
    this.binding.holdCopies(true);
  }

  passFinished(): void {
    if (this.firstPass !== 'running') return;
    this.firstPass = 'done';
    this.binding.holdCopies(false);
  }

  /** Several streams start the copies (the first time); every call serves the finished ones from then on. */
  prepareForStreams(streams: number): void {
    if (streams > 1 && !this.copiesStarted && this.mapped.length > 0) {
      this.copiesStarted = true;
      for (const m of [...this.mapped]) if (m.handle === null) this.startCopy(m);
    }
    this.adoptCopies();
  }

  private startCopy(m: MappedMatrix): void {
    const { dtype, data, rows, cols } = m.matrix;
    m.handle = this.binding.repackLater(data, this.dtypeCode(dtype), rows, cols, this.inHugePages(dtype));
    if (m.handle === null) { // stays in the row layout
      this.mapped.splice(this.mapped.indexOf(m), 1);
      this.byMatrix.delete(m.matrix);
    }
  }

  /** Serves m's copy if it is finished (or drops the entry if it failed); false while it is being made. */
  private adopt(m: MappedMatrix): boolean {
    const copy = this.binding.repackResult(m.handle!);
    if (copy === null) return false;
    if (copy !== false) {
      const view = m.matrix.data;
      m.matrix.data = copy;
      m.matrix.layout = 'x16';
      this.binding.releaseView(view);
    }
    this.byMatrix.delete(m.matrix);
    return true;
  }

  /** Takes every finished background copy (two threads make them, in the order they were queued). */
  private adoptCopies(): void {
    for (let i = 0; i < this.mapped.length; i++) {
      const m = this.mapped[i]!;
      if (m.handle !== null && this.adopt(m)) this.mapped.splice(i--, 1);
    }
  }
}
