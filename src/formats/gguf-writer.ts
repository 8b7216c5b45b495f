// GGUF writer (version 3, little-endian). The header (metadata and tensor infos) is built in
// memory; tensor data is streamed to disk one tensor at a time, each produced on demand, so a
// multi-GB model never has to be held in memory whole.
import { closeSync, openSync, rmSync, writeSync } from 'node:fs';
import { GemmaError, invalidArgument } from '../errors.js';
import { tensorBytes } from './dtypes.js';
import { GGML_TYPE_IDS, GGUF_DEFAULT_ALIGNMENT, GGUF_MAGIC, GGUF_VALUE_TYPE_IDS, type GgufScalarType, type GgufType, type GgufValue } from './gguf.js';
import type { DType } from './tensor-source.js';

/** A metadata value to write: arrays may be given as typed arrays. */
export type GgufValueInput = GgufValue | ArrayLike<number> | readonly GgufValueInput[];
export type GgufMetadataEntry = readonly [key: string, type: GgufType, value: GgufValueInput];

export interface GgufTensorInput {
  readonly name: string;
  readonly dtype: DType;
  /** PyTorch (row-major) order; written reversed as ggml's ne. 1 to 4 dimensions. */
  readonly shape: readonly number[];
  /**
   * The stored bytes, or a function that produces them when the tensor's turn comes: one array,
   * or consecutive pieces (for tensors too large to hold, or convert, at once).
   */
  readonly data: Uint8Array | (() => Uint8Array | Iterable<Uint8Array>);
}

export interface GgufWriteInput {
  /**
   * [key, type, value] entries in file order, or a map of values. A map's types come from
   * `types` (e.g. a GgufSource's metadataTypes, to copy a file) or are inferred: string, bool,
   * u32 / i32 / i64 for integers, f32 for other numbers, arrays from their first element.
   */
  readonly metadata: Iterable<GgufMetadataEntry> | ReadonlyMap<string, GgufValueInput>;
  readonly types?: ReadonlyMap<string, GgufType>;
  readonly tensors: readonly GgufTensorInput[];
  /** Called after each tensor is written (index, count). */
  readonly onTensor?: (index: number, count: number, name: string) => void;
}

/** Writes a GGUF v3 file (alignment: `general.alignment` if given, else 32). Synchronous. */
export function writeGguf(path: string, input: GgufWriteInput): void {
  const entries = metadataEntries(input);
  const header = new ByteWriter();
  header.u32(GGUF_MAGIC);
  header.u32(3);
  header.u64(BigInt(input.tensors.length));
  header.u64(BigInt(entries.length));
  let alignment = GGUF_DEFAULT_ALIGNMENT;
  const keys = new Set<string>();
  for (const [key, type, value] of entries) {
    if (keys.has(key)) throw new GemmaError('INVALID_ARGUMENT', `GGUF metadata key ${key} given twice`);
    keys.add(key);
    if (key === 'general.alignment') {
      if (type !== 'u32' || typeof value !== 'number' || value <= 0 || (value & (value - 1)) !== 0) {
        throw invalidArgument('general.alignment', 'a u32 power of two', value);
      }
      alignment = value;
    }
    header.string(key);
    writeTyped(header, type, value, key);
  }
  const sizes: number[] = [];
  const names = new Set<string>();
  let offset = 0;
  for (const t of input.tensors) {
    if (names.has(t.name)) throw new GemmaError('INVALID_ARGUMENT', `GGUF tensor ${t.name} given twice`);
    names.add(t.name);
    if (GGML_TYPE_IDS[t.dtype] === undefined) throw invalidArgument(`tensor ${t.name} dtype`, 'a GGUF tensor type', t.dtype);
    if (t.shape.length < 1 || t.shape.length > 4 || !t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw invalidArgument(`tensor ${t.name} shape`, '1 to 4 non-negative integer dimensions', t.shape);
    }
    const size = tensorBytes(t.dtype, t.shape);
    sizes.push(size);
    header.string(t.name);
    header.u32(t.shape.length);
    for (let d = t.shape.length - 1; d >= 0; d--) header.u64(BigInt(t.shape[d]!));
    header.u32(GGML_TYPE_IDS[t.dtype]);
    header.u64(BigInt(offset));
    offset += pad(size, alignment);
  }
  header.zeros(pad(header.length, alignment) - header.length);

  const fd = openSync(path, 'w');
  const out = new ChunkedWriter(fd);
  let ok = false;
  try {
    out.write(header.bytes());
    const zeros = new Uint8Array(alignment);
    input.tensors.forEach((t, i) => {
      const data = typeof t.data === 'function' ? t.data() : t.data;
      const pieces = data instanceof Uint8Array ? [data] : data;
      let written = 0;
      for (const piece of pieces) {
        if (written + piece.byteLength > sizes[i]!) {
          written = -1; // too much data
          break;
        }
        out.write(piece);
        written += piece.byteLength;
      }
      if (written !== sizes[i]) {
        throw new GemmaError('INVALID_ARGUMENT', `GGUF tensor ${t.name}: data does not match shape [${t.shape.join(', ')}] ${t.dtype} (expected ${sizes[i]} bytes)`);
      }
      out.write(zeros.subarray(0, pad(written, alignment) - written));
      input.onTensor?.(i, input.tensors.length, t.name);
    });
    out.flush();
    ok = true;
  } finally {
    closeSync(fd);
    if (!ok) rmSync(path, { force: true });
  }
}

