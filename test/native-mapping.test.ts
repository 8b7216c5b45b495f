// The addon's file mappings and the background x16 copies made from them: views over the file's
// pages (windows past 4 GiB), handle lifetimes, and each copy's bytes and page size. Kept apart
// from the kernel comparisons (native-kernels.test.ts), which the forced-kernel runners repeat.
import { test } from 'node:test';
import { closeSync, ftruncateSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import assert from 'node:assert/strict';
import { nativeMapFile } from '../src/backend/native-backend.js';
import { MappedMatrixCopies, copiesInHugePages } from '../src/backend/native-mapped-copies.js';
import { binding, skip } from './native-test-kit.js';

test('file mappings: views hold the file\'s bytes without copying, all over one buffer; bad ranges and closed mappings are RangeErrors', { skip }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'gemma3-map-'));
  try {
    const path = join(dir, 'data.bin');
    const bytes = new Uint8Array((5 << 20) + 123).map((_, i) => (i * 7 + (i >> 12)) & 255);
    writeFileSync(path, bytes);
    const mapping = nativeMapFile(path, true)!;
    assert.equal(mapping.bytes, bytes.length);
    assert.ok(mapping.hugeBytes >= 0 && mapping.hugeBytes <= bytes.length);
    const view = mapping.view(3000003, 2 << 20)!;
    assert.deepEqual(view, bytes.subarray(3000003, 3000003 + (2 << 20)));
    const tail = mapping.view(bytes.length - 5, 5)!;
    assert.deepEqual(tail, bytes.subarray(bytes.length - 5));
    // Every view is a typed array over one external buffer of the whole file: a buffer per view
    // made V8 run a full garbage collection every few views of a model's load.
    assert.equal(tail.buffer, view.buffer);
    assert.equal(view.buffer.byteLength, bytes.length);
    assert.equal(view.byteOffset, 3000003);
    tail[0] = 0; // copy-on-write: the file is not changed
    assert.throws(() => mapping.view(bytes.length - 5, 6), RangeError);
    assert.throws(() => mapping.view(-1, 6), RangeError);
    mapping.close();
    assert.throws(() => mapping.view(0, 6), RangeError);
    assert.equal(view[7], bytes[3000010]); // views outlive the closed handle
    assert.deepEqual(readFileSync(path), Buffer.from(bytes));
    assert.equal(nativeMapFile(join(dir, 'missing.bin'), false), null);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// Models over 4 GiB (every 12B and 27B file, a 4B in BF16): Node.js 20 makes no ArrayBuffer
// over 4 GiB, so the views share windows of the file, and a view too long for one gets its own.
// A sparse file: no disk space, only the pages written.
test('a file mapping over 4 GiB: views anywhere in it, across window edges and longer than 2 GiB, read the file', { skip }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'gemma3-map-large-'));
  try {
    const path = join(dir, 'large.bin');
    const GiB = 2 ** 30;
    const size = 5 * GiB + 12345;
    const marks = [0, GiB - 3, 3 * GiB - 2, 4 * GiB + 7, size - 9];
    const fd = openSync(path, 'w');
    try {
      ftruncateSync(fd, size);
      for (const at of marks) writeSync(fd, Buffer.from([1, 2, 3, 4, 5, 6, 7, 8, 9]), 0, Math.min(9, size - at), at);
    } finally {
      closeSync(fd);
    }
    const mapping = nativeMapFile(path, false)!;
    try {
      assert.equal(mapping.bytes, size);
      for (const at of marks) assert.deepEqual([...mapping.view(at, 9)!], [1, 2, 3, 4, 5, 6, 7, 8, 9], `9 bytes at ${at}`);
      const acrossEdge = mapping.view(GiB - 3, 9)!; // from window 0 into window 1's stride
      assert.deepEqual([...acrossEdge], [1, 2, 3, 4, 5, 6, 7, 8, 9]);
      const long = mapping.view(GiB - 3, Math.floor(2.5 * GiB))!; // too long for a window: its own buffer
      assert.equal(long.length, Math.floor(2.5 * GiB));
      assert.deepEqual([...long.subarray(0, 3)], [1, 2, 3]);
      assert.deepEqual([...long.subarray(2 * GiB + 1, 2 * GiB + 4)], [1, 2, 3]); // the mark at 3 GiB - 2
      const far = mapping.view(4 * GiB + 7, 9)!;
      assert.ok(far.buffer.byteLength <= 4 * GiB, 'a shared window, not the whole file');
    } finally {
      mapping.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});


