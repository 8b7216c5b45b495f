// Synthetic Gemma 3 GGUFs with the exact 4B text shapes (34 layers, hidden 2560, 8/4 heads,
// intermediate 10240, 262144-token embedding), random weights and the real tokenizer, written
// with the project's own GGUF writer. Q4_K_M and Q6_K files follow llama-quantize's per-tensor
// types (the converter's recipe) with random but valid super-blocks written directly, in bulk. Speed does not depend on the values, so both engines can
// be timed on the real sizes without real weights. Cached: written once per weight type.
import { existsSync, mkdirSync, readFileSync, renameSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { textParameters, textTensorType, FILE_TYPE } from '../src/convert/convert.js';
import { readGgufVocab } from '../src/convert/vocab.js';
import { f32ToF16, rowBytes } from '../src/formats/dtypes.js';
import { writeGguf, type GgufTensorInput } from '../src/formats/gguf-writer.js';
import type { DType } from '../src/formats/tensor-source.js';
import { parseConfig, type Gemma3Config } from '../src/model/config.js';
import { textWeightSpecs, type WeightSpec } from '../src/model/weight-names.js';
import { REPO_ROOT } from './paths.js';

/** The weight types the benchmark can write: one type for every matrix, or a llama-quantize mix. */
export const BENCH_WEIGHTS = ['bf16', 'q8_0', 'q4_0', 'q4_k_m', 'q6_k'] as const;
export type BenchWeights = (typeof BENCH_WEIGHTS)[number];

/** Parses a --weights list (comma-separated); an unknown name is an error naming the flag. */
export function parseBenchWeights(list: string, flag = '--weights'): BenchWeights[] {
  const names = list.split(',').map((w) => w.trim()).filter((w) => w !== '');
  if (names.length === 0) throw new Error(`${flag} takes a comma-separated list of ${BENCH_WEIGHTS.join(', ')}; got '${list}'`);
  for (const w of names) {
    if (!(BENCH_WEIGHTS as readonly string[]).includes(w)) throw new Error(`${flag}: unknown weight type '${w}' (one of ${BENCH_WEIGHTS.join(', ')})`);
  }
  return names as BenchWeights[];
}

export function synthetic4bPath(type: BenchWeights, cacheDir: string): string {
  return join(cacheDir, `gemma3-4b-synthetic-${type}.gguf`);
}

/** Writes the file unless it already exists; returns its path. */
export function ensureSynthetic4b(type: BenchWeights, cacheDir: string, log: (s: string) => void): string {
  const path = synthetic4bPath(type, cacheDir);
  if (existsSync(path) && statSync(path).size > 1e9) return path;
  mkdirSync(cacheDir, { recursive: true });
  const config = parseConfig(JSON.parse(readFileSync(join(REPO_ROOT, 'test', 'fixtures', 'configs', 'gemma-3-4b-it', 'config.json'), 'utf8')));
  writeSyntheticGguf(path, { ...config, text: { ...config.text, vocabSize: 262144 } }, type, log, 'gemma-3-4b');
  return path;
}

/**
 * The stored type of each text tensor: norms f32; matrices `type`, or for the llama-quantize
 * mixes (q4_k_m, q6_k) the converter's per-tensor recipe (textTensorType: Q6_K for the tied
 * embedding and, in Q4_K_M, for the attn_v / ffn_down of use_more_bits's layers).
 */
export function syntheticTensorType(spec: WeightSpec, type: BenchWeights, numLayers: number): DType {
  if (spec.shape.length !== 2) return 'f32';
  if (type !== 'q4_k_m' && type !== 'q6_k') return type;
  const outputHead = spec.canonical === 'token_embd.weight' || spec.canonical === 'output.weight';
  return textTensorType(spec, spec.shape, type, outputHead, numLayers);
}

/** A GGUF of `config`'s text shapes with random weights of `type` and the real tokenizer (written to path + '.partial', then renamed). */
export function writeSyntheticGguf(path: string, config: Gemma3Config, type: BenchWeights, log: (s: string) => void, name = 'gemma-3'): void {
  const text = config.text;
  const vocab = readGgufVocab(join(REPO_ROOT, 'test', 'fixtures', 'tiny-text'));
  let rng = 0x9e3779b9;
  const tensors: GgufTensorInput[] = textWeightSpecs(text).map((spec) => {
    const isMatrix = spec.shape.length === 2;
    const dtype = syntheticTensorType(spec, type, text.numLayers);
    return {
      name: spec.canonical,
      dtype,
      shape: spec.shape,
      data: function* () {
        const cols = spec.shape[spec.shape.length - 1]!;
        const rows = isMatrix ? spec.shape[0]! : 1;
        const rowsPerChunk = Math.max(1, Math.floor((1 << 24) / rowBytes(dtype, cols)));
        for (let r = 0; r < rows; r += rowsPerChunk) {
          const n = Math.min(rowsPerChunk, rows - r);
          const out = new Uint8Array(n * rowBytes(dtype, cols));
          if (!isMatrix) {
            new Float32Array(out.buffer).fill(1); // norms stored as 1 + w with w = 0
          } else {
            rng = fillRandom(out, dtype, rng);
          }
          yield out;
        }
      },
    };
  });
  const tmp = path + '.partial';
  const started = Date.now();
  writeGguf(tmp, {
    metadata: [
      ['general.architecture', 'string', 'gemma3'],
      ['general.type', 'string', 'model'],
      ['general.name', 'string', `${name} synthetic ${type}`],
      ...textParameters(config, FILE_TYPE[type]),
      ['general.quantization_version', 'u32', 2],
      ...vocab.metadata,
    ],
    tensors,
    onTensor: (i, n) => {
      if (i % 40 === 0 || i === n) log(`writing ${path}: ${i}/${n} tensors`);
    },
  });
  renameSync(tmp, path);
  log(`wrote ${path} (${(statSync(path).size / 1e9).toFixed(2)} GB) in ${((Date.now() - started) / 1000).toFixed(0)} s`);
}

/** A [rows, cols] matrix of `dtype` with the benchmark's random weights (for kernel timings). */
export function randomMatrixBytes(dtype: DType, rows: number, cols: number, seed = 0x9e3779b9): Uint8Array {
  const out = new Uint8Array(rows * rowBytes(dtype, cols));
  fillRandom(out, dtype, seed);
  return out;
}

/** Random but well-scaled weights (|w| ~ 0.02) in each storage format; returns the PRNG state. */
function fillRandom(out: Uint8Array, dtype: DType, state: number): number {
  const u32 = new Uint32Array(out.buffer, out.byteOffset, out.length >> 2);
  let s = state;
  for (let i = 0; i < u32.length; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    u32[i] = s >>> 0;
  }
  if (dtype === 'bf16') {
    // Keep sign and mantissa bits, force the exponent near 2^-6: values in ±[0.0156, 0.031).
    const u16 = new Uint16Array(out.buffer, out.byteOffset, out.length >> 1);
    for (let i = 0; i < u16.length; i++) u16[i] = (u16[i]! & 0x807f) | 0x3c80;
  } else if (dtype === 'q4_k') {
    // 144-byte super-blocks: f16 d and dmin, then random 6-bit scales / mins (every bit pattern of
    // the 12 bytes is valid) and random 4-bit quants: w = d·sc·q − dmin·m, within about ±0.05.
    const d = f16Bytes(6e-5), dmin = f16Bytes(4.5e-4);
    for (let b = 0; b < out.length; b += 144) {
      out[b] = d[0];
      out[b + 1] = d[1];
      out[b + 2] = dmin[0];
      out[b + 3] = dmin[1];
    }
  } else if (dtype === 'q6_k') {
    // 210-byte super-blocks: random 6-bit quants (ql, qh) and int8 scales (any byte is valid),
    // then an f16 d: w = d·sc·(q − 32), within ±0.05.
    const d = f16Bytes(1.2e-5);
    for (let b = 0; b < out.length; b += 210) {
      out[b + 208] = d[0];
      out[b + 209] = d[1];
    }
  } else if (dtype === 'q8_0' || dtype === 'q4_0') {
    const blockBytes = dtype === 'q8_0' ? 34 : 18;
    const scale = f32ToF16(dtype === 'q8_0' ? 0.02 / 127 : 0.02 / 8);
    for (let b = 0; b < out.length; b += blockBytes) {
      out[b] = scale & 0xff;
      out[b + 1] = scale >> 8;
    }
  } else {
    throw new Error(`synthetic weights: no random filler for ${dtype}`);
  }
  return s;
}

/** An f16's two little-endian bytes. */
function f16Bytes(v: number): [number, number] {
  const h = f32ToF16(v);
  return [h & 0xff, h >> 8];
}
