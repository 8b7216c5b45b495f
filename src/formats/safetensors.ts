// safetensors reader: one file, or a Hugging Face checkpoint folder (single or sharded).
// Format: u64 little-endian header length N, N bytes of JSON
// `{name: {dtype, shape, data_offsets: [begin, end]}, __metadata__?: {..}}`, then the data section;
// offsets are relative to the start of the data section. Only the header is read at open; each
// tensor is read on demand into its own buffer (an 8 GB checkpoint is never read whole).
import { closeSync, existsSync, fstatSync, openSync, readdirSync, readFileSync, statSync, type Stats } from 'node:fs';
import { basename, join } from 'node:path';
import { GemmaError } from '../errors.js';
import { ELEMENT_SIZE } from './dtypes.js';
import { readExact } from './read-exact.js';
import type { DType, RawTensor, TensorInfo, TensorSource } from './tensor-source.js';

/** The safetensors reader adds the header's free-form string metadata to TensorSource. */
export interface SafetensorsSource extends TensorSource {
  /** `__metadata__` of the file (for a sharded checkpoint: of the first shard). */
  readonly metadata: Readonly<Record<string, string>>;
}

const DTYPES: Readonly<Record<string, DType>> = { F32: 'f32', F16: 'f16', BF16: 'bf16' };
/** Valid safetensors dtypes this engine does not run (a clearer message than "unknown"). */
const UNSUPPORTED = new Set(['BOOL', 'U8', 'I8', 'I16', 'U16', 'I32', 'U32', 'I64', 'U64', 'F64',
  'F8_E4M3', 'F8_E5M2', 'F8_E8M0', 'F6_E2M3', 'F6_E3M2', 'F4', 'C64']);
/** The reference implementation refuses headers above 100 MB; so do we. */
const MAX_HEADER_BYTES = 100_000_000;

interface Entry extends TensorInfo {
  readonly begin: number; // absolute file offset
}

export const INDEX_FILE = 'model.safetensors.index.json';
export const SINGLE_FILE = 'model.safetensors';
const SHARD_RE = /^model-(\d+)-of-(\d+)\.safetensors$/;

/** Opens one .safetensors file and validates its whole header. */
export function openSafetensors(path: string): SafetensorsSource {
  const stat = statOrNull(path);
  if (stat === null) throw new GemmaError('FILE_NOT_FOUND', `safetensors file not found: ${path}`);
  if (!stat.isFile()) throw new GemmaError('BAD_FORMAT', `${path} is not a file`);
  const fd = openSync(path, 'r');
  try {
    const { entries, metadata } = parseHeader(fd, path);
    return new FileSource(path, fd, entries, metadata);
  } catch (e) {
    closeSync(fd);
    throw e;
  }
}

/**
 * Opens a checkpoint folder: `model.safetensors.index.json` + shards, or `model.safetensors`, or
 * (no index) a complete set of `model-0000i-of-0000N.safetensors`. A path to a single
 * .safetensors file is accepted too.
 */
export function openCheckpoint(dir: string): SafetensorsSource {
  const stat = statOrNull(dir);
  if (stat === null) throw new GemmaError('FILE_NOT_FOUND', `checkpoint folder not found: ${dir}`);
  if (stat.isFile()) return openSafetensors(dir);
  const indexPath = join(dir, INDEX_FILE);
  if (existsSync(indexPath)) return openIndexed(dir, indexPath);
  if (existsSync(join(dir, SINGLE_FILE))) return openSafetensors(join(dir, SINGLE_FILE));
  const shards = findShards(dir);
  if (shards.length > 0) return openShards(dir, shards, null);
  throw new GemmaError('FILE_NOT_FOUND', `no ${SINGLE_FILE} or ${INDEX_FILE} in ${dir}`);
}

function statOrNull(path: string): Stats | null {
  try {
    return statSync(path);
  } catch {
    return null;
  }
}

