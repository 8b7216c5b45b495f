// A Session: a KV cache of its own that chat() and complete() calls reuse (the longest prefix of
// each prompt it already holds), and its file form, so that a long system prompt or document
// survives a restart. The file is checked before anything of it is used: magic, version, sizes,
// a SHA-256 of the keys and values, the model it was computed by and the cache layout; a file
// that fails any of these is refused with a typed error, never loaded into a cache.
import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import type { ChatMessage } from './chat/messages.js';
import { GemmaError } from './errors.js';
import type { GenerationChunk, GenerationTarget } from './generate/generate.js';
import type { Gemma3, ChatOptions } from './gemma3.js';
import type { Gemma3TextConfig } from './model/config.js';
import type { LayerCache } from './model/kv-cache.js';
import type { TextWeights } from './model/weights.js';

const MAGIC = 'GEMMA3KV';
const VERSION = 1;
/** Magic, version, header length. */
const PREAMBLE = MAGIC.length + 8;

export class Session {
  /** @internal Use Gemma3.createSession() or loadSession(). */
  constructor(private readonly model: Gemma3, /** @internal */ readonly target: GenerationTarget) {}

  /** Streams the reply to a conversation (as Gemma3.chat), reusing what this session holds. */
  chat(messages: readonly ChatMessage[], options: ChatOptions = {}): AsyncGenerator<GenerationChunk> {
    return this.model.chatOn(this.target, messages, options);
  }

  /** Streams a raw completion (as Gemma3.complete), reusing what this session holds. */
  complete(prompt: string | { ids: readonly number[] }, options: ChatOptions = {}): AsyncGenerator<GenerationChunk> {
    return this.model.completeOn(this.target, prompt, options);
  }

  /** Token ids whose keys and values the session holds (a later prompt starting with them skips them). */
  get ids(): readonly number[] {
    return this.target.cachedIds;
  }

  /** Forgets everything held. */
  reset(): void {
    this.target.cache.reset();
    this.target.cachedIds = [];
  }

  /** Writes the session to `path` (keys and values of its positions, with their ids). */
  async save(path: string): Promise<void> {
    const { cache, cachedIds } = this.target;
    if (cachedIds.length !== cache.length) {
      throw new GemmaError('INVALID_ARGUMENT', 'the session is in the middle of a generation (or one failed); save it once the stream has ended');
    }
    const parts = cache.layers.flatMap((l) => [usedBytes(l, cache.length, 'k'), usedBytes(l, cache.length, 'v')]);
    const body = Buffer.concat(parts);
    const header: SessionHeader = {
      model: modelFingerprint(this.target.decoder.config, this.target.decoder.weights),
      capacity: cache.capacity, length: cache.length, ids: [...cachedIds],
      firstImage: this.target.cachedFirstImage ?? null,
      layers: cache.layers.map((l) => layoutOf(l)),
      bodyBytes: body.length,
      bodySha256: createHash('sha256').update(body).digest('hex'),
    };
    const json = Buffer.from(JSON.stringify(header), 'utf8');
    const preamble = Buffer.alloc(PREAMBLE);
    preamble.write(MAGIC, 0, 'latin1');
    preamble.writeUInt32LE(VERSION, MAGIC.length);
    preamble.writeUInt32LE(json.length, MAGIC.length + 4);
    await writeFile(path, Buffer.concat([preamble, json, body]));
  }
}

interface LayerLayout {
  slots: number;
  ring: number;
  block: number;
  /** The typed array the keys and values are stored in, and its byte length. */
  storage: string;
  bytes: number;
  /** The KV type (f16 and bf16 share a Uint16Array and its size: only this tells them apart). */
  kvType: string;
}

interface SessionHeader {
  model: string;
  capacity: number;
  length: number;
  ids: number[];
  firstImage: number | null;
  layers: LayerLayout[];
  bodyBytes: number;
  bodySha256: string;
}

function layoutOf(l: LayerCache): LayerLayout {
  return { slots: l.slots, ring: l.ring, block: l.block, storage: l.k.constructor.name, bytes: l.k.byteLength, kvType: l.type ?? 'f32' };
}

/** The bytes of a layer's keys or values that hold positions [0, length): all of a ring, the first blocks of a global layer. */
function usedBytes(l: LayerCache, length: number, which: 'k' | 'v'): Uint8Array {
  const a = l[which];
  const all = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  if (l.ring > 0) return all;
  const blocks = Math.ceil(l.slots / l.block);
  return all.subarray(0, (Math.ceil(length / l.block) * a.byteLength) / blocks);
}

/**
 * What identifies the computation a cache came from, independent of the backend: the text
 * config, every weight matrix's storage type (a Q4_0 and a BF16 file of one model give other
 * keys), and the norm weights (which differ between checkpoints of one architecture).
 */
