// Synthetic Gemma 3 GGUFs with the exact 4B text shapes (34 layers, hidden 2560, 8/4 heads,
// intermediate 10240, 262144-token embedding), random weights and the real tokenizer, written
// with the project's own GGUF writer. Speed does not depend on the values, so both engines can
// be timed on the real sizes without real weights. Cached: written once per weight type.
import { existsSync, mkdirSync, readFileSync, renameSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { textParameters, FILE_TYPE, type ConvertType } from '../src/convert/convert.js';
import { readGgufVocab } from '../src/convert/vocab.js';
import { f32ToF16, rowBytes } from '../src/formats/dtypes.js';
import { writeGguf, type GgufTensorInput } from '../src/formats/gguf-writer.js';
import type { DType } from '../src/formats/tensor-source.js';
import { parseConfig } from '../src/model/config.js';
import { textWeightSpecs } from '../src/model/weight-names.js';
import { REPO_ROOT } from './paths.js';

export type BenchWeights = 'bf16' | 'q8_0' | 'q4_0';

export function synthetic4bPath(type: BenchWeights, cacheDir: string): string {
  return join(cacheDir, `gemma3-4b-synthetic-${type}.gguf`);
}

/** Writes the file unless it already exists; returns its path. */
export function ensureSynthetic4b(type: BenchWeights, cacheDir: string, log: (s: string) => void): string {
  const path = synthetic4bPath(type, cacheDir);
  if (existsSync(path) && statSync(path).size > 1e9) return path;
  mkdirSync(cacheDir, { recursive: true });
  const config = parseConfig(JSON.parse(readFileSync(join(REPO_ROOT, 'test', 'fixtures', 'configs', 'gemma-3-4b-it', 'config.json'), 'utf8')));
  const text = { ...config.text, vocabSize: 262144 };
  const vocab = readGgufVocab(join(REPO_ROOT, 'test', 'fixtures', 'tiny-text'));
  let rng = 0x9e3779b9;
  const tensors: GgufTensorInput[] = textWeightSpecs(text).map((spec) => {
    const isMatrix = spec.shape.length === 2;
    const dtype: DType = isMatrix ? type : 'f32';
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
      ['general.name', 'string', `gemma-3-4b synthetic ${type}`],
      ...textParameters({ ...config, text }, FILE_TYPE[type as ConvertType]),
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
  return path;
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
  } else {
    const blockBytes = dtype === 'q8_0' ? 34 : 18;
    const scale = f32ToF16(dtype === 'q8_0' ? 0.02 / 127 : 0.02 / 8);
    for (let b = 0; b < out.length; b += blockBytes) {
      out[b] = scale & 0xff;
      out[b + 1] = scale >> 8;
    }
  }
  return s;
}