function parseHeader(fd: number, path: string): { entries: Entry[]; metadata: Record<string, string> } {
  const fileSize = fstatSync(fd).size;
  const bad = (msg: string): GemmaError => new GemmaError('BAD_FORMAT', `${path}: ${msg}`);
  if (fileSize < 8) throw bad(`file is ${fileSize} bytes, too short for a safetensors header`);
  const lenBytes = readExact(fd, 0, 8, path);
  const headerLen = new DataView(lenBytes.buffer, lenBytes.byteOffset, 8).getBigUint64(0, true);
  if (headerLen > BigInt(MAX_HEADER_BYTES)) throw bad(`header length ${headerLen} is absurd (limit ${MAX_HEADER_BYTES})`);
  if (headerLen > BigInt(fileSize - 8)) throw bad(`header length ${headerLen} exceeds the file size ${fileSize}`);
  const n = Number(headerLen);
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(readExact(fd, 8, n, path)));
  } catch (e) {
    throw new GemmaError('BAD_FORMAT', `${path}: header is not valid JSON (${(e as Error).message})`, { cause: e });
  }
  if (!isObject(json)) throw bad('header is not a JSON object');

  const dataStart = 8 + n;
  const dataSize = fileSize - dataStart;
  const entries: Entry[] = [];
  let metadata: Record<string, string> = {};
  for (const [name, value] of Object.entries(json)) {
    if (name === '__metadata__') {
      metadata = parseMetadata(value, path);
      continue;
    }
    const where = `${path}: tensor ${name}`;
    if (!isObject(value)) throw new GemmaError('BAD_FORMAT', `${where}: entry is not an object`);
    const rawDtype = value['dtype'];
    if (typeof rawDtype !== 'string') throw new GemmaError('BAD_FORMAT', `${where}: dtype missing or not a string`);
    const dtype = DTYPES[rawDtype];
    if (dtype === undefined) {
      const why = UNSUPPORTED.has(rawDtype) ? 'unsupported dtype' : 'unknown dtype';
      throw new GemmaError('BAD_FORMAT', `${where}: ${why} ${rawDtype} (supported: BF16, F16, F32)`);
    }
    const shape = value['shape'];
    if (!Array.isArray(shape) || !shape.every(isNonNegInt)) {
      throw new GemmaError('BAD_FORMAT', `${where}: shape must be an array of non-negative integers, got ${JSON.stringify(shape)}`);
    }
    const offsets = value['data_offsets'];
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isNonNegInt)) {
      throw new GemmaError('BAD_FORMAT', `${where}: data_offsets must be [begin, end] integers, got ${JSON.stringify(offsets)}`);
    }
    const [begin, end] = offsets as [number, number];
    if (end < begin) throw new GemmaError('BAD_FORMAT', `${where}: data_offsets end ${end} < begin ${begin}`);
    if (end > dataSize) {
      throw new GemmaError('BAD_FORMAT', `${path}: the file is truncated or corrupt (an incomplete download?): tensor ${name}'s ` +
        `data_offsets [${begin}, ${end}] are out of bounds of the ${dataSize}-byte data section`);
    }
    const expected = (shape as number[]).reduce((a, d) => a * d, 1) * ELEMENT_SIZE[dtype];
    if (end - begin !== expected) {
      throw new GemmaError('BAD_FORMAT', `${where}: ${end - begin} bytes for shape [${shape.join(', ')}] ${rawDtype} (expected ${expected})`);
    }
    entries.push({ name, dtype, shape: Object.freeze([...(shape as number[])]), sizeBytes: expected, file: path, begin: dataStart + begin });
  }
  // As the reference library does: the tensors must tile the data section exactly, back to back in
  // offset order with no gap or overlap, ending at the end of the file. A header length that is off
  // by a few bytes still parses (the header is padded with spaces) but shifts every tensor: this is
  // what catches it, and a file cut or padded after its last tensor.
  entries.sort((a, b) => a.begin - b.begin || a.sizeBytes - b.sizeBytes);
  let covered = dataStart;
  let last: Entry | null = null; // the tensor ending at `covered`
  for (const cur of entries) {
    if (cur.begin < covered) {
      throw new GemmaError('BAD_FORMAT', `${path}: tensors ${last?.name} and ${cur.name} overlap in the data section`);
    }
    if (cur.begin > covered) {
      throw new GemmaError('BAD_FORMAT', `${path}: the data section has ${cur.begin - covered} bytes before tensor ${cur.name} that no tensor ` +
        `covers (at ${covered - dataStart}): the header is corrupt`);
    }
    covered = cur.begin + cur.sizeBytes;
    if (cur.sizeBytes > 0) last = cur;
  }
  if (covered !== fileSize) {
    throw new GemmaError('BAD_FORMAT', `${path}: the header's tensors cover ${covered - dataStart} bytes of data but the file has ` +
      `${dataSize} after the ${n}-byte header: the header length or the file size is wrong (a corrupt or incomplete file)`);
  }
  return { entries, metadata };
}

function parseMetadata(value: unknown, path: string): Record<string, string> {
  if (!isObject(value)) throw new GemmaError('BAD_FORMAT', `${path}: __metadata__ is not an object`);
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(value)) {
    if (typeof v !== 'string') throw new GemmaError('BAD_FORMAT', `${path}: __metadata__.${k} is not a string`);
    out[k] = v;
  }
  return out;
}

class FileSource implements SafetensorsSource {
  private fd: number | null;
  private readonly byName: Map<string, Entry>;

