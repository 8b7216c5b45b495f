import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { type GemmaErrorCode } from '../src/errors.js';
import { bf16ToF32, elementSize, f16ToF32, f32ToBf16, toFloat32 } from '../src/formats/dtypes.js';
import { openCheckpoint, openSafetensors } from '../src/formats/safetensors.js';
import type { RawTensor, TensorSource } from '../src/formats/tensor-source.js';
import { fixturePath, throwsGemma } from './helpers.js';
import { encodeRaw, encodeSafetensors, tempDir, zeros, type StTensor } from './st-writer.js';

const u16 = (values: number[]): Uint8Array => new Uint8Array(new Uint16Array(values).buffer);
const raw = (dtype: RawTensor['dtype'], shape: number[], data: Uint8Array): RawTensor => ({ name: 't', dtype, shape, data });

describe('dtypes', () => {
  test('element sizes', () => {
    assert.deepEqual([elementSize('f32'), elementSize('f16'), elementSize('bf16')], [4, 2, 2]);
  });

  test('bf16 edge cases', () => {
    assert.equal(bf16ToF32(0x3f80), 1);
    assert.equal(bf16ToF32(0xc000), -2);
    assert.ok(Object.is(bf16ToF32(0x0000), 0));
    assert.ok(Object.is(bf16ToF32(0x8000), -0));
    assert.equal(bf16ToF32(0x7f80), Infinity);
    assert.equal(bf16ToF32(0xff80), -Infinity);
    assert.ok(Number.isNaN(bf16ToF32(0x7fc0)));
    assert.ok(Number.isNaN(bf16ToF32(0xffff)));
    assert.equal(bf16ToF32(0x0001), 2 ** -133); // smallest subnormal
    assert.equal(bf16ToF32(0x7f7f), (2 - 2 ** -7) * 2 ** 127); // largest finite
    assert.equal(bf16ToF32(0x4049), 3.140625);
  });

  test('f16 edge cases: subnormals, infinities, NaN', () => {
    assert.equal(f16ToF32(0x3c00), 1);
    assert.equal(f16ToF32(0xc000), -2);
    assert.ok(Object.is(f16ToF32(0x8000), -0));
    assert.equal(f16ToF32(0x0001), 2 ** -24); // smallest subnormal
    assert.equal(f16ToF32(0x03ff), (1023 / 1024) * 2 ** -14); // largest subnormal
    assert.equal(f16ToF32(0x8001), -(2 ** -24));
    assert.equal(f16ToF32(0x0400), 2 ** -14); // smallest normal
    assert.equal(f16ToF32(0x7bff), 65504); // largest finite
    assert.equal(f16ToF32(0x3555), 0.333251953125);
    assert.equal(f16ToF32(0x7c00), Infinity);
    assert.equal(f16ToF32(0xfc00), -Infinity);
    assert.ok(Number.isNaN(f16ToF32(0x7e00)));
    assert.ok(Number.isNaN(f16ToF32(0x7c01)));
  });

  test('bulk conversion equals the scalar one for all 65536 bit patterns', () => {
    const all = Array.from({ length: 65536 }, (_, i) => i);
    const data = u16(all);
    const bf = toFloat32(raw('bf16', [65536], data));
    const hf = toFloat32(raw('f16', [256, 256], data));
    for (let i = 0; i < 65536; i++) {
      const a = bf16ToF32(i);
      const b = f16ToF32(i);
      assert.ok(Object.is(bf[i], a) || (Number.isNaN(a) && Number.isNaN(bf[i])), `bf16 ${i}`);
      assert.ok(Object.is(hf[i], Math.fround(b)) || (Number.isNaN(b) && Number.isNaN(hf[i])), `f16 ${i}`);
      assert.equal(Math.fround(b), b, 'f16 values are exact in float32');
    }
  });

  test('f32 is a view when aligned, a copy when not; odd offsets work for halves', () => {
    const f = new Float32Array([1.5, -2.25, 3e-39]);
    const aligned = new Uint8Array(f.buffer);
    const view = toFloat32(raw('f32', [3], aligned));
    assert.deepEqual([...view], [...f]);
    assert.equal(view.buffer, f.buffer);
    const shifted = new Uint8Array(13);
    shifted.set(aligned, 1);
    assert.deepEqual([...toFloat32(raw('f32', [3], shifted.subarray(1)))], [...f]);
    const halves = new Uint8Array(5);
    halves.set(u16([0x3f80, 0xc000]), 1);
    assert.deepEqual([...toFloat32(raw('bf16', [2], halves.subarray(1)))], [1, -2]);
    assert.deepEqual([...toFloat32(raw('f16', [2], halves.subarray(1)))], [f16ToF32(0x3f80), -2]);
    throwsGemma(() => toFloat32({ name: 'w', dtype: 'bf16', shape: [3], data: new Uint8Array(4) }), 'BAD_FORMAT', 'w');
  });

  test('f32ToBf16 rounds to nearest even and round-trips bf16 values', () => {
    assert.equal(f32ToBf16(1), 0x3f80);
    assert.equal(f32ToBf16(1 + 2 ** -8), 0x3f80); // tie → even (down)
    assert.equal(f32ToBf16(1 + 3 * 2 ** -8), 0x3f82); // tie → even (up)
    assert.equal(f32ToBf16(1 + 2 ** -8 + 2 ** -20), 0x3f81); // above the tie
    assert.equal(f32ToBf16(-Infinity), 0xff80);
    assert.ok(Number.isNaN(bf16ToF32(f32ToBf16(NaN))));
    for (let i = 0; i < 65536; i += 7) {
      const v = bf16ToF32(i);
      if (!Number.isNaN(v)) assert.equal(f32ToBf16(v), i);
    }
  });
});