/** The addon's file-mapping functions, called directly so a test controls every handle's lifetime. */
interface MappingBinding {
  openMapping(path: string, populate: boolean): { mapping: object } | null;
  mapRange(mapping: object, offset: number, length: number): Uint8Array | null;
  closeMapping(mapping: object): void;
  repackLater(w: Uint8Array, dtype: number, rows: number, cols: number, hugePages?: boolean): object | null;
  repackResult(handle: object): Uint8Array | null | false;
  repack(w: Uint8Array, dtype: number, rows: number, cols: number): Uint8Array | null;
  info(): { x16: boolean; x16Views: boolean; kquantX16: boolean; kquantKernels: string };
}

/** A full garbage collection, then the turns of the event loop that run the finalizers it queued. */
async function collectGarbage(): Promise<void> {
  setFlagsFromString('--expose_gc');
  (runInNewContext('gc') as () => void)();
  for (let i = 0; i < 3; i++) await new Promise((resolve) => setImmediate(resolve));
}

// The record of a mapping was freed with its pages, while the handle (closed) could still be
// alive; its finalizer then read freed memory: the record of the next mapping, which malloc
// hands out at the same address, was then closed by the old handle (or, with other data
// there, something unmapped): the segfault of two test processes run at once.
test('a mapping handle collected after its views and copies touches only its own mapping', { skip, timeout: 60_000 }, async () => {
  const raw = binding as unknown as MappingBinding;
  const dir = mkdtempSync(join(tmpdir(), 'gemma3-map-'));
  try {
    const rows = 64, cols = 2048, rowBytes = (cols / 32) * 34; // a Q8_0 matrix, 139 KiB
    const path = join(dir, 'q8.bin');
    writeFileSync(path, new Uint8Array(4096 + rows * rowBytes).map((_, i) => (i * 13) & 255));
    for (let round = 0; round < 16; round++) {
      // Half the rounds the last hold on the first mapping is a background copy's, dropped on
      // the copying thread, not a view's.
      const viaCopy = round % 2 === 1 && raw.info().x16Views;
      let first: { mapping: object } | null = raw.openMapping(path, false)!;
      let view: Uint8Array | null = raw.mapRange(first.mapping, 4096, rows * rowBytes)!;
      const copy = viaCopy ? raw.repackLater(view, 3, rows, cols) : null;
      raw.closeMapping(first.mapping);
      view = null;
      await collectGarbage(); // the view goes; the first handle stays (held by `first`)
      if (copy) {
        let taken: Uint8Array | null | false = null;
        for (let i = 0; i < 500 && (taken = raw.repackResult(copy)) === null; i++) await new Promise((resolve) => setTimeout(resolve, 2));
        assert.ok(taken instanceof Uint8Array, 'the copy finishes');
      }
      // Several: the freed record's memory goes to one of them (with other allocations between).
      const later = Array.from({ length: 8 }, () => raw.openMapping(path, false)!);
      first = null;
      await collectGarbage(); // the first handle's finalizer runs
      for (const [i, { mapping }] of later.entries()) {
        assert.ok(raw.mapRange(mapping, 0, 16) instanceof Uint8Array, `round ${round}: later mapping ${i} is still open`);
        raw.closeMapping(mapping);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** This process's anonymous memory in transparent huge pages, in bytes (null where the kernel does not say). */
function anonHugeBytes(): number | null {
  const line = /^AnonHugePages:\s+(\d+) kB/m.exec(readFileSync('/proc/self/smaps_rollup', 'utf8'));
  return line ? Number(line[1]) * 1024 : null;
}

// The copies of mapped K-quant matrices go in huge pages or, where the backend asks (Q4_K / Q5_K
// under the 256-bit kernels), in 4 KiB pages, whose first touch was 10x cheaper on this machine.
test('a background K-quant copy is made in huge pages or, when asked, in 4 KiB pages: the same bytes as a repack at load', { skip, timeout: 60_000 }, async (t) => {
  const raw = binding as unknown as MappingBinding;
  const info = raw.info();
  if (!info.kquantX16) return t.skip(`no K-quant x16 kernels here ('${info.kquantKernels}' K-quant kernels): nothing is copied`);
  const thp = (() => { try { return readFileSync('/sys/kernel/mm/transparent_hugepage/enabled', 'utf8'); } catch { return ''; } })();
  const dir = mkdtempSync(join(tmpdir(), 'gemma3-copy-pages-'));
  try {
    const rows = 2048, cols = 4096, bytes = rows * (cols / 256) * 144; // Q4_K, 4.7 MB: two whole 2 MiB pages at least
    const path = join(dir, 'q4k.bin');
    const stored = new Uint8Array(bytes).map((_, i) => (i * 29 + (i >> 9)) & 255);
    writeFileSync(path, Buffer.concat([new Uint8Array(4096), stored]));
    const expected = raw.repack(stored.slice(), 7, rows, cols)!;
    assert.ok(expected instanceof Uint8Array, 'the repack at load');
    for (const hugePages of [true, false]) {
      const { mapping } = raw.openMapping(path, false)!;
      const view = raw.mapRange(mapping, 4096, bytes)!;
      const before = anonHugeBytes();
      const handle = raw.repackLater(view, 7, rows, cols, hugePages)!;
      assert.ok(handle, 'the copy is queued');
      let copy: Uint8Array | null | false = null;
      for (let i = 0; i < 1000 && (copy = raw.repackResult(handle)) === null; i++) await new Promise((resolve) => setTimeout(resolve, 5));
      assert.ok(copy instanceof Uint8Array, 'the copy finishes');
      assert.ok(Buffer.from(copy.buffer, copy.byteOffset, copy.byteLength).equals(Buffer.from(expected.buffer, expected.byteOffset, expected.byteLength)),
        `hugePages ${hugePages}: the repack's bytes`);
      const grown = before === null ? null : anonHugeBytes()! - before;
      if (grown === null || !/\[(always|madvise)\]/.test(thp)) t.diagnostic(`huge pages not checked: transparent huge pages '${thp.trim()}'`);
      else if (hugePages) assert.ok(grown >= 2 << 20, `in huge pages: ${grown} bytes more of them`);
      else assert.equal(grown, 0, 'in 4 KiB pages: no huge page more');
      raw.closeMapping(mapping);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('mapped K-quant matrices ask for their copies in 4 KiB pages only for Q4_K / Q5_K under the 256-bit kernels', () => {
  const asked: string[] = [];
  for (const kernels of ['avx512', 'avx2', 'avx2-vnni']) {
    const copies = new MappedMatrixCopies({
      repackLater: (_w, dtype, _rows, _cols, hugePages) => { asked.push(`${kernels} ${dtype} ${hugePages ? 'huge' : '4k'}`); return null; },
      holdCopies: () => {}, repackResult: () => null, releaseView: () => {},
    }, (dtype) => ({ q4_k: 7, q5_k: 11, q6_k: 8 })[dtype as string]!, copiesInHugePages(kernels));
    for (const dtype of ['q4_k', 'q5_k', 'q6_k'] as const) copies.serve({ dtype, rows: 16, cols: 256, data: new Uint8Array(16 * 210), layout: 'rows' }, true);
  }
  assert.deepEqual(asked, ['avx512 7 huge', 'avx512 11 huge', 'avx512 8 huge', 'avx2 7 4k', 'avx2 11 4k', 'avx2 8 huge', 'avx2-vnni 7 4k', 'avx2-vnni 11 4k', 'avx2-vnni 8 huge']);
});