function pad(n: number, alignment: number): number {
  return Math.ceil(n / alignment) * alignment;
}

/**
 * Writes in whole 8 MiB chunks at multiples of 8 MiB (the last one excepted): the page cache can
 * then keep the new file in 2 MiB folios, which a later load maps with 2 MiB TLB entries.
 */
class ChunkedWriter {
  private readonly chunk = new Uint8Array(8 << 20);
  private used = 0;

  constructor(private readonly fd: number) {}

  write(bytes: Uint8Array): void {
    for (let done = 0; done < bytes.byteLength;) {
      const n = Math.min(bytes.byteLength - done, this.chunk.length - this.used);
      this.chunk.set(bytes.subarray(done, done + n), this.used);
      this.used += n;
      done += n;
      if (this.used === this.chunk.length) this.flush();
    }
  }

  flush(): void {
    writeAll(this.fd, this.chunk.subarray(0, this.used));
    this.used = 0;
  }
}

function writeAll(fd: number, bytes: Uint8Array): void {
  for (let done = 0; done < bytes.byteLength;) done += writeSync(fd, bytes, done, Math.min(bytes.byteLength - done, 1 << 30));
}

function metadataEntries(input: GgufWriteInput): GgufMetadataEntry[] {
  const m = input.metadata;
  if (!(m instanceof Map)) return [...(m as Iterable<GgufMetadataEntry>)];
  return [...(m as ReadonlyMap<string, GgufValueInput>)].map(([k, v]) => [k, input.types?.get(k) ?? inferType(v, k), v] as const);
}

function inferType(v: GgufValueInput, key: string): GgufType {
  if (typeof v === 'string') return 'string';
  if (typeof v === 'boolean') return 'bool';
  if (typeof v === 'bigint') return v < 0n ? 'i64' : 'u64';
  if (typeof v === 'number') {
    if (!Number.isInteger(v)) return 'f32';
    if (v >= 0 && v <= 0xffffffff) return 'u32';
    return v >= -0x80000000 && v < 0 ? 'i32' : 'i64';
  }
  if (v instanceof Float32Array) return { array: 'f32' };
  if (v instanceof Float64Array) return { array: 'f64' };
  if (v instanceof Int32Array) return { array: 'i32' };
  if (v instanceof Uint8Array) return { array: 'u8' };
  const arr = v as ArrayLike<unknown>;
  if (arr.length === 0) throw invalidArgument(`GGUF metadata ${key}`, 'a typed entry (an empty array has no inferable type)', v);
  const all = Array.from(arr as ArrayLike<GgufValueInput>);
  if (all.every((x) => typeof x === 'number')) {
    if (!all.every((x) => Number.isInteger(x))) return { array: 'f32' };
    return { array: all.some((x) => (x as number) < 0) ? 'i32' : 'u32' };
  }
  return { array: inferType(all[0]!, key) };
}

const INT_RANGE: Partial<Record<GgufScalarType, [number, number]>> = {
  u8: [0, 0xff], i8: [-0x80, 0x7f], u16: [0, 0xffff], i16: [-0x8000, 0x7fff], u32: [0, 0xffffffff], i32: [-0x80000000, 0x7fffffff],
};