/** Every tensor of a source as name → {info, bytes}. */
function snapshot(s: TensorSource): Map<string, { dtype: string; shape: readonly number[]; bytes: Buffer }> {
  return new Map(s.names().map((n) => {
    const t = s.read(n);
    return [n, { dtype: t.dtype, shape: t.shape, bytes: Buffer.from(t.data) }];
  }));
}

function fixtureTensors(dir: string): StTensor[] {
  const s = openCheckpoint(fixturePath(dir));
  try {
    return s.names().map((n) => {
      const t = s.read(n);
      return { name: n, dtype: t.dtype.toUpperCase(), shape: [...t.shape], data: t.data };
    });
  } finally {
    s.close();
  }
}

describe('reading the tiny checkpoints', () => {
  test('tiny-text: 106 BF16 tensors with the 1B layout', () => {
    const s = openCheckpoint(fixturePath('tiny-text'));
    try {
      assert.equal(s.names().length, 8 * 13 + 2);
      assert.deepEqual(s.metadata, { format: 'pt' });
      for (const n of s.names()) {
        assert.ok(n.startsWith('model.'), n);
        assert.equal(s.info(n).dtype, 'bf16');
      }
      const shapes: Record<string, number[]> = {
        'model.embed_tokens.weight': [262144, 64],
        'model.layers.0.self_attn.q_proj.weight': [128, 64],
        'model.layers.3.self_attn.k_proj.weight': [64, 64],
        'model.layers.7.self_attn.v_proj.weight': [64, 64],
        'model.layers.0.self_attn.o_proj.weight': [64, 128],
        'model.layers.0.self_attn.q_norm.weight': [32],
        'model.layers.5.mlp.gate_proj.weight': [128, 64],
        'model.layers.5.mlp.down_proj.weight': [64, 128],
        'model.layers.2.pre_feedforward_layernorm.weight': [64],
        'model.norm.weight': [64],
      };
      for (const [n, shape] of Object.entries(shapes)) assert.deepEqual(s.info(n).shape, shape, n);
      assert.equal(s.has('lm_head.weight'), false);
      assert.equal(s.info('model.embed_tokens.weight').sizeBytes, 262144 * 64 * 2);
      assert.ok(s.info('model.norm.weight').file.endsWith(join('tiny-text', 'model.safetensors')));

      const norm = s.read('model.norm.weight');
      assert.equal(norm.data.byteOffset % 8, 0);
      assert.equal(new Uint16Array(norm.data.buffer, norm.data.byteOffset, 64).length, 64);
      const values = toFloat32(norm);
      const mean = values.reduce((a, b) => a + b, 0) / values.length;
      assert.ok(mean > 1.3 && mean < 1.7, `final norm ~ N(1.5, 0.25²), mean ${mean}`);
      for (const v of values) assert.equal(bf16ToF32(f32ToBf16(v)), v, 'values are bf16');
      const embed = s.read('model.embed_tokens.weight');
      assert.equal(embed.data.byteLength, 262144 * 64 * 2);
    } finally {
      s.close();
    }
  });

  test('openSafetensors on the file equals openCheckpoint on the folder', () => {
    const a = openSafetensors(fixturePath('tiny-text', 'model.safetensors'));
    const b = openCheckpoint(fixturePath('tiny-text'));
    assert.deepEqual(a.names(), b.names());
    assert.deepEqual(Buffer.from(a.read('model.layers.4.mlp.up_proj.weight').data), Buffer.from(b.read('model.layers.4.mlp.up_proj.weight').data));
    a.close();
    b.close();
  });

  test('a sharded copy (2 shards + index) reads identically', () => {
    const tensors = fixtureTensors('tiny-text');
    const t = tempDir('shards');
    try {
      const half = Math.ceil(tensors.length / 2);
      const shards = [tensors.slice(0, half), tensors.slice(half)];
      const weightMap: Record<string, string> = {};
      shards.forEach((list, i) => {
        const file = `model-0000${i + 1}-of-00002.safetensors`;
        t.write(file, encodeSafetensors(list));
        for (const x of list) weightMap[x.name] = file;
      });
      t.write('model.safetensors.index.json', JSON.stringify({ metadata: { total_size: 0 }, weight_map: weightMap }));
      const original = openCheckpoint(fixturePath('tiny-text'));
      const sharded = openCheckpoint(t.dir);
      try {
        assert.deepEqual(new Set(sharded.names()), new Set(original.names()));
        assert.deepEqual(snapshot(sharded), snapshot(original));
        assert.ok(sharded.info('model.norm.weight').file.endsWith('model-00002-of-00002.safetensors'));
        assert.ok(sharded.info('model.embed_tokens.weight').file.endsWith('model-00001-of-00002.safetensors'));
      } finally {
        original.close();
        sharded.close();
      }
      // Without the index, a complete set of shards is still found.
      rmSync(join(t.dir, 'model.safetensors.index.json'));
      const noIndex = openCheckpoint(t.dir);
      assert.equal(noIndex.names().length, tensors.length);
      noIndex.close();
      rmSync(join(t.dir, 'model-00002-of-00002.safetensors'));
      throwsGemma(() => openCheckpoint(t.dir), 'FILE_NOT_FOUND', 'model-00002-of-00002.safetensors');
    } finally {
      t.cleanup();
    }
  });

  test('read after close is DISPOSED; unknown names are MISSING_TENSOR', () => {
    const s = openCheckpoint(fixturePath('tiny-text'));
    throwsGemma(() => s.info('nope.weight'), 'MISSING_TENSOR', 'nope.weight', 'model.safetensors');
    s.close();
    s.close(); // idempotent
    throwsGemma(() => s.read('model.norm.weight'), 'DISPOSED', 'model.norm.weight');
  });
});

