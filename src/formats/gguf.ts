// GGUF reader (llama.cpp's model format, versions 2 and 3). Layout (ggml/src/gguf.cpp):
//   "GGUF" · u32 version · u64 n_tensors · u64 n_kv
//   n_kv × (string key · u32 value type · value)        string = u64 byte length + UTF-8 bytes
//   n_tensors × (string name · u32 n_dims · n_dims × i64 ne · u32 ggml type · u64 offset)
//   padding to `general.alignment` (default 32) · data section (offsets are relative to it)
// ne lists dimensions fastest-first; `shape` here is the PyTorch (row-major) order, so a matrix
// with ne = [cols, rows] has shape [rows, cols]. Only the header is read at open (in 1 MiB
// chunks); every tensor is read on demand into its own aligned buffer. Every count and offset is
// checked against the file size before anything is allocated for it.
import { closeSync, fstatSync, openSync, readSync, statSync } from 'node:fs';
import { GemmaError } from '../errors.js';
import { readExact } from './read-exact.js';
import { tensorBytes } from './dtypes.js';
import { firstNonFiniteScaleBlock, kQuantScaleProblem, type NonFiniteScaleFinder } from './quant.js';
import type { DType, RawTensor, TensorInfo, TensorSource } from './tensor-source.js';

export type GgufScalarType = 'u8' | 'i8' | 'u16' | 'i16' | 'u32' | 'i32' | 'f32' | 'bool' | 'string' | 'u64' | 'i64' | 'f64';
/** A metadata value's type; arrays carry their element type (arrays of arrays are allowed). */
export type GgufType = GgufScalarType | { readonly array: GgufType };
/** Integers are numbers when they fit in a double exactly, bigints otherwise. */
export type GgufValue = number | bigint | boolean | string | GgufValue[];

/** gguf_type ids in file order (9 is ARRAY). */
export const GGUF_VALUE_TYPE_IDS: readonly (GgufScalarType | 'array')[] =
  ['u8', 'i8', 'u16', 'i16', 'u32', 'i32', 'f32', 'bool', 'string', 'array', 'u64', 'i64', 'f64'];

/** ggml_type ids of the tensor types this engine runs. */
export const GGML_TYPE_IDS: Readonly<Record<DType, number>> = { f32: 0, f16: 1, q4_0: 2, q5_0: 6, q5_1: 7, q8_0: 8, q4_k: 12, q5_k: 13, q6_k: 14, bf16: 30 };
const DTYPE_BY_ID = new Map<number, DType>(Object.entries(GGML_TYPE_IDS).map(([d, id]) => [id, d as DType]));
/** Valid ggml types this engine does not run (named in the error instead of "unknown"). */
const OTHER_GGML_TYPES = new Map<number, string>([[3, 'Q4_1'], [9, 'Q8_1'], [10, 'Q2_K'], [11, 'Q3_K'],
  [15, 'Q8_K'], [16, 'IQ2_XXS'], [17, 'IQ2_XS'], [18, 'IQ3_XXS'], [19, 'IQ1_S'], [20, 'IQ4_NL'], [21, 'IQ3_S'],
  [22, 'IQ2_S'], [23, 'IQ4_XS'], [24, 'I8'], [25, 'I16'], [26, 'I32'], [27, 'I64'], [28, 'F64'], [29, 'IQ1_M'], [34, 'TQ1_0'],
  [35, 'TQ2_0'], [39, 'MXFP4']]);

export const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
export const GGUF_DEFAULT_ALIGNMENT = 32;
const MAX_DIMS = 4; // GGML_MAX_DIMS
// Sanity limits far above any real model (a Gemma 3 vocabulary is 262144 entries).
const MAX_TENSORS = 1 << 20;
const MAX_KV = 1 << 20;
const MAX_ARRAY_LENGTH = 1 << 24;
const MAX_STRING_BYTES = 1 << 28;
const MAX_NESTING = 8;
const CHUNK = 1 << 20;

export interface GgufTensorInfo extends TensorInfo {
  /** ggml dimensions, fastest-varying first (the reverse of `shape`). */
  readonly ne: readonly number[];
  readonly ggmlType: number;
  /** Absolute byte offset of the data in the file. */
  readonly fileOffset: number;
}

