// Where a GGUF file's weights live. On a backend that can serve mapped weights (one with
// prepareMappedMatrix: the native backend): views of a memory mapping of the file, or copies
// read into huge-page memory. Elsewhere: copies in ordinary memory.
import type { Backend, WeightMatrix } from '../backend/backend.js';
import { nativeAllocator, nativeMapFile, nativeScaleFinder, type FileMapping } from '../backend/native-backend.js';
import type { GgufSource } from '../formats/gguf.js';
import type { DType } from '../formats/tensor-source.js';

/**
 * Tensor types served as views of the mapping in 'auto' (Q4_0 / Q8_0: see placeWeights). Q5_0 /
 * Q5_1 have no other layout; Q4_K / Q5_K / Q6_K views are replaced by x16 copies made in the
 * background where the backend has kernels for them (native-mapped-copies.ts).
 */
const READ_AS_STORED: ReadonlySet<DType> = new Set<DType>(['f32', 'f16', 'bf16', 'q4_k', 'q5_k', 'q6_k', 'q5_0', 'q5_1']);

const HUGE_PAGE = 2 << 20;

export interface WeightPlacement {
  /** The mapping the views come from (null: every tensor is read); closed once the weights are read. */
  readonly mapping: FileMapping | null;
  /** Prepares a matrix for `backend`: a view of the mapping must not be written. */
  prepare(w: WeightMatrix): WeightMatrix;
}

/**
 * Sets up `file` so that its tensor reads land where `backend` serves them best. On a backend
 * with prepareMappedMatrix the file is mapped and read in at once (the pool's threads in
 * parallel, as llama.cpp's MAP_POPULATE does). Where the page cache holds it in 2 MiB folios,
 * tensors are views of that mapping: nothing is copied before the first token, loading needs no
 * fresh memory (whose first touch runs at 0.3-3 GB/s on some virtual machines) and the kernels
 * stream through 2 MiB TLB entries. BF16 / F16 / F32 / Q4_K / Q5_K / Q6_K / Q5_0 / Q5_1 are views (the K-quants until their
 * x16 copies, made in the background, replace them). Q4_0 / Q8_0 are views only with
 * `mode` true (where the backend servesQuantizedViews): 'auto' reads them into x16 copies,
 * because the x16 kernel over the file's row layout ran at half the copies' speed on some
 * machines (4B Q4_0 decode 8.3 vs 14-19 tokens/s; a 10240x2560 product 17 vs 33 GB/s), and
 * copies made in the background while serving would hold the file's pages and the copies at
 * once. Otherwise (4 KiB folios: older kernels, or a file still cached from small writes)
 * tensors are read into huge-page memory (unless `hugePages` is false), because decoding over a
 * 4 KiB-page mapping ran 1.7x slower here. `mode` true always maps, false never.
 */
export function placeWeights(file: GgufSource, backend: Backend, mode: 'auto' | boolean, hugePages: boolean): WeightPlacement {
  // A tensor read is a fresh buffer the backend may rearrange in place.
  const prepareRead = (w: WeightMatrix): WeightMatrix => backend.prepareMatrix?.(w, true) ?? w;
  const readOnly: WeightPlacement = { mapping: null, prepare: prepareRead };
  const prepareMapped = backend.prepareMappedMatrix?.bind(backend);
  if (prepareMapped === undefined) return readOnly; // every tensor read into ordinary memory
  const findScale = nativeScaleFinder();
  if (findScale) file.useScaleFinder(findScale);
  const allocate = hugePages ? nativeAllocator() : undefined;
  if (allocate) file.useAllocator(allocate);
  if (mode === false) return readOnly;
  const quantViews = mode === true && (backend.servesQuantizedViews ?? false);
  const viewable = (dtype: DType) => READ_AS_STORED.has(dtype) || (quantViews && (dtype === 'q4_0' || dtype === 'q8_0'));
  let asViews = 0;
  let total = 0;
  for (const name of file.names()) {
    const { dtype, sizeBytes } = file.info(name);
    total += sizeBytes;
    if (viewable(dtype)) asViews += sizeBytes;
  }
  if (asViews === 0 || (mode === 'auto' && asViews < 0.5 * total)) return readOnly;
  const mapping = nativeMapFile(file.path, true);
  if (!mapping) return readOnly;
  if (mode === 'auto' && mapping.hugeBytes < 0.75 * mapping.bytes) {
    mapping.close();
    return readOnly;
  }
  const mapped = new WeakSet<Uint8Array>();
  file.useMapper((_path, offset, length, dtype) => {
    // Small tensors (norms) are read: a view would keep its whole 2 MiB page counted in memory.
    const view = viewable(dtype) && length >= HUGE_PAGE ? mapping.view(offset, length) : null;
    if (view) mapped.add(view);
    else mapping.release(offset, length); // read into a copy instead: its pages need not stay
    return view;
  });
  return { mapping, prepare: (w) => (mapped.has(w.data) ? prepareMapped(w) : prepareRead(w)) };
}