describe('corrupt safetensors files', () => {
  const ok: StTensor = { name: 'w.weight', dtype: 'F32', shape: [2, 3], data: zeros('F32', [2, 3]) };

  /** Writes `bytes` as bad.safetensors and expects openSafetensors to throw naming the file. */
  function expectBad(bytes: Uint8Array, code: GemmaErrorCode, ...fragments: string[]): void {
    const t = tempDir('bad');
    try {
      const path = t.write('bad.safetensors', bytes);
      throwsGemma(() => openSafetensors(path), code, path, ...fragments);
      throwsGemma(() => openCheckpoint(path), code, path, ...fragments);
    } finally {
      t.cleanup();
    }
  }
  const header = (entries: Record<string, unknown>, dataBytes = 24): Uint8Array => encodeRaw(JSON.stringify(entries), new Uint8Array(dataBytes));
  const entry = (over: Record<string, unknown>) => ({ 'w.weight': { dtype: 'F32', shape: [2, 3], data_offsets: [0, 24], ...over } });

  test('a valid hand-made file opens (control)', () => {
    const t = tempDir('ok');
    try {
      const path = t.write('ok.safetensors', encodeSafetensors([ok, { name: 'empty', dtype: 'BF16', shape: [0, 4], data: new Uint8Array(0) }], null));
      const s = openSafetensors(path);
      assert.deepEqual(s.names(), ['w.weight', 'empty']); // file (offset) order
      assert.deepEqual(s.metadata, {});
      assert.equal(s.read('empty').data.byteLength, 0);
      assert.deepEqual([...toFloat32(s.read('w.weight'))], [0, 0, 0, 0, 0, 0]);
      s.close();
    } finally {
      t.cleanup();
    }
  });

  test('missing file / folder / empty folder are FILE_NOT_FOUND', () => {
    const t = tempDir('missing');
    try {
      throwsGemma(() => openSafetensors(join(t.dir, 'model.safetensors')), 'FILE_NOT_FOUND', join(t.dir, 'model.safetensors'));
      throwsGemma(() => openCheckpoint(join(t.dir, 'nope')), 'FILE_NOT_FOUND', join(t.dir, 'nope'));
      throwsGemma(() => openCheckpoint(t.dir), 'FILE_NOT_FOUND', t.dir, 'model.safetensors');
      throwsGemma(() => openSafetensors(t.dir), 'BAD_FORMAT', t.dir);
    } finally {
      t.cleanup();
    }
  });

  test('file shorter than 8 bytes', () => expectBad(new Uint8Array(5), 'BAD_FORMAT', 'too short'));
  test('header length absurd', () => expectBad(encodeRaw('{}', new Uint8Array(0), 1n << 40n), 'BAD_FORMAT', 'absurd'));
  test('header length beyond the file size', () => expectBad(encodeRaw('{}', new Uint8Array(0), 5000n), 'BAD_FORMAT', 'exceeds the file size'));
  test('header not JSON', () => expectBad(encodeRaw('{"w.weight": {'), 'BAD_FORMAT', 'not valid JSON'));
  test('header not UTF-8', () => {
    const bytes = encodeRaw('{"ab": 1}');
    bytes[10] = 0xff; // the "a"
    expectBad(bytes, 'BAD_FORMAT', 'not valid JSON');
  });
  test('header not an object', () => {
    expectBad(encodeRaw('[1, 2]'), 'BAD_FORMAT', 'not a JSON object');
    expectBad(encodeRaw('42'), 'BAD_FORMAT', 'not a JSON object');
  });
  test('entry not an object, dtype missing', () => {
    expectBad(header({ 'w.weight': 7 }), 'BAD_FORMAT', 'w.weight', 'not an object');
    expectBad(header({ 'w.weight': { shape: [2, 3], data_offsets: [0, 24] } }), 'BAD_FORMAT', 'w.weight', 'dtype');
    expectBad(header({ __metadata__: { format: 1 } }), 'BAD_FORMAT', '__metadata__');
  });
  test('unknown dtype', () => expectBad(header(entry({ dtype: 'Q9' })), 'BAD_FORMAT', 'w.weight', 'unknown dtype Q9'));
  test('unsupported dtypes I64, F64', () => {
    expectBad(header(entry({ dtype: 'I64', shape: [3], data_offsets: [0, 24] })), 'BAD_FORMAT', 'w.weight', 'unsupported dtype I64');
    expectBad(header(entry({ dtype: 'F64', shape: [3], data_offsets: [0, 24] })), 'BAD_FORMAT', 'w.weight', 'unsupported dtype F64');
  });
  test('shape not an array of non-negative integers', () => {
    for (const shape of ['2x3', [2, -3], [2, 1.5], [2, '3'], null]) expectBad(header(entry({ shape })), 'BAD_FORMAT', 'w.weight', 'shape');
  });
  test('data_offsets not [begin, end] integers', () => {
    for (const data_offsets of [24, [0], [0, 12, 24], [0, '24'], [0.5, 24], [-8, 16]]) {
      expectBad(header(entry({ data_offsets })), 'BAD_FORMAT', 'w.weight', 'data_offsets');
    }
  });
  test('end < begin', () => expectBad(header(entry({ data_offsets: [24, 0] })), 'BAD_FORMAT', 'w.weight', 'end 0 < begin 24'));
  test('offsets beyond the data section (truncated file)', () => expectBad(header(entry({}), 20), 'BAD_FORMAT', 'w.weight', 'out of bounds'));
  test('size disagrees with shape × element size', () => {
    expectBad(header(entry({ shape: [2, 2] })), 'BAD_FORMAT', 'w.weight', 'expected 16');
    expectBad(header(entry({ dtype: 'BF16' })), 'BAD_FORMAT', 'w.weight', 'expected 12');
  });
  test('overlapping tensors', () => {
    const h = { a: { dtype: 'F32', shape: [4], data_offsets: [0, 16] }, b: { dtype: 'F32', shape: [4], data_offsets: [8, 24] } };
    expectBad(header(h), 'BAD_FORMAT', 'overlap', 'a', 'b');
    // An empty tensor in between does not hide the overlap.
    const h2 = { ...h, e: { dtype: 'F32', shape: [0], data_offsets: [4, 4] } };
    expectBad(header(h2), 'BAD_FORMAT', 'overlap');
  });
});