export interface GgufSource extends TensorSource {
  readonly path: string;
  readonly version: number;
  readonly alignment: number;
  /** Absolute offset of the data section. */
  readonly dataOffset: number;
  /** Every key/value pair, in file order. */
  readonly metadata: ReadonlyMap<string, GgufValue>;
  readonly metadataTypes: ReadonlyMap<string, GgufType>;
  info(name: string): GgufTensorInfo;
  /** Later reads put tensors in buffers from `allocate` (where it gives one). */
  useAllocator(allocate: TensorAllocator): void;
  /** Later reads serve tensors as views of `mapper`'s mapping (where it gives one), not copies. */
  useMapper(mapper: FileMapper): void;
  /** Later reads check block scales with `find` (the native addon's parallel scan) instead of TypeScript's. */
  useScaleFinder(find: NonFiniteScaleFinder): void;
}

/**
 * Maps a byte range of a file into memory, copy-on-write (writes never reach the file), or
 * returns null when mapping is unavailable. The native addon provides one; formats/ does not
 * depend on it.
 */
export type FileMapper = (path: string, offset: number, length: number, dtype: DType) => Uint8Array | null;

/** Allocates a zeroed buffer for a tensor of `bytes` (e.g. huge-page-backed), or null. */
export type TensorAllocator = (bytes: number) => Uint8Array | null;

/** Opens a GGUF file and validates its whole header (BAD_FORMAT on anything malformed). */
export function openGguf(path: string): GgufSource {
  try {
    if (!statSync(path).isFile()) throw new GemmaError('BAD_FORMAT', `${path} is not a file`);
  } catch (e) {
    if (e instanceof GemmaError) throw e;
    throw new GemmaError('FILE_NOT_FOUND', `GGUF file not found: ${path}`, { cause: e });
  }
  const fd = openSync(path, 'r');
  try {
    return parse(new HeaderReader(fd, path, fstatSync(fd).size));
  } catch (e) {
    closeSync(fd);
    throw e;
  }
}

/** Sequential reader over the header with a 1 MiB window; never reads past the file's end. */
class HeaderReader {
  pos = 0;
  private buf: Buffer = Buffer.alloc(0);
  private bufStart = 0;
  /** What is being parsed, for error messages. */
  what = 'the header';

  constructor(readonly fd: number, readonly path: string, readonly size: number) {}

  bad(msg: string): GemmaError {
    return new GemmaError('BAD_FORMAT', `${this.path}: ${msg}`);
  }

  get remaining(): number {
    return this.size - this.pos;
  }

  /** Makes n bytes at pos available; returns their offset in the window. */
  private need(n: number): number {
    if (n > this.remaining) {
      throw this.bad(`the file is truncated (incomplete: an interrupted download?): it ends at byte ${this.size}, inside its header, ` +
        `where ${this.what} needs ${n} bytes at offset ${this.pos}`);
    }
    if (this.pos < this.bufStart || this.pos + n > this.bufStart + this.buf.length) {
      const len = Math.min(Math.max(n, CHUNK), this.remaining);
      this.buf = Buffer.allocUnsafe(len);
      let done = 0;
      while (done < len) {
        const got = readSync(this.fd, this.buf, done, len - done, this.pos + done);
        if (got === 0) throw this.bad(`unexpected end of file at byte ${this.pos + done} reading ${this.what}`);
        done += got;
      }
      this.bufStart = this.pos;
    }
    const at = this.pos - this.bufStart;
    this.pos += n;
    return at;
  }

  u8(): number { const at = this.need(1); return this.buf[at]!; }
  u16(): number { const at = this.need(2); return this.buf.readUInt16LE(at); }
  u32(): number { const at = this.need(4); return this.buf.readUInt32LE(at); }
  i8(): number { const at = this.need(1); return this.buf.readInt8(at); }
  i16(): number { const at = this.need(2); return this.buf.readInt16LE(at); }
  i32(): number { const at = this.need(4); return this.buf.readInt32LE(at); }
  f32(): number { const at = this.need(4); return this.buf.readFloatLE(at); }
  f64(): number { const at = this.need(8); return this.buf.readDoubleLE(at); }
  u64(): bigint { const at = this.need(8); return this.buf.readBigUInt64LE(at); }
  i64(): bigint { const at = this.need(8); return this.buf.readBigInt64LE(at); }