  constructor(
    private readonly path: string,
    fd: number,
    private readonly entries: Entry[],
    readonly metadata: Readonly<Record<string, string>>,
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

  info(name: string): TensorInfo {
    const e = this.entry(name);
    return { name: e.name, dtype: e.dtype, shape: e.shape, sizeBytes: e.sizeBytes, file: e.file };
  }

  read(name: string): RawTensor {
    const e = this.entry(name);
    if (this.fd === null) throw new GemmaError('DISPOSED', `${this.path}: read of tensor ${name} after close()`);
    return { name, dtype: e.dtype, shape: e.shape, data: readExact(this.fd, e.begin, e.sizeBytes, this.path) };
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

/** Several shards seen as one source. Tensor names must be unique across shards. */
class ShardedSource implements SafetensorsSource {
  private readonly owner = new Map<string, SafetensorsSource>();
  readonly metadata: Readonly<Record<string, string>>;

  constructor(private readonly dir: string, private readonly shards: SafetensorsSource[]) {
    this.metadata = shards[0]?.metadata ?? {};
    for (const shard of shards) {
      for (const name of shard.names()) {
        const other = this.owner.get(name);
        if (other !== undefined) {
          throw new GemmaError('BAD_FORMAT', `${dir}: tensor ${name} is in both ${other.info(name).file} and ${shard.info(name).file}`);
        }
        this.owner.set(name, shard);
      }
    }
  }

  names(): string[] {
    return this.shards.flatMap((s) => s.names());
  }

  has(name: string): boolean {
    return this.owner.has(name);
  }

  info(name: string): TensorInfo {
    return this.shardOf(name).info(name);
  }

  read(name: string): RawTensor {
    return this.shardOf(name).read(name);
  }

  close(): void {
    for (const s of this.shards) s.close();
  }

  private shardOf(name: string): SafetensorsSource {
    const s = this.owner.get(name);
    if (s === undefined) throw new GemmaError('MISSING_TENSOR', `tensor ${name} not found in checkpoint ${this.dir}`);
    return s;
  }
}

function openIndexed(dir: string, indexPath: string): SafetensorsSource {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(indexPath, 'utf8'));
  } catch (e) {
    throw new GemmaError('BAD_FORMAT', `${indexPath}: not valid JSON (${(e as Error).message})`, { cause: e });
  }
  if (!isObject(json) || !isObject(json['weight_map'])) {
    throw new GemmaError('BAD_FORMAT', `${indexPath}: missing "weight_map" object`);
  }
  const weightMap = json['weight_map'];
  const files: string[] = [];
  for (const [tensor, file] of Object.entries(weightMap)) {
    if (typeof file !== 'string' || file === '' || file !== basename(file) || file === '..' || file === '.') {
      throw new GemmaError('BAD_FORMAT', `${indexPath}: weight_map entry for ${tensor} must be a file name in the folder, got ${JSON.stringify(file)}`);
    }
    if (!files.includes(file)) files.push(file);
  }
  if (files.length === 0) throw new GemmaError('BAD_FORMAT', `${indexPath}: weight_map is empty`);
  files.sort();
  for (const f of files) {
    if (!existsSync(join(dir, f))) throw new GemmaError('FILE_NOT_FOUND', `shard ${f} listed in ${indexPath} not found in ${dir}`);
  }
  const source = openShards(dir, files, indexPath);
  for (const [tensor, file] of Object.entries(weightMap)) {
    if (!source.has(tensor) || basename(source.info(tensor).file) !== file) {
      source.close();
      throw new GemmaError('BAD_FORMAT', `${indexPath}: weight_map puts tensor ${tensor} in ${file as string}, but that shard does not hold it`);
    }
  }
  return source;
}

/** Shard files `model-i-of-N.safetensors` in the folder; throws if the set is incomplete. */
function findShards(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const all = names.filter((n) => SHARD_RE.test(n)).sort();
  if (all.length === 0) return [];
  const m = SHARD_RE.exec(all[0]!)!;
  const shards = all.filter((n) => SHARD_RE.exec(n)![2] === m[2]); // one set: the same N
  const total = Number(m[2]);
  const width = m[1]!.length;
  for (let i = 1; i <= total; i++) {
    const want = `model-${String(i).padStart(width, '0')}-of-${m[2]}.safetensors`;
    if (!shards.includes(want)) throw new GemmaError('FILE_NOT_FOUND', `shard ${want} not found in ${dir} (and no ${INDEX_FILE})`);
  }
  return shards;
}

function openShards(dir: string, files: string[], indexPath: string | null): SafetensorsSource {
  const opened: SafetensorsSource[] = [];
  try {
    for (const f of files) opened.push(openSafetensors(join(dir, f)));
    return new ShardedSource(indexPath ?? dir, opened);
  } catch (e) {
    for (const s of opened) s.close();
    throw e;
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isNonNegInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}