describe('corrupt sharded checkpoints', () => {
  function sharded(index: unknown, shards: Record<string, StTensor[]>, check: (dir: string) => void): void {
    const t = tempDir('idx');
    try {
      for (const [file, list] of Object.entries(shards)) t.write(file, encodeSafetensors(list));
      t.write('model.safetensors.index.json', typeof index === 'string' ? index : JSON.stringify(index));
      check(t.dir);
    } finally {
      t.cleanup();
    }
  }
  const a: StTensor = { name: 'a', dtype: 'BF16', shape: [2], data: zeros('BF16', [2]) };
  const b: StTensor = { name: 'b', dtype: 'BF16', shape: [2], data: zeros('BF16', [2]) };
  const S1 = 'model-00001-of-00002.safetensors';
  const S2 = 'model-00002-of-00002.safetensors';
  const INDEX = 'model.safetensors.index.json';

  test('index referencing a missing shard is FILE_NOT_FOUND naming the shard', () => {
    sharded({ weight_map: { a: S1, b: S2 } }, { [S1]: [a] }, (dir) => throwsGemma(() => openCheckpoint(dir), 'FILE_NOT_FOUND', S2, INDEX));
  });
  test('malformed index is BAD_FORMAT naming the index', () => {
    const files = { [S1]: [a], [S2]: [b] };
    for (const index of ['{"weight_map": ', { metadata: {} }, { weight_map: [] }, { weight_map: {} }, { weight_map: { a: 5 } }, { weight_map: { a: '../x.safetensors' } }, { weight_map: { a: '/abs/x.safetensors' } }]) {
      sharded(index, files, (dir) => throwsGemma(() => openCheckpoint(dir), 'BAD_FORMAT', INDEX));
    }
  });
  test('index placing a tensor in the wrong shard is BAD_FORMAT', () => {
    sharded({ weight_map: { a: S2, b: S2 } }, { [S1]: [a], [S2]: [b] }, (dir) => throwsGemma(() => openCheckpoint(dir), 'BAD_FORMAT', 'tensor a', S2));
  });
  test('the same tensor in two shards is BAD_FORMAT', () => {
    sharded({ weight_map: { a: S1, b: S2 } }, { [S1]: [a], [S2]: [a, b] }, (dir) => throwsGemma(() => openCheckpoint(dir), 'BAD_FORMAT', 'tensor a', S1, S2));
  });
  test('a corrupt shard names the shard file', () => {
    const t = tempDir('badshard');
    try {
      t.write(S1, encodeSafetensors([a]));
      const bad = t.write(S2, new Uint8Array(3));
      t.write(INDEX, JSON.stringify({ weight_map: { a: S1, b: S2 } }));
      throwsGemma(() => openCheckpoint(t.dir), 'BAD_FORMAT', bad);
    } finally {
      t.cleanup();
    }
  });
});
