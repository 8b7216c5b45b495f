// GGUF reader and writer: round trips of every metadata and tensor type, and every kind of
// corrupt file (each must give GemmaError BAD_FORMAT, never a crash or a huge allocation).
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { GemmaError } from '../src/errors.js';
import { tensorBytes } from '../src/formats/dtypes.js';
import { openGguf, type GgufType, type GgufValue } from '../src/formats/gguf.js';
import { writeGguf, type GgufMetadataEntry, type GgufTensorInput } from '../src/formats/gguf-writer.js';
import type { DType } from '../src/formats/tensor-source.js';
import { tempDir } from './st-writer.js';
import { throwsGemma } from './helpers.js';

const bytesOf = (n: number, seed: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed * 7) & 0xff);

const ALL_TYPES: GgufMetadataEntry[] = [
  ['t.u8', 'u8', 255], ['t.i8', 'i8', -128], ['t.u16', 'u16', 65535], ['t.i16', 'i16', -32768],
  ['t.u32', 'u32', 4294967295], ['t.i32', 'i32', -2147483648], ['t.f32', 'f32', 1.5], ['t.f64', 'f64', Math.PI],
  ['t.bool.true', 'bool', true], ['t.bool.false', 'bool', false], ['t.string', 'string', 'héllo ▁ 世界 🦙'], ['t.empty', 'string', ''],
  ['t.u64.small', 'u64', 12345], ['t.u64.big', 'u64', 18446744073709551615n], ['t.i64.small', 'i64', -5], ['t.i64.big', 'i64', -9223372036854775808n],
  ['t.arr.u8', { array: 'u8' }, [0, 1, 255]], ['t.arr.i8', { array: 'i8' }, [-1, 2]], ['t.arr.u16', { array: 'u16' }, [7]],
  ['t.arr.i16', { array: 'i16' }, [-7, 7]], ['t.arr.u32', { array: 'u32' }, [1, 2, 3]], ['t.arr.i32', { array: 'i32' }, new Int32Array([-1, 6])],
  ['t.arr.f32', { array: 'f32' }, new Float32Array([0.5, -2])], ['t.arr.f64', { array: 'f64' }, [1e300]], ['t.arr.bool', { array: 'bool' }, [true, false]],
  ['t.arr.string', { array: 'string' }, ['a', '', '<0x0A>', '▁the']], ['t.arr.u64', { array: 'u64' }, [1, 2n ** 60n]], ['t.arr.i64', { array: 'i64' }, [-(2n ** 62n), 3]],
  ['t.arr.empty', { array: 'f32' }, []], ['t.arr.nested', { array: { array: 'i32' } }, [[1, 2], [], [3]]],
  ['t.arr.nested2', { array: { array: { array: 'string' } } }, [[['x'], ['y', 'z']]]],
];

const EXPECTED: Record<string, GgufValue> = {
  't.u64.big': 18446744073709551615n, 't.i64.big': -9223372036854775808n, 't.arr.u64': [1, 2n ** 60n], 't.arr.i64': [-(2n ** 62n), 3],
  't.arr.i32': [-1, 6], 't.arr.f32': [0.5, -2],
};

const TENSOR_CASES: [DType, number[]][] = [
  ['f32', [3]], ['f16', [2, 5]], ['bf16', [2, 3, 4]], ['q8_0', [3, 64]], ['q4_0', [2, 1, 1, 32]], ['q4_k', [2, 256]], ['q6_k', [1, 512]],
];

function tensorsFor(cases: [DType, number[]][]): GgufTensorInput[] {
  return cases.map(([dtype, shape], i) => ({ name: `t${i}.${dtype}`, dtype, shape, data: bytesOf(tensorBytes(dtype, shape), i) }));
}

