// Seeded corruptions of the files a loader reads: GGUF (re-serialised from a parsed model, so any
// count, length, type id, dimension or offset in the header can be set to a hostile value),
// safetensors (header length, header JSON entries), JSON files (any field set to a huge number or
// the wrong type), PNG / JPEG images (dimensions in the header, chunk lengths), plus the generic
// byte flips, truncations and appended garbage. Every mutator is a pure function of its random
// generator, so (seed, format, case index) names a case exactly.
import { readFileSync } from 'node:fs';
import { openGguf, type GgufType, type GgufValue } from '../src/formats/gguf.js';

export type Rng = () => number;

/** mulberry32: a small, fast, well-mixed 32-bit generator; returns floats in [0, 1). */
export function mulberry32(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The generator of one case: FNV-1a of "seed:format:index". */
export function caseRng(seed: number, format: string, index: number): Rng {
  let h = 0x811c9dc5;
  for (const c of `${seed}:${format}:${index}`) h = Math.imul(h ^ c.charCodeAt(0), 0x01000193);
  return mulberry32(h);
}

export const int = (rng: Rng, n: number): number => Math.floor(rng() * n);
export const pick = <T>(rng: Rng, items: readonly T[]): T => items[int(rng, items.length)]!;
const chance = (rng: Rng, p: number): boolean => rng() < p;

/** A mutated file and a short description of what was done to it (printed for a failing case). */
export interface Mutant {
  bytes: Uint8Array;
  what: string;
}

// ---------------------------------------------------------------------------------------------
// Byte-level corruptions, for every format.

/** Flips 1-8 bytes; with `hot`, most land in [0, hot) (the header, where parsing decisions are made). */
export function flipBytes(rng: Rng, src: Uint8Array, hot = src.length): Mutant {
  const out = copy(src);
  const n = 1 + int(rng, 8);
  const at: number[] = [];
  for (let k = 0; k < n && out.length > 0; k++) {
    const i = chance(rng, 0.85) ? int(rng, Math.max(1, Math.min(hot, out.length))) : int(rng, out.length);
    out[i] = chance(rng, 0.5) ? out[i]! ^ (1 << int(rng, 8)) : int(rng, 256);
    at.push(i);
  }
  return { bytes: out, what: `flip bytes at ${at.join(',')}` };
}

export function truncate(rng: Rng, src: Uint8Array, hot = src.length): Mutant {
  const limit = chance(rng, 0.6) ? Math.min(hot, src.length) : src.length;
  const n = int(rng, Math.max(1, limit));
  return { bytes: copy(src.subarray(0, n)), what: `truncate to ${n} of ${src.length} bytes` };
}

/**
 * A fresh array of the bytes: never `slice()` a Buffer, whose slice shares memory (and whose
 * `buffer` is Node's pool, shared by other files' bytes).
 */
function copy(src: Uint8Array): Uint8Array {
  return new Uint8Array(src);
}

export function appendGarbage(rng: Rng, src: Uint8Array): Mutant {
  const n = 1 + int(rng, 64);
  const out = new Uint8Array(src.length + n);
  out.set(src);
  for (let i = src.length; i < out.length; i++) out[i] = chance(rng, 0.5) ? 0 : int(rng, 256);
  return { bytes: out, what: `append ${n} bytes` };
}

/** Hostile values for an unsigned integer field of `bits` bits that held `orig`. */
function hostileUnsigned(rng: Rng, orig: bigint, bits: 32 | 64): bigint {
  const max = (1n << BigInt(bits)) - 1n;
  const common = [0n, 1n, 2n, orig + 1n, orig - 1n, orig * 2n, orig * 1000n, 1n << 24n, 1n << 31n, (1n << 31n) - 1n,
    1n << 32n, (1n << 32n) - 1n, 1_000_000_000n, 262144n];
  const wide = [1n << 53n, (1n << 53n) + 1n, 1n << 62n, 1n << 63n, max, max - 1n, BigInt(Math.floor(rng() * 2 ** 53)) << 11n];
  const v = pick(rng, bits === 64 && chance(rng, 0.4) ? wide : common);
  return ((v % (max + 1n)) + (max + 1n)) % (max + 1n);
}

// ---------------------------------------------------------------------------------------------
// GGUF: a parsed model re-serialised byte by byte.

interface GgufKv { key: string; type: GgufType; value: GgufValue }
interface GgufTensorEntry { name: string; ne: bigint[]; type: number; offset: bigint }
export interface GgufModel { version: number; kvs: GgufKv[]; tensors: GgufTensorEntry[]; data: Uint8Array }

/** A numeric field of the serialised header: where it is and how wide. */
interface Field { at: number; width: 4 | 8; what: string }

export function parseGgufModel(path: string): GgufModel {
  const g = openGguf(path);
  try {
    const kvs = [...g.metadata].map(([key, value]) => ({ key, value, type: g.metadataTypes.get(key)! }));
    const tensors = g.names().map((name) => {
      const info = g.info(name);
      return { name, ne: info.ne.map(BigInt), type: info.ggmlType, offset: BigInt(info.fileOffset - g.dataOffset) };
    });
    return { version: g.version, kvs, tensors, data: readFileSync(path).subarray(g.dataOffset) };
  } finally {
    g.close();
  }
}

const TYPE_IDS: Record<string, number> = { u8: 0, i8: 1, u16: 2, i16: 3, u32: 4, i32: 5, f32: 6, bool: 7, string: 8, array: 9, u64: 10, i64: 11, f64: 12 };

class Writer {
  bytes: number[] = [];
  fields: Field[] = [];
  private view = new DataView(new ArrayBuffer(8));

  raw(n: number, set: (v: DataView) => void, field?: string): void {
    set(this.view);
    if (field !== undefined) this.fields.push({ at: this.bytes.length, width: n as 4 | 8, what: field });
    for (let i = 0; i < n; i++) this.bytes.push(this.view.getUint8(i));
  }

  u32(v: number, field?: string): void { this.raw(4, (d) => d.setUint32(0, v >>> 0, true), field); }
  u64(v: bigint, field?: string): void { this.raw(8, (d) => d.setBigUint64(0, BigInt.asUintN(64, v), true), field); }

  string(s: string, field: string): void {
    const b = Buffer.from(s, 'utf8');
    this.u64(BigInt(b.length), field);
    for (const x of b) this.bytes.push(x);
  }

  value(type: GgufType, v: GgufValue, where: string): void {
    if (typeof type === 'object') {
      const items = Array.isArray(v) ? v : [];
      const et = type.array;
      this.u32(TYPE_IDS[typeof et === 'object' ? 'array' : et]!, `${where} element type`);
      this.u64(BigInt(items.length), `${where} array length`);
      for (const item of items) this.value(et, item, where);
      return;
    }
    const num = typeof v === 'number' ? v : typeof v === 'bigint' ? Number(v) : typeof v === 'boolean' ? Number(v) : 0;
    switch (type) {
      case 'u8': case 'i8': case 'bool': this.raw(1, (d) => d.setUint8(0, num & 0xff)); break;
      case 'u16': case 'i16': this.raw(2, (d) => d.setUint16(0, num & 0xffff, true)); break;
      case 'u32': case 'i32': this.raw(4, (d) => d.setUint32(0, num >>> 0, true), `${where} value`); break;
      case 'f32': this.raw(4, (d) => d.setFloat32(0, num, true)); break;
      case 'f64': this.raw(8, (d) => d.setFloat64(0, num, true)); break;
      case 'u64': case 'i64': this.u64(typeof v === 'bigint' ? v : BigInt(Math.trunc(num)), `${where} value`); break;
      case 'string': this.string(typeof v === 'string' ? v : String(v), `${where} string length`); break;
    }
  }
}

/** Serialises a model (alignment from general.alignment when it is a sane power of two, else 32). */
export function serializeGguf(m: GgufModel): { bytes: Uint8Array; fields: Field[] } {
  const w = new Writer();
  w.u32(0x46554747);
  w.u32(m.version, 'version');
  w.u64(BigInt(m.tensors.length), 'tensor count');
  w.u64(BigInt(m.kvs.length), 'key/value count');
  for (const kv of m.kvs) {
    w.string(kv.key, `key ${kv.key} length`);
    w.u32(TYPE_IDS[typeof kv.type === 'object' ? 'array' : kv.type]!, `${kv.key} type`);
    w.value(kv.type, kv.value, kv.key);
  }
  for (const t of m.tensors) {
    w.string(t.name, `tensor ${t.name} name length`);
    w.u32(t.ne.length, `tensor ${t.name} n_dims`);
    t.ne.forEach((d, i) => w.u64(d, `tensor ${t.name} ne[${i}]`));
    w.u32(t.type, `tensor ${t.name} type`);
    w.u64(t.offset, `tensor ${t.name} offset`);
  }
  const a = m.kvs.find((kv) => kv.key === 'general.alignment')?.value;
  const alignment = typeof a === 'number' && a > 0 && a <= 1 << 16 && (a & (a - 1)) === 0 ? a : 32;
  const headerLen = Math.ceil(w.bytes.length / alignment) * alignment;
  const out = new Uint8Array(headerLen + m.data.length);
  out.set(w.bytes);
  out.set(m.data, headerLen);
  return { bytes: out, fields: w.fields };
}

const clone = (m: GgufModel): GgufModel => ({
  version: m.version,
  kvs: m.kvs.map((kv) => ({ ...kv })),
  tensors: m.tensors.map((t) => ({ ...t, ne: [...t.ne] })),
  data: m.data,
});

/** Keys a file may lack that change how it is read, for "add a key" mutations. */
const EXTRA_KEYS = ['general.alignment', 'gemma3.attention.key_length', 'gemma3.attention.value_length', 'gemma3.rope.dimension_count',
  'gemma3.rope.scaling.type', 'gemma3.rope.scaling.factor', 'gemma3.final_logit_softcapping', 'gemma3.attention.sliding_window',
  'tokenizer.ggml.add_space_prefix', 'tokenizer.ggml.eot_token_id', 'tokenizer.ggml.eom_token_id', 'tokenizer.ggml.padding_token_id',
  'clip.vision.projector.scale_factor', 'clip.vision.image_mean', 'clip.vision.image_std', 'tokenizer.chat_template'];

/** A hostile [type, value] for a metadata key that held `orig` (of type `origType`, if any). */
function hostileKv(rng: Rng, origType: GgufType | undefined, orig: GgufValue | undefined, layers: number): [GgufType, GgufValue] {
  const r = rng();
  if (Array.isArray(orig) && typeof origType === 'object' && r < 0.5) {
    const items = orig.slice();
    const et = origType.array;
    switch (int(rng, 6)) {
      case 0: return [origType, items.slice(0, int(rng, items.length))];
      case 1: return [origType, [...items, ...items.slice(0, 1 + int(rng, 3))]];
      case 2: return [origType, []];
      case 3: {
        const i = int(rng, Math.max(1, items.length));
        items[i] = hostileKv(rng, et, items[i], layers)[1];
        return [origType, items];
      }
      case 4: return [{ array: et === 'string' ? 'i32' : 'string' }, items.map((x) => (typeof x === 'string' ? x.length : String(x)))];
      default: return [{ array: { array: et } }, [items.slice(0, 2)]];
    }
  }
  const numeric = ['u8', 'i8', 'u16', 'i16', 'u32', 'i32', 'u64', 'i64'] as const;
  if (typeof origType === 'string' && (numeric as readonly string[]).includes(origType) && r < 0.8) {
    const wide = origType === 'u64' || origType === 'i64';
    const base = typeof orig === 'number' ? BigInt(orig) : typeof orig === 'bigint' ? orig : 0n;
    const v = hostileUnsigned(rng, base, wide ? 64 : 32);
    return [origType, wide ? v : Number(v & 0xffffffffn)];
  }
  switch (int(rng, 10)) {
    case 0: return ['u32', Number(hostileUnsigned(rng, 0n, 32))];
    case 1: return ['u64', hostileUnsigned(rng, 0n, 64)];
    case 2: return ['i32', pick(rng, [-1, -2147483648, 0, 7])];
    case 3: return ['f32', pick(rng, [NaN, Infinity, -Infinity, 0, -1, 1e30, 1e-45, 0.5])];
    case 4: return ['f64', pick(rng, [NaN, 1e300, -0, 2 ** 53 + 2])];
    case 5: return ['bool', chance(rng, 0.5)];
    case 6: return ['string', pick(rng, ['', 'x', 'llama', 'clip', 'gemma3', 'gemma2', 'yarn', 'none', 'a'.repeat(5000), '\u0000\uffff'])];
    case 7: return [{ array: 'u32' }, Array.from({ length: pick(rng, [0, 1, layers, layers + 1, 3]) }, () => Number(hostileUnsigned(rng, 8n, 32)))];
    case 8: return [{ array: 'f32' }, Array.from({ length: pick(rng, [0, 2, 3, 4]) }, () => pick(rng, [0, 0.5, NaN, -1, 1e30]))];
    default: return [{ array: 'string' }, ['a', 'b']];
  }
}

/** One structural corruption of a GGUF model, or a byte-level one. */
export function mutateGguf(rng: Rng, seed: GgufModel): Mutant {
  const layers = 2;
  const steps = chance(rng, 0.15) ? 2 + int(rng, 2) : 1;
  let m = clone(seed);
  const what: string[] = [];
  let fieldEdit: ((s: { bytes: Uint8Array; fields: Field[] }) => void) | null = null;
  for (let s = 0; s < steps; s++) {
    const r = rng();
    if (r < 0.3 && m.kvs.length > 0) {
      const i = int(rng, m.kvs.length);
      const kv = m.kvs[i]!;
      if (chance(rng, 0.15)) {
        m.kvs.splice(i, 1);
        what.push(`delete key ${kv.key}`);
      } else {
        const [type, value] = hostileKv(rng, kv.type, kv.value, layers);
        m.kvs[i] = { key: kv.key, type, value };
        what.push(`key ${kv.key} := ${describe(type, value)}`);
      }
    } else if (r < 0.38) {
      const key = pick(rng, EXTRA_KEYS);
      const [type, value] = hostileKv(rng, undefined, undefined, layers);
      m.kvs = m.kvs.filter((kv) => kv.key !== key);
      m.kvs.splice(int(rng, m.kvs.length + 1), 0, { key, type, value });
      what.push(`add key ${key} = ${describe(type, value)}`);
    } else if (r < 0.6 && m.tensors.length > 0) {
      what.push(mutateTensorInfo(rng, m));
    } else if (r < 0.82) {
      fieldEdit = (ser) => {
        const f = pick(rng, ser.fields);
        const view = new DataView(ser.bytes.buffer, ser.bytes.byteOffset);
        const orig = f.width === 8 ? view.getBigUint64(f.at, true) : BigInt(view.getUint32(f.at, true));
        const v = hostileUnsigned(rng, orig, f.width === 8 ? 64 : 32);
        if (f.width === 8) view.setBigUint64(f.at, v, true);
        else view.setUint32(f.at, Number(v & 0xffffffffn), true);
        what.push(`${f.what} ${orig} -> ${v}`);
      };
    } else {
      const ser = serializeGguf(m);
      const hot = ser.bytes.length - m.data.length;
      const k = rng();
      const mutant = k < 0.5 ? flipBytes(rng, ser.bytes, hot) : k < 0.85 ? truncate(rng, ser.bytes, hot) : appendGarbage(rng, ser.bytes);
      what.push(mutant.what);
      return { bytes: mutant.bytes, what: what.join('; ') };
    }
  }
  const ser = serializeGguf(m);
  fieldEdit?.(ser);
  return { bytes: ser.bytes, what: what.join('; ') };
}

function mutateTensorInfo(rng: Rng, m: GgufModel): string {
  const i = int(rng, m.tensors.length);
  const t = m.tensors[i]!;
  switch (int(rng, 8)) {
    case 0: {
      const d = int(rng, t.ne.length);
      const before = t.ne[d]!;
      t.ne[d] = BigInt.asIntN(64, hostileUnsigned(rng, before, 64));
      return `tensor ${t.name} ne[${d}] ${before} -> ${t.ne[d]}`;
    }
    case 1:
      if (t.ne.length > 1 && chance(rng, 0.5)) t.ne.pop();
      else t.ne.push(pick(rng, [1n, 2n, 0n, 1n << 40n]));
      return `tensor ${t.name} dims -> [${t.ne.join(', ')}]`;
    case 2: {
      t.type = pick(rng, [0, 1, 2, 3, 8, 10, 12, 14, 16, 24, 30, 31, 40, 255, 2 ** 31, 2 ** 32 - 1]);
      return `tensor ${t.name} type -> ${t.type}`;
    }
    case 3: {
      const before = t.offset;
      t.offset = pick(rng, [t.offset + 32n, t.offset - 32n, t.offset + 1n, 0n, 1n << 40n, (1n << 64n) - 32n, m.tensors[int(rng, m.tensors.length)]!.offset]);
      return `tensor ${t.name} offset ${before} -> ${t.offset}`;
    }
    case 4: {
      const other = m.tensors[int(rng, m.tensors.length)]!.name;
      const before = t.name;
      t.name = pick(rng, ['', other, 'blk.999999.attn_q.weight', 'blk.4294967295.attn_norm.weight', 'blk.2.attn_q.weight', 'v.blk.9.ln1.weight', 'x'.repeat(300)]);
      return `tensor ${before} renamed ${JSON.stringify(t.name.slice(0, 40))}`;
    }
    case 5:
      m.tensors.splice(i, 1);
      return `drop tensor ${t.name}`;
    case 6: {
      const copy = { ...t, ne: [...t.ne], name: pick(rng, ['blk.7.attn_q.weight', 'output.weight', 'blk.2.ffn_up.weight', `${t.name}.copy`]) };
      m.tensors.push(copy);
      return `add tensor ${copy.name} over ${t.name}'s data`;
    }
    default: {
      t.ne = t.ne.map(() => 0n);
      return `tensor ${t.name} all dims 0`;
    }
  }
}

function describe(type: GgufType, value: GgufValue): string {
  const t = typeof type === 'object' ? `array<${JSON.stringify(type.array)}>` : type;
  const v = Array.isArray(value) ? `[${value.length} items]` : typeof value === 'string' ? JSON.stringify(value.slice(0, 20)) : String(value);
  return `${t} ${v}`;
}

// ---------------------------------------------------------------------------------------------
// safetensors: the header JSON edited, or its length field, or the bytes.

export interface SafetensorsModel { header: Record<string, any>; data: Uint8Array }

export function parseSafetensors(bytes: Uint8Array): SafetensorsModel {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  return { header: JSON.parse(Buffer.from(bytes.subarray(8, 8 + n)).toString('utf8')), data: bytes.subarray(8 + n) };
}

function encodeSafetensorsRaw(headerText: string, data: Uint8Array, lengthDelta = 0n): Uint8Array {
  let text = headerText;
  while (Buffer.byteLength(text) % 8 !== 0) text += ' ';
  const header = Buffer.from(text, 'utf8');
  const out = new Uint8Array(8 + header.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt.asUintN(64, BigInt(header.length) + lengthDelta), true);
  out.set(header, 8);
  out.set(data, 8 + header.length);
  return out;
}

const HOSTILE_NUMBERS = [0, 1, -1, 0.5, 2 ** 31, 2 ** 32, 2 ** 53, 2 ** 53 + 2, 1e9, 1e300, 262144, 65536];

export function mutateSafetensors(rng: Rng, seed: SafetensorsModel): Mutant {
  const header = structuredClone(seed.header);
  const names = Object.keys(header).filter((k) => k !== '__metadata__');
  const r = rng();
  const plain = encodeSafetensorsRaw(JSON.stringify(seed.header), seed.data);
  const headerEnd = plain.length - seed.data.length;
  if (r < 0.15) {
    const k = BigInt((1 + int(rng, 16)) * (chance(rng, 0.5) ? 1 : -1));
    return { bytes: encodeSafetensorsRaw(JSON.stringify(header), seed.data, k), what: `header length ${k > 0n ? '+' : ''}${k}` };
  }
  if (r < 0.2) {
    const bytes = copy(plain);
    const v = pick(rng, [0n, 1n, 2n, 1n << 63n, 100_000_000n, BigInt(bytes.length - 8), BigInt(bytes.length), (1n << 64n) - 1n]);
    new DataView(bytes.buffer).setBigUint64(0, v, true);
    return { bytes, what: `header length := ${v}` };
  }
  if (r < 0.6 && names.length > 0) {
    const name = pick(rng, names);
    const e = header[name];
    let what: string;
    let text: string | null = null;
    switch (int(rng, 9)) {
      case 0:
        e.dtype = pick(rng, ['F32', 'F16', 'BF16', 'F64', 'I64', 'U8', 'bf16', '', 'Q8_0', 7, null]);
        what = `${name}.dtype := ${JSON.stringify(e.dtype)}`;
        break;
      case 1: {
        const d = int(rng, e.shape.length);
        e.shape[d] = pick(rng, [...HOSTILE_NUMBERS, '3', null]);
        what = `${name}.shape[${d}] := ${JSON.stringify(e.shape[d])}`;
        break;
      }
      case 2:
        if (chance(rng, 0.5)) e.shape.push(pick(rng, [1, 2, 0]));
        else e.shape.pop();
        what = `${name}.shape := ${JSON.stringify(e.shape)}`;
        break;
      case 3: {
        const k = int(rng, 2);
        e.data_offsets[k] = pick(rng, [e.data_offsets[k] + 2, e.data_offsets[k] - 2, e.data_offsets[k] + 1, 0, ...HOSTILE_NUMBERS]);
        what = `${name}.data_offsets := ${JSON.stringify(e.data_offsets)}`;
        break;
      }
      case 4:
        e.data_offsets = pick(rng, [[e.data_offsets[1], e.data_offsets[0]], [0, 0], [e.data_offsets[0]], 'x', [0, 1, 2]]);
        what = `${name}.data_offsets := ${JSON.stringify(e.data_offsets)}`;
        break;
      case 5:
        delete header[name];
        what = `delete ${name}`;
        break;
      case 6: {
        const other = pick(rng, names);
        header[`${name}.alias`] = structuredClone(header[other]);
        what = `add a tensor over ${other}'s bytes`;
        break;
      }
      case 7: {
        // A duplicate key (JSON.parse keeps the last): the raw text is edited.
        const json = JSON.stringify(header);
        const other = pick(rng, names);
        text = json.replace(`"${other}":`, `"${name}":`);
        what = `duplicate key ${name} (over ${other})`;
        break;
      }
      default:
        header[name] = pick(rng, [null, 1, 'x', [], { dtype: 'BF16' }]);
        what = `${name} := ${JSON.stringify(header[name])}`;
    }
    return { bytes: encodeSafetensorsRaw(text ?? JSON.stringify(header), seed.data), what };
  }
  if (r < 0.65) {
    header['__metadata__'] = pick(rng, [null, 1, 'x', { format: 1 }, { format: 'pt', a: { b: 1 } }, []]);
    return { bytes: encodeSafetensorsRaw(JSON.stringify(header), seed.data), what: `__metadata__ := ${JSON.stringify(header['__metadata__'])}` };
  }
  if (r < 0.8) return flipBytes(rng, plain, headerEnd);
  if (r < 0.9) return truncate(rng, plain, headerEnd);
  if (r < 0.95) return appendGarbage(rng, plain);
  const n = 1 + int(rng, 64);
  return { bytes: plain.subarray(0, plain.length - n), what: `drop the last ${n} bytes` };
}

// ---------------------------------------------------------------------------------------------
// JSON files (config.json, tokenizer.json, preprocessor_config.json, ...).

type Path = (string | number)[];

function paths(v: unknown, prefix: Path, out: Path[], budget: { n: number }): void {
  if (budget.n-- <= 0) return;
  out.push(prefix);
  if (Array.isArray(v)) v.forEach((x, i) => paths(x, [...prefix, i], out, budget));
  else if (v !== null && typeof v === 'object') for (const [k, x] of Object.entries(v)) paths(x, [...prefix, k], out, budget);
}

const HOSTILE_JSON: unknown[] = [...HOSTILE_NUMBERS, -0.0, 1e-320, 2 ** 31 - 1, 0x7ffffff, 999_999_999, '', 'x', '12', null, true, false, [], {}, [1e9], [0, 0, 0]];

/**
 * One corruption of a JSON document: a field (chosen among all, or among `focus` paths, which
 * name the fields that size things) set to a hostile value, deleted or duplicated, or the text's
 * bytes flipped or cut.
 */
export function mutateJson(rng: Rng, text: string, focus: readonly string[] = []): Mutant {
  const r = rng();
  const bytes = Buffer.from(text, 'utf8');
  if (r < 0.12) return flipBytes(rng, bytes);
  if (r < 0.2) return truncate(rng, bytes);
  const doc = JSON.parse(text);
  let target: Path;
  const focused = focus.map((f) => f.split('.').map((p) => (/^\d+$/.test(p) ? Number(p) : p))).filter((p) => get(doc, p.slice(0, -1)) !== undefined);
  if (focused.length > 0 && chance(rng, 0.5)) target = pick(rng, focused);
  else {
    const all: Path[] = [];
    paths(doc, [], all, { n: 20000 });
    target = pick(rng, all.slice(1));
  }
  if (target === undefined) return flipBytes(rng, bytes);
  const parent = get(doc, target.slice(0, -1)) as any;
  const key = target[target.length - 1]!;
  const orig = parent?.[key];
  let what: string;
  const k = rng();
  if (k < 0.7) {
    const value = typeof orig === 'number' && chance(rng, 0.6)
      ? pick(rng, [orig * 2, orig + 1, orig - 1, orig * 1000, -orig, ...HOSTILE_NUMBERS, 2 ** 31 - 1, 0x7ffffff, 999_999_999])
      : pick(rng, HOSTILE_JSON);
    parent[key] = value;
    what = `${target.join('.')} := ${JSON.stringify(value)}`;
  } else if (k < 0.85) {
    if (Array.isArray(parent)) parent.splice(key as number, 1);
    else delete parent[key];
    what = `delete ${target.join('.')}`;
  } else if (Array.isArray(parent)) {
    parent.splice(key as number, 0, structuredClone(orig));
    what = `duplicate ${target.join('.')}`;
  } else {
    // Many copies of a scalar; two of anything bigger (10000 copies of a vocabulary would only test the mutator).
    const copies = orig !== null && typeof orig === 'object' ? 2 : pick(rng, [2, 100, 10000]);
    parent[key] = Array.from({ length: copies }, () => structuredClone(orig) ?? 0);
    what = `${target.join('.')} := an array of copies`;
  }
  return { bytes: Buffer.from(JSON.stringify(doc), 'utf8'), what };
}

function get(doc: unknown, path: Path): unknown {
  let v: any = doc;
  for (const p of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = v[p];
  }
  return v;
}

// ---------------------------------------------------------------------------------------------
// Images: PNG and JPEG headers.

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(b: Uint8Array): number {
  let c = 0xffffffff;
  for (const x of b) c = CRC_TABLE[(c ^ x) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

const HOSTILE_SIDES = [0, 1, 2, 255, 4096, 8192, 9000, 10000, 16384, 30000, 65500, 65535, 100000, 2 ** 31 - 1, 2 ** 32 - 1];

export function mutateImage(rng: Rng, src: Uint8Array): Mutant {
  const isPng = src[0] === 0x89;
  const r = rng();
  if (r < 0.3) return flipBytes(rng, src, 200);
  if (r < 0.45) return truncate(rng, src, 400);
  if (r < 0.5) return appendGarbage(rng, src);
  const out = copy(src);
  const view = new DataView(out.buffer);
  if (isPng) {
    // IHDR: length(4) "IHDR" width(4) height(4) ... crc at 29.
    const chunks: number[] = [];
    for (let at = 8; at + 8 <= out.length; at += 12 + view.getUint32(at)) chunks.push(at);
    if (r < 0.8) {
      // Width, height or both (a small file claiming a big picture).
      const fields = pick(rng, [[16], [20], [16, 20]]);
      const v = fields.map(() => pick(rng, HOSTILE_SIDES));
      fields.forEach((field, k) => view.setUint32(field, v[k]! >>> 0));
      const fixCrc = chance(rng, 0.7);
      if (fixCrc) view.setUint32(29, crc32(out.subarray(12, 29)));
      return { bytes: out, what: `PNG ${fields.map((f, k) => `${f === 16 ? 'width' : 'height'} := ${v[k]}`).join(', ')}${fixCrc ? ' (CRC fixed)' : ''}` };
    }
    if (chunks.length === 0) return flipBytes(rng, src, 200);
    const at = pick(rng, chunks);
    const v = pick(rng, [0, 1, 2 ** 31 - 1, 2 ** 32 - 1, view.getUint32(at) + 1, view.getUint32(at) * 100]);
    view.setUint32(at, v >>> 0);
    return { bytes: out, what: `PNG chunk at ${at} length := ${v}` };
  }
  // JPEG: walk the marker segments before the scan.
  const segments: { at: number; marker: number }[] = [];
  for (let at = 2; at + 4 <= out.length && out[at] === 0xff;) {
    const marker = out[at + 1]!;
    segments.push({ at, marker });
    if (marker === 0xda) break;
    at += 2 + view.getUint16(at + 2);
  }
  const sof = segments.find((s) => s.marker >= 0xc0 && s.marker <= 0xc2);
  if (r < 0.8 && sof) {
    if (chance(rng, 0.15)) {
      const v = pick(rng, [0, 1, 2, 4, 255]);
      out[sof.at + 9] = v;
      return { bytes: out, what: `JPEG component count := ${v}` };
    }
    // Height, width or both (a small file claiming a big picture).
    const fields = pick(rng, [[sof.at + 5], [sof.at + 7], [sof.at + 5, sof.at + 7]]);
    const v = fields.map(() => pick(rng, HOSTILE_SIDES) & 0xffff);
    fields.forEach((field, k) => view.setUint16(field, v[k]!));
    return { bytes: out, what: `JPEG ${fields.map((f, k) => `${f === sof.at + 5 ? 'height' : 'width'} := ${v[k]}`).join(', ')}` };
  }
  if (segments.length === 0) return flipBytes(rng, src, 200);
  const seg = pick(rng, segments);
  const v = pick(rng, [0, 1, 2, 0xffff, view.getUint16(seg.at + 2) + 1, view.getUint16(seg.at + 2) - 1]);
  view.setUint16(seg.at + 2, v & 0xffff);
  return { bytes: out, what: `JPEG segment 0x${seg.marker.toString(16)} length := ${v}` };
}