export function modelFingerprint(config: Gemma3TextConfig, weights: TextWeights): string {
  const h = createHash('sha256');
  h.update(JSON.stringify(config));
  const f32 = (a: Float32Array) => h.update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
  h.update(weights.tokenEmbd.dtype + (weights.output?.dtype ?? ''));
  f32(weights.outputNorm);
  for (const l of weights.layers) {
    h.update([l.attnQ, l.attnK, l.attnV, l.attnOutput, l.ffnGate, l.ffnUp, l.ffnDown].map((m) => m.dtype).join(','));
    for (const norm of [l.attnNorm, l.attnQNorm, l.attnKNorm, l.postAttentionNorm, l.ffnNorm, l.postFfwNorm]) f32(norm);
  }
  return h.digest('hex');
}

/** Fills `target` (an empty session of this model) from the file at `path`, after checking all of it. */
export async function readSessionFile(path: string, target: GenerationTarget, fingerprint: string): Promise<void> {
  let file: Buffer;
  try {
    file = await readFile(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new GemmaError(code === 'ENOENT' ? 'FILE_NOT_FOUND' : 'BAD_FORMAT', `cannot read the session file ${path}: ${(err as Error).message}`, { cause: err });
  }
  const bad = (why: string) => new GemmaError('BAD_FORMAT', `${path} is not a usable session file: ${why}`);
  if (file.length < PREAMBLE || file.toString('latin1', 0, MAGIC.length) !== MAGIC) throw bad('it does not start with the session file magic');
  const version = file.readUInt32LE(MAGIC.length);
  if (version !== VERSION) throw bad(`it is version ${version}; this engine reads version ${VERSION}`);
  const headerBytes = file.readUInt32LE(MAGIC.length + 4);
  if (PREAMBLE + headerBytes > file.length) throw bad(`it is truncated (${file.length} bytes, the header alone needs ${PREAMBLE + headerBytes})`);
  let header: SessionHeader;
  try {
    header = JSON.parse(file.toString('utf8', PREAMBLE, PREAMBLE + headerBytes)) as SessionHeader;
  } catch {
    throw bad('its header is corrupt');
  }
  if (!isHeader(header)) throw bad('its header is corrupt');
  const expectedSize = PREAMBLE + headerBytes + header.bodyBytes;
  if (file.length < expectedSize) throw bad(`it is truncated (${file.length} of ${expectedSize} bytes)`);
  if (file.length > expectedSize) throw bad(`it has ${file.length - expectedSize} bytes after its end`);
  const body = file.subarray(PREAMBLE + headerBytes);
  if (createHash('sha256').update(body).digest('hex') !== header.bodySha256) throw bad('its keys and values are corrupt (checksum mismatch)');

  const { cache, decoder } = target;
  if (header.model !== fingerprint) {
    throw new GemmaError('INVALID_ARGUMENT', `${path} was saved from another model (or another quantization of it); load it with the model that wrote it`);
  }
  const mine = cache.layers.map(layoutOf);
  if (header.capacity !== cache.capacity || JSON.stringify(header.layers) !== JSON.stringify(mine)) {
    throw new GemmaError('INVALID_ARGUMENT',
      `${path} holds a KV cache of another layout (context ${header.capacity}, ${describeLayout(header.layers)}) ` +
      `than this model's (context ${cache.capacity}, ${describeLayout(mine)}); load the model with the context length and KV type it was saved with`);
  }
  const vocab = decoder.config.vocabSize;
  if (header.length > cache.capacity || header.ids.length !== header.length || header.ids.some((id) => !Number.isInteger(id) || id < 0 || id >= vocab)) {
    throw bad('its token ids do not fit the model');
  }
  let offset = 0;
  const parts = cache.layers.flatMap((l) => [usedBytes(l, header.length, 'k'), usedBytes(l, header.length, 'v')]);
  if (parts.reduce((s, p) => s + p.length, 0) !== body.length) throw bad('its keys and values do not match its header');
  for (const part of parts) {
    part.set(body.subarray(offset, offset + part.length));
    offset += part.length;
  }
  cache.length = header.length;
  target.cachedIds = [...header.ids];
  if (header.firstImage !== null) target.cachedFirstImage = header.firstImage;
}

function describeLayout(layers: LayerLayout[]): string {
  const first = layers[0];
  return first ? `${layers.length} layers of ${first.kvType ?? 'f32'} keys and values` : 'no layers';
}

function isHeader(h: unknown): h is SessionHeader {
  if (h === null || typeof h !== 'object') return false;
  const o = h as Record<string, unknown>;
  const int = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 0;
  return typeof o.model === 'string' && int(o.capacity) && int(o.length) && Array.isArray(o.ids) && int(o.bodyBytes) &&
    typeof o.bodySha256 === 'string' && Array.isArray(o.layers) && (o.firstImage === null || int(o.firstImage)) &&
    o.layers.every((l) => l !== null && typeof l === 'object' && ['slots', 'ring', 'block', 'bytes'].every((k) => int((l as Record<string, unknown>)[k])) &&
      typeof (l as Record<string, unknown>).storage === 'string');
}