  /**
   * A u64 count of items taking at least `minBytesEach` bytes each: it must not exceed `limit` nor
   * claim more than the rest of the file holds (checked before anything is allocated for it).
   */
  count(kind: string, minBytesEach: number, limit: number): number {
    const n = this.u64();
    if (n > BigInt(limit)) {
      throw this.bad(`the file is corrupt: ${this.what} has a ${kind} of ${n}, more than any real model has (limit ${limit})`);
    }
    if (n * BigInt(minBytesEach) > BigInt(this.remaining)) {
      throw this.bad(`the file is truncated or corrupt (incomplete: an interrupted download?): ${this.what}: ${kind} ${n} ` +
        `needs at least ${n * BigInt(minBytesEach)} bytes, but the file ends ${this.remaining} bytes later, at byte ${this.size}`);
    }
    return Number(n);
  }

  string(): string {
    const n = this.count('string length', 1, MAX_STRING_BYTES);
    if (n === 0) return '';
    const at = this.need(n);
    return this.buf.toString('utf8', at, at + n);
  }
}

/** A metadata value for an error message: short, and never throws (bigints included). */
export function describeGgufValue(v: GgufValue | null): string {
  if (Array.isArray(v)) return `an array of ${v.length}`;
  if (typeof v === 'string') return JSON.stringify(v.length > 60 ? `${v.slice(0, 57)}...` : v);
  return String(v);
}