describe('GGUF round trip', () => {
  test('every metadata value type, nested arrays included', () => {
    const tmp = tempDir('gguf-meta');
    try {
      const path = join(tmp.dir, 'm.gguf');
      writeGguf(path, { metadata: ALL_TYPES, tensors: [] });
      const g = openGguf(path);
      assert.equal(g.version, 3);
      assert.deepEqual([...g.metadata.keys()], ALL_TYPES.map((e) => e[0]));
      for (const [key, type, value] of ALL_TYPES) {
        const want = EXPECTED[key] ?? (ArrayBuffer.isView(value) ? [...(value as Float32Array)] : value);
        assert.deepEqual(g.metadata.get(key), want, key);
        assert.deepEqual(g.metadataTypes.get(key), type, key);
      }
      assert.equal(g.names().length, 0);
      // Copying a file through (metadata, metadataTypes) is exact.
      const copy = join(tmp.dir, 'copy.gguf');
      writeGguf(copy, { metadata: g.metadata, types: g.metadataTypes, tensors: [] });
      assert.deepEqual(readFileSync(copy), readFileSync(path));
      g.close();
    } finally {
      tmp.cleanup();
    }
  });

  test('types are inferred for a plain map', () => {
    const tmp = tempDir('gguf-infer');
    try {
      const path = join(tmp.dir, 'i.gguf');
      const m = new Map<string, GgufValue | Float32Array>([['a', 'x'], ['b', 7], ['c', -7], ['d', 0.25], ['e', true], ['f', ['p', 'q']], ['g', [1, -2]], ['h', new Float32Array([1])]]);
      writeGguf(path, { metadata: m, tensors: [] });
      const g = openGguf(path);
      assert.deepEqual([...g.metadataTypes.values()], ['string', 'u32', 'i32', 'f32', 'bool', { array: 'string' }, { array: 'i32' }, { array: 'f32' }]);
      g.close();
    } finally {
      tmp.cleanup();
    }
  });

  test('every tensor type, 1 to 4 dimensions, ggml order reversed, aligned data', () => {
    const tmp = tempDir('gguf-tensors');
    try {
      for (const alignment of [32, 64]) {
        const path = join(tmp.dir, `t${alignment}.gguf`);
        const tensors = tensorsFor(TENSOR_CASES);
        const metadata: GgufMetadataEntry[] = alignment === 32 ? [] : [['general.alignment', 'u32', alignment]];
        writeGguf(path, { metadata, tensors });
        const g = openGguf(path);
        assert.equal(g.alignment, alignment);
        assert.equal(g.dataOffset % alignment, 0);
        assert.deepEqual(g.names(), tensors.map((t) => t.name));
        for (const t of tensors) {
          const info = g.info(t.name);
          assert.equal(info.dtype, t.dtype);
          assert.deepEqual(info.shape, t.shape);
          assert.deepEqual(info.ne, [...t.shape].reverse());
          assert.equal(info.fileOffset % alignment, 0);
          const raw = g.read(t.name);
          assert.deepEqual(raw.data, t.data);
          assert.equal(raw.data.byteOffset % 8, 0);
        }
        g.close();
        throwsGemma(() => g.read(tensors[0]!.name), 'DISPOSED');
      }
    } finally {
      tmp.cleanup();
    }
  });

  test('tensor data produced lazily, in pieces; a wrong size is refused and no file is left', () => {
    const tmp = tempDir('gguf-lazy');
    try {
      const path = join(tmp.dir, 'lazy.gguf');
      const whole = bytesOf(4 * 34, 3);
      let calls = 0;
      writeGguf(path, {
        metadata: [['general.architecture', 'string', 'test']],
        tensors: [{ name: 'w', dtype: 'q8_0', shape: [2, 64], data: () => (calls++, [whole.subarray(0, 50), whole.subarray(50)]) }],
        onTensor: (i, n, name) => assert.deepEqual([i, n, name], [0, 1, 'w']),
      });
      assert.equal(calls, 1);
      const g = openGguf(path);
      assert.deepEqual(g.read('w').data, whole);
      g.close();
      const bad = join(tmp.dir, 'bad.gguf');
      throwsGemma(() => writeGguf(bad, { metadata: [], tensors: [{ name: 'w', dtype: 'f32', shape: [4], data: () => new Uint8Array(12) }] }), 'INVALID_ARGUMENT', 'w');
      assert.ok(!existsSync(bad));
      throwsGemma(() => writeGguf(bad, { metadata: [['k', 'u8', 256]], tensors: [] }), 'INVALID_ARGUMENT', 'k');
      throwsGemma(() => writeGguf(bad, { metadata: [['k', 'string', 1]], tensors: [] }), 'INVALID_ARGUMENT', 'k');
      throwsGemma(() => writeGguf(bad, { metadata: [['k', 'u8', 1], ['k', 'u8', 2]], tensors: [] }), 'INVALID_ARGUMENT', 'k');
      throwsGemma(() => writeGguf(bad, { metadata: [], tensors: [{ name: 'w', dtype: 'q8_0', shape: [40], data: new Uint8Array(0) }] }), 'BAD_FORMAT');
    } finally {
      tmp.cleanup();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Hand-built files for the corrupt cases.

class Bytes {
  private parts: number[] = [];
  u8(v: number): this { this.parts.push(v & 0xff); return this; }
  u32(v: number): this { for (let i = 0; i < 4; i++) this.u8(Math.floor(v / 2 ** (8 * i))); return this; }
  u64(v: bigint | number): this { let b = BigInt.asUintN(64, BigInt(v)); for (let i = 0; i < 8; i++, b >>= 8n) this.u8(Number(b & 0xffn)); return this; }
  str(s: string): this { const b = Buffer.from(s, 'utf8'); this.u64(b.length); for (const x of b) this.u8(x); return this; }
  pad(to: number): this { while (this.parts.length % to) this.u8(0); return this; }
  zeros(n: number): this { for (let i = 0; i < n; i++) this.u8(0); return this; }
  get length(): number { return this.parts.length; }
  bytes(): Uint8Array { return Uint8Array.from(this.parts); }
}

interface RawTensorInfo { name: string; ne: (number | bigint)[]; type: number; offset: number | bigint }

/** A v3 header with one u32 key, the given tensor infos, padding to 32, then `data` bytes. */
function rawFile(opts: { magic?: number; version?: number; nTensors?: bigint | number; nKv?: bigint | number;
  kv?: (b: Bytes) => void; tensors?: RawTensorInfo[]; data?: number }): Uint8Array {
  const tensors = opts.tensors ?? [];
  const b = new Bytes().u32(opts.magic ?? 0x46554747).u32(opts.version ?? 3).u64(opts.nTensors ?? tensors.length).u64(opts.nKv ?? 1);
  if (opts.kv) opts.kv(b);
  else b.str('general.architecture').u32(8).str('test');
  for (const t of tensors) {
    b.str(t.name).u32(t.ne.length);
    for (const d of t.ne) b.u64(d);
    b.u32(t.type).u64(t.offset);
  }
  return b.pad(32).zeros(opts.data ?? 0).bytes();
}

describe('corrupt GGUF files', () => {
  const tmp = tempDir('gguf-bad');
  let n = 0;
  const open = (bytes: Uint8Array) => () => openGguf(tmp.write(`f${n++}.gguf`, bytes));
  const bad = (bytes: Uint8Array, ...fragments: string[]) => throwsGemma(open(bytes), 'BAD_FORMAT', 'f', ...fragments);
  const f32 = (name: string, ne: (number | bigint)[], offset: number | bigint = 0): RawTensorInfo => ({ name, ne, type: 0, offset });

  test('a valid hand-built file opens (the baseline for the cases below)', () => {
    const g = open(rawFile({ tensors: [f32('a', [4]), f32('b', [8], 32)], data: 64 }))();
    assert.deepEqual(g.names(), ['a', 'b']);
    assert.equal(g.metadata.get('general.architecture'), 'test');
    g.close();
  });

  test('version 2 files read like version 3', () => {
    const g = open(rawFile({ version: 2, tensors: [f32('a', [4])], data: 32 }))();
    assert.equal(g.version, 2);
    assert.deepEqual(g.info('a').shape, [4]);
    g.close();
  });

  test('bad magic, unsupported versions', () => {
    bad(rawFile({ magic: 0x46554746 }), 'magic');
    bad(Buffer.from('{"__metadata__": {}}'), 'magic');
    bad(rawFile({ version: 1 }), 'version 1');
    bad(rawFile({ version: 4 }), 'version 4');
    bad(rawFile({ version: 0x03000000 }), 'big-endian');
    bad(new Uint8Array(0), 'truncated');
    bad(new Uint8Array(3), 'truncated');
  });

  test('every truncation of a valid file is BAD_FORMAT', () => {
    const full = rawFile({ tensors: [f32('a', [4]), f32('b', [8], 32)], data: 64 });
    for (let len = 0; len < full.length; len++) throwsGemma(open(full.subarray(0, len)), 'BAD_FORMAT');
  });

  test('unknown value types, unknown and unsupported tensor types', () => {
    bad(rawFile({ kv: (b) => b.str('k').u32(13).u32(0) }), 'unknown metadata value type 13', 'key k');
    bad(rawFile({ kv: (b) => b.str('k').u32(9).u32(42).u64(1).u32(0) }), 'unknown metadata value type 42');
    bad(rawFile({ tensors: [{ name: 'w', ne: [4], type: 99, offset: 0 }], data: 32 }), 'unknown ggml type 99', 'tensor w');
    throwsGemma(open(rawFile({ tensors: [{ name: 'w', ne: [256], type: 11, offset: 0 }], data: 256 })), 'UNSUPPORTED_MODEL', 'Q3_K', 'tensor w');
  });

  test('absurd counts and lengths never allocate', () => {
    bad(rawFile({ nTensors: 2n ** 62n }), 'tensor count');
    bad(rawFile({ nKv: 2n ** 40n }), 'key/value count');
    bad(rawFile({ nKv: 0xffffffffffffffffn }), 'key/value count');
    bad(rawFile({ kv: (b) => b.u64(2n ** 63n), data: 64 }), 'string length');
    bad(rawFile({ kv: (b) => b.str('k').u32(8).u64(1n << 40n) }), 'string length', 'key k');
    bad(rawFile({ kv: (b) => b.str('k').u32(9).u32(4).u64(2n ** 50n) }), 'array length');
    bad(rawFile({ kv: (b) => b.str('k').u32(9).u32(8).u64(100000) }), 'array length');
    bad(rawFile({ tensors: [{ name: 'w'.repeat(10), ne: [4], type: 0, offset: 0 }], nTensors: 1000 }), 'tensor count');
    bad(rawFile({ kv: (b) => { b.str('k').u32(9); for (let i = 0; i < 12; i++) b.u32(9).u64(1); b.u32(4).u64(1).u32(0); }, data: 256 }), 'nested');
  });

  test('bad offsets, overlaps, duplicates, dimensions, alignment', () => {
    bad(rawFile({ tensors: [f32('w', [4], 64)], data: 64 }), 'out of bounds', 'tensor w');
    bad(rawFile({ tensors: [f32('w', [4], 2n ** 63n)], data: 64 }), 'out of bounds');
    bad(rawFile({ tensors: [f32('w', [4], 8)], data: 64 }), 'alignment');
    bad(rawFile({ tensors: [f32('a', [16]), f32('b', [4], 32)], data: 96 }), 'overlap');
    bad(rawFile({ tensors: [f32('a', [4]), f32('a', [4], 32)], data: 64 }), 'duplicate tensor a');
    bad(rawFile({ nKv: 2, kv: (b) => b.str('k').u32(4).u32(1).str('k').u32(4).u32(2) }), 'duplicate key k');
    bad(rawFile({ tensors: [f32('w', [2n ** 40n, 2n ** 40n])] }), 'overflow');
    bad(rawFile({ tensors: [f32('w', [-1n])] }), 'dimension 0');
    bad(rawFile({ tensors: [f32('w', [])] }), '0 dimensions');
    bad(rawFile({ tensors: [f32('w', [1, 1, 1, 1, 1])] }), '5 dimensions');
    bad(rawFile({ tensors: [{ name: 'w', ne: [40, 2], type: 8, offset: 0 }], data: 200 }), 'tensor w', 'blocks');
    bad(rawFile({ kv: (b) => b.str('general.alignment').u32(4).u32(48) }), 'general.alignment');
    bad(rawFile({ kv: (b) => b.str('general.alignment').u32(10).u64(32) }), 'general.alignment');
    throwsGemma(() => openGguf(join(tmp.dir, 'nope.gguf')), 'FILE_NOT_FOUND');
    const g = open(rawFile({ tensors: [f32('a', [4])], data: 32 }))();
    throwsGemma(() => g.read('b'), 'MISSING_TENSOR', 'b');
    g.close();
  });

  test('random corruption of a real header: a GemmaError or a clean open, never anything else', () => {
    const path = join(tmp.dir, 'fuzz-src.gguf');
    writeGguf(path, { metadata: ALL_TYPES, tensors: tensorsFor(TENSOR_CASES) });
    const good = readFileSync(path);
    const headerEnd = openGguf(path).dataOffset;
    let seed = 1;
    const rnd = (k: number): number => (seed = (seed * 1103515245 + 12345) >>> 0) % k;
    const fuzz = join(tmp.dir, 'fuzz.gguf');
    for (let i = 0; i < 300; i++) {
      const bytes = Buffer.from(good);
      for (let j = 0; j < 1 + rnd(4); j++) bytes[rnd(headerEnd)] = rnd(256);
      writeFileSync(fuzz, bytes);
      try {
        const g = openGguf(fuzz);
        for (const name of g.names()) g.read(name);
        g.close();
      } catch (e) {
        assert.ok(e instanceof GemmaError, `iteration ${i}: ${String(e)}`);
        assert.ok(['BAD_FORMAT', 'UNSUPPORTED_MODEL'].includes(e.code), `iteration ${i}: ${e.code} ${e.message}`);
      }
    }
  });

  test('cleanup', () => tmp.cleanup());
});