function writeTyped(w: ByteWriter, type: GgufType, value: GgufValueInput, key: string): void {
  const id = typeof type === 'string' ? GGUF_VALUE_TYPE_IDS.indexOf(type) : 9;
  if (id < 0) throw invalidArgument(`GGUF metadata ${key} type`, 'a GGUF value type', type);
  w.u32(id);
  writeValue(w, type, value, key);
}

function writeValue(w: ByteWriter, type: GgufType, value: GgufValueInput, key: string): void {
  const wrong = (): GemmaError => invalidArgument(`GGUF metadata ${key}`, `a value of type ${typeName(type)}`, value);
  if (typeof type !== 'string') {
    if (typeof value !== 'object' || value === null || typeof (value as ArrayLike<unknown>).length !== 'number') throw wrong();
    const arr = value as ArrayLike<GgufValueInput>;
    const et = type.array;
    w.u32(typeof et === 'string' ? GGUF_VALUE_TYPE_IDS.indexOf(et) : 9);
    w.u64(BigInt(arr.length));
    for (let i = 0; i < arr.length; i++) writeValue(w, et, arr[i]!, key);
    return;
  }
  const range = INT_RANGE[type];
  if (range !== undefined) {
    if (typeof value !== 'number' || !Number.isInteger(value) || value < range[0] || value > range[1]) throw wrong();
    w.int(type, value);
    return;
  }
  switch (type) {
    case 'f32':
    case 'f64':
      if (typeof value !== 'number') throw wrong();
      if (type === 'f32') w.f32(value);
      else w.f64(value);
      return;
    case 'bool':
      if (typeof value !== 'boolean') throw wrong();
      w.u8(value ? 1 : 0);
      return;
    case 'string':
      if (typeof value !== 'string') throw wrong();
      w.string(value);
      return;
    case 'u64':
    case 'i64': {
      if (typeof value !== 'bigint' && !(typeof value === 'number' && Number.isSafeInteger(value))) throw wrong();
      const b = BigInt(value as number | bigint);
      if (type === 'u64' ? b < 0n || b >= 1n << 64n : b < -(1n << 63n) || b >= 1n << 63n) throw wrong();
      if (type === 'u64') w.u64(b);
      else w.i64(b);
      return;
    }
  }
}

function typeName(t: GgufType): string {
  return typeof t === 'string' ? t : `array<${typeName(t.array)}>`;
}

/** Growable little-endian byte buffer. */
class ByteWriter {
  private buf = Buffer.alloc(1 << 16);
  length = 0;

  private room(n: number): number {
    if (this.length + n > this.buf.length) {
      const next = Buffer.alloc(Math.max(this.buf.length * 2, this.length + n));
      this.buf.copy(next, 0, 0, this.length);
      this.buf = next;
    }
    const at = this.length;
    this.length += n;
    return at;
  }

  u8(v: number): void { const at = this.room(1); this.buf.writeUInt8(v, at); }
  u32(v: number): void { const at = this.room(4); this.buf.writeUInt32LE(v, at); }
  u64(v: bigint): void { const at = this.room(8); this.buf.writeBigUInt64LE(v, at); }
  i64(v: bigint): void { const at = this.room(8); this.buf.writeBigInt64LE(v, at); }
  f32(v: number): void { const at = this.room(4); this.buf.writeFloatLE(v, at); }
  f64(v: number): void { const at = this.room(8); this.buf.writeDoubleLE(v, at); }

  int(type: GgufScalarType, v: number): void {
    const size = type === 'u8' || type === 'i8' ? 1 : type === 'u16' || type === 'i16' ? 2 : 4;
    const at = this.room(size);
    switch (type) {
      case 'u8': this.buf.writeUInt8(v, at); return;
      case 'i8': this.buf.writeInt8(v, at); return;
      case 'u16': this.buf.writeUInt16LE(v, at); return;
      case 'i16': this.buf.writeInt16LE(v, at); return;
      case 'u32': this.buf.writeUInt32LE(v, at); return;
      default: this.buf.writeInt32LE(v, at);
    }
  }

  string(s: string): void {
    const n = Buffer.byteLength(s, 'utf8');
    this.u64(BigInt(n));
    const at = this.room(n);
    this.buf.write(s, at, n, 'utf8');
  }

  zeros(n: number): void {
    const at = this.room(n);
    this.buf.fill(0, at, at + n);
  }

  bytes(): Uint8Array {
    return new Uint8Array(this.buf.buffer, this.buf.byteOffset, this.length);
  }
}