function safeInt(v: bigint): number | bigint {
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

const MIN_VALUE_BYTES: Readonly<Record<GgufScalarType | 'array', number>> = {
  u8: 1, i8: 1, bool: 1, u16: 2, i16: 2, u32: 4, i32: 4, f32: 4, u64: 8, i64: 8, f64: 8, string: 8, array: 12,
};

function valueType(r: HeaderReader): GgufScalarType | 'array' {
  const id = r.u32();
  const t = GGUF_VALUE_TYPE_IDS[id];
  if (t === undefined) throw r.bad(`unknown metadata value type ${id} (${r.what})`);
  return t;
}

function readValue(r: HeaderReader, t: GgufScalarType | 'array', depth: number): [GgufValue, GgufType] {
  switch (t) {
    case 'u8': return [r.u8(), t];
    case 'i8': return [r.i8(), t];
    case 'u16': return [r.u16(), t];
    case 'i16': return [r.i16(), t];
    case 'u32': return [r.u32(), t];
    case 'i32': return [r.i32(), t];
    case 'f32': return [r.f32(), t];
    case 'f64': return [r.f64(), t];
    case 'bool': return [r.u8() !== 0, t];
    case 'string': return [r.string(), t];
    case 'u64': return [safeInt(r.u64()), t];
    case 'i64': return [safeInt(r.i64()), t];
    case 'array': {
      if (depth >= MAX_NESTING) throw r.bad(`arrays nested more than ${MAX_NESTING} deep (${r.what})`);
      const et = valueType(r);
      const n = r.count('array length', MIN_VALUE_BYTES[et], MAX_ARRAY_LENGTH);
      const out: GgufValue[] = new Array(n);
      let elemType: GgufType = et === 'array' ? { array: 'u8' } : et;
      for (let i = 0; i < n; i++) [out[i], elemType] = readValue(r, et, depth + 1);
      return [out, { array: elemType }];
    }
  }
}

interface Entry extends GgufTensorInfo {
  readonly dtype: DType;
}

function parse(r: HeaderReader): GgufFile {
  r.what = 'the magic';
  const magic = r.u32();
  if (magic !== GGUF_MAGIC) throw r.bad(`not a GGUF file (magic 0x${magic.toString(16).padStart(8, '0')}, expected "GGUF")`);
  r.what = 'the version';
  const version = r.u32();
  if (version === 1) throw r.bad('GGUF version 1 is not supported (only 2 and 3)');
  if (version !== 2 && version !== 3) {
    const hint = (version & 0xffff) === 0 ? ' (a big-endian file?)' : '';
    throw r.bad(`unsupported GGUF version ${version}${hint} (only 2 and 3)`);
  }
  r.what = 'the tensor count';
  const nTensors = r.count('tensor count', 32, MAX_TENSORS); // a tensor info takes at least 32 bytes
  r.what = 'the key/value count';
  const nKv = r.count('key/value count', 13, MAX_KV);

  const metadata = new Map<string, GgufValue>();
  const types = new Map<string, GgufType>();
  for (let i = 0; i < nKv; i++) {
    r.what = `key #${i}`;
    const key = r.string();
    r.what = `key ${key}`;
    if (metadata.has(key)) throw r.bad(`duplicate key ${key}`);
    const [value, type] = readValue(r, valueType(r), 0);
    metadata.set(key, value);
    types.set(key, type);
  }

  let alignment = GGUF_DEFAULT_ALIGNMENT;
  if (metadata.has('general.alignment')) {
    const a = metadata.get('general.alignment');
    if (types.get('general.alignment') !== 'u32' || typeof a !== 'number' || a === 0 || (a & (a - 1)) !== 0) {
      throw r.bad(`general.alignment must be a u32 power of two, got ${String(a)}`);
    }
    alignment = a;
  }

  const infos: { name: string; ne: number[]; ggmlType: number; offset: bigint }[] = [];
  const seen = new Set<string>();
  for (let i = 0; i < nTensors; i++) {
    r.what = `tensor info #${i}`;
    const name = r.string();
    r.what = `tensor ${name}`;
    if (seen.has(name)) throw r.bad(`duplicate tensor ${name}`);
    seen.add(name);
    const nDims = r.u32();
    if (nDims < 1 || nDims > MAX_DIMS) throw r.bad(`tensor ${name}: ${nDims} dimensions (1 to ${MAX_DIMS} allowed)`);
    const ne: number[] = [];
    let elements = 1;
    for (let d = 0; d < nDims; d++) {
      const v = r.i64();
      if (v < 0n || v > BigInt(Number.MAX_SAFE_INTEGER)) throw r.bad(`tensor ${name}: dimension ${d} is ${v}`);
      ne.push(Number(v));
      elements *= Number(v);
      if (elements > Number.MAX_SAFE_INTEGER) throw r.bad(`tensor ${name}: dimensions [${ne.join(', ')}...] overflow`);
    }
    infos.push({ name, ne, ggmlType: r.u32(), offset: r.u64() });
  }

  const dataOffset = Math.ceil(r.pos / alignment) * alignment;
  const dataSize = Math.max(0, r.size - dataOffset);
  // The size the tensor table says the file has, for the message about a file cut short.
  let expectedSize = BigInt(dataOffset);
  let outside: string | undefined;
  const entries: Entry[] = infos.map(({ name, ne, ggmlType, offset }) => {
    const where = `tensor ${name}`;
    const dtype = DTYPE_BY_ID.get(ggmlType);
    if (dtype === undefined) {
      const known = OTHER_GGML_TYPES.get(ggmlType);
      if (known === undefined) throw r.bad(`${where}: unknown ggml type ${ggmlType}`);
      throw new GemmaError('UNSUPPORTED_MODEL',
        `${r.path}: ${where} has type ${known}, which this engine does not run (supported: F32, F16, BF16, Q8_0, Q4_0, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K)`);
    }
    const shape = [...ne].reverse();
    let sizeBytes: number;
    try {
      sizeBytes = tensorBytes(dtype, shape);
    } catch (e) {
      throw r.bad(`${where}: ${(e as Error).message}`);
    }
    if (!Number.isSafeInteger(sizeBytes)) throw r.bad(`${where}: size of shape [${shape.join(', ')}] overflows`);
    if (offset % BigInt(alignment) !== 0n) throw r.bad(`${where}: data offset ${offset} is not a multiple of the alignment ${alignment}`);
    const end = BigInt(dataOffset) + offset + BigInt(sizeBytes);
    if (end > expectedSize) expectedSize = end;
    if (offset + BigInt(sizeBytes) > BigInt(dataSize)) {
      outside ??= `${where}'s data [${offset}, ${offset + BigInt(sizeBytes)}) is out of bounds of the ${dataSize}-byte data section`;
    }
    return { name, dtype, shape: Object.freeze(shape), sizeBytes, file: r.path, ne: Object.freeze(ne), ggmlType, fileOffset: dataOffset + Number(offset) };
  });

  if (outside !== undefined) {
    const detail = outside;
    // Tensors that would end within a plausible distance are a file cut short, else a corrupt table.
    if (expectedSize <= BigInt(r.size) * 64n) {
      throw r.bad(`the file is incomplete (truncated: an interrupted download?): its tensors need ${expectedSize} bytes but the file has ` +
        `${r.size} (${expectedSize - BigInt(r.size)} missing); ${detail}`);
    }
    throw r.bad(`the file is truncated or corrupt: ${detail}`);
  }

  const sorted = [...entries].sort((a, b) => a.fileOffset - b.fileOffset);
  let last: Entry | null = null;
  for (const cur of sorted) {
    if (cur.sizeBytes === 0) continue;
    if (last !== null && cur.fileOffset < last.fileOffset + last.sizeBytes) {
      throw r.bad(`tensors ${last.name} and ${cur.name} overlap in the data section`);
    }
    last = cur;
  }
  return new GgufFile(r.path, r.fd, version, alignment, dataOffset, metadata, types, entries);
}

class GgufFile implements GgufSource {
  private fd: number | null;
  private readonly byName: Map<string, Entry>;

  constructor(
    readonly path: string,
    fd: number,
    readonly version: number,
    readonly alignment: number,
    readonly dataOffset: number,
    readonly metadata: ReadonlyMap<string, GgufValue>,
    readonly metadataTypes: ReadonlyMap<string, GgufType>,
    private readonly entries: Entry[],
  ) {
    this.fd = fd;
    this.byName = new Map(entries.map((e) => [e.name, e]));
  }

  names(): string[] {
    return this.entries.map((e) => e.name);
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  info(name: string): GgufTensorInfo {
    const { dtype, shape, sizeBytes, file, ne, ggmlType, fileOffset } = this.entry(name);
    return { name, dtype, shape, sizeBytes, file, ne, ggmlType, fileOffset };
  }

  private mapper: FileMapper | null = null;
  private allocate: TensorAllocator | null = null;
  private findNonFiniteScale: NonFiniteScaleFinder = firstNonFiniteScaleBlock;

  useScaleFinder(find: NonFiniteScaleFinder): void {
    this.findNonFiniteScale = find;
  }

  useAllocator(allocate: TensorAllocator): void {
    this.allocate = allocate;
  }

  /** Serve tensors as memory mappings instead of reading them. */
  useMapper(mapper: FileMapper): void {
    this.mapper = mapper;
  }

  read(name: string): RawTensor {
    const e = this.entry(name);
    if (this.fd === null) throw new GemmaError('DISPOSED', `${this.path}: read of tensor ${name} after close()`);
    if (this.mapper && e.fileOffset % 4 === 0 && e.sizeBytes > 0) {
      // Offsets are multiples of the alignment (≥ 32 in practice; typed views need 4); bounds were checked at parse.
      const data = this.mapper(this.path, e.fileOffset, e.sizeBytes, e.dtype);
      if (data && data.length === e.sizeBytes) return this.checked({ name, dtype: e.dtype, shape: e.shape, data });
    }
    const into = this.allocate?.(e.sizeBytes) ?? undefined;
    const data = readExact(this.fd, e.fileOffset, e.sizeBytes, `${this.path}: tensor ${name}`, into);
    return this.checked({ name, dtype: e.dtype, shape: e.shape, data });
  }

  /** K-quant tensors are used as stored, so a NaN or infinite super-block scale is refused here. */
  private checked(t: RawTensor): RawTensor {
    const problem = kQuantScaleProblem(t.dtype, t.data, this.findNonFiniteScale);
    if (problem !== null) throw new GemmaError('BAD_FORMAT', `${this.path}: tensor ${t.name} (${t.dtype.toUpperCase()}): ${problem}`);
    return t;
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }

  private entry(name: string): Entry {
    const e = this.byName.get(name);
    if (e === undefined) throw new GemmaError('MISSING_TENSOR', `tensor ${name} not found in ${this.path}`);
    return e;
  }
}
