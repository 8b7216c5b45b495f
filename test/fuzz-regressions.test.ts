// The hostile files of issue 17 ("Field robustness"), each reproduced on a micro checkpoint and
// loaded in a child process under the fuzz suite's limits (fuzz-harness.ts: V8 heap 384 MiB, peak
// RSS 400 MiB, 20 s): each must end in a GemmaError that names the problem, quickly and in little
// memory. Before the fix these aborted the process (V8 heap), hung for minutes, loaded garbage
// (NaN logits) or took 1.46 GB to report an error.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildCorpus, type Corpus } from './fuzz-corpus.js';
import { formatFailure, runFuzz, type Format } from './fuzz-harness.js';
import { parseGgufModel, parseSafetensors, serializeGguf, type GgufModel } from './fuzz-mutate.js';
import { GemmaError } from '../src/errors.js';
import { openSafetensors } from '../src/formats/safetensors.js';
import { encodeRaw, tempDir } from './st-writer.js';

const tmp = tempDir('fuzz-regressions');
let corpus: Corpus;
let n = 0;

before(async () => {
  corpus = await buildCorpus(join(tmp.dir, 'corpus'));
});
after(() => tmp.cleanup());

/** A copy of a GGUF with metadata `key` set to a u32 (or a u64 when it does not fit). */
function ggufWith(path: string, key: string, value: number): string {
  const m: GgufModel = parseGgufModel(path);
  const kv = m.kvs.find((e) => e.key === key);
  assert.ok(kv, `${key} is in ${path}`);
  kv.type = value > 0xffffffff ? 'u64' : 'u32';
  kv.value = value;
  const out = join(tmp.dir, `case-${n++}.gguf`);
  writeFileSync(out, serializeGguf(m).bytes);
  return out;
}

/** A micro checkpoint folder whose `file` is replaced by `bytes` (the rest symlinked). */
function checkpointWith(file: string, bytes: Uint8Array | string): string {
  const dir = join(tmp.dir, `ckpt-${n++}`);
  mkdirSync(dir);
  for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json', 'preprocessor_config.json']) {
    if (f !== file) symlinkSync(join(corpus.micro, f), join(dir, f));
  }
  writeFileSync(join(dir, file), bytes);
  return dir;
}

function configWith(edit: (c: any) => void): string {
  const config = JSON.parse(readFileSync(join(corpus.micro, 'config.json'), 'utf8'));
  edit(config);
  return checkpointWith('config.json', JSON.stringify(config));
}

/** The micro safetensors with its header padded by 8 spaces and the length field moved by `delta`. */
function safetensorsWithHeaderLength(delta: number): string {
  const { header, data } = parseSafetensors(readFileSync(join(corpus.micro, 'model.safetensors')));
  let text = JSON.stringify(header);
  while (Buffer.byteLength(text) % 8 !== 0) text += ' ';
  text += '        ';
  const h = Buffer.from(text);
  const bytes = new Uint8Array(8 + h.length + data.length);
  new DataView(bytes.buffer).setBigUint64(0, BigInt(h.length + delta), true);
  bytes.set(h, 8);
  bytes.set(data, 8 + h.length);
  return checkpointWith('model.safetensors', bytes);
}

/** Runs one file through the fuzz child and checks it ends in this error, within the limits; returns the case's time. */
async function refused(format: Format, path: string, code: string, pattern: RegExp, forbidden?: RegExp): Promise<number> {
  const s = await runFuzz({ corpus, work: join(tmp.dir, `work-${n++}`), format, seed: 0, cases: 1, files: [path], maxRssMb: 400 });
  assert.deepEqual(s.failures.map(formatFailure), []);
  const r = s.reports[0]!;
  assert.equal(r.outcome, 'typed', `loaded instead of refusing: ${JSON.stringify(r)}`);
  assert.equal(r.code, code, r.message);
  assert.match(r.message!, pattern);
  if (forbidden) assert.doesNotMatch(r.message!, forbidden);
  return r.ms;
}

describe('issue 17 loader repros: typed errors, not aborts, hangs or huge allocations', () => {
  test('GGUF gemma3.block_count 1e9 (was a V8 heap abort)', async () => {
    await refused('gguf', ggufWith(corpus.ggufs[0]!, 'gemma3.block_count', 1e9), 'MISSING_TENSOR', /block_count declares 1000000000 layers, but the file has tensors for 2/);
  });

  test('GGUF gemma3.block_count 2^32 - 1 (the 1 in 300 random GGUF corruptions that aborted)', async () => {
    await refused('gguf', ggufWith(corpus.ggufs[1]!, 'gemma3.block_count', 2 ** 32 - 1), 'MISSING_TENSOR', /block_count declares 4294967295 layers/);
  });

  test('GGUF gemma3.block_count 1e6 (a typed error that took 1.46 GB)', async () => {
    await refused('gguf', ggufWith(corpus.ggufs[0]!, 'gemma3.block_count', 1e6), 'MISSING_TENSOR', /block_count declares 1000000 layers/);
  });

  test('config.json num_hidden_layers 1e9 and 2^31 without layer_types (were V8 heap aborts)', async () => {
    for (const layers of [1e9, 2 ** 31]) {
      const dir = configWith((c) => {
        c.text_config.num_hidden_layers = layers;
        delete c.text_config.layer_types;
      });
      await refused('config', dir, 'BAD_FORMAT', new RegExp(`text_config.num_hidden_layers must be at most 1024 .*got ${layers}`));
    }
  });

  test('config.json num_hidden_layers 1000 (under the limit, more than the checkpoint has)', async () => {
    const dir = configWith((c) => {
      c.text_config.num_hidden_layers = 1000;
      delete c.text_config.layer_types;
    });
    await refused('config', dir, 'MISSING_TENSOR', /layers.2.input_layernorm.weight is missing .*: num_hidden_layers is 1000, but it has tensors for 2 layers/);
  });

  test('config.json vision_config.num_hidden_layers 1e9 (was an abort at 4.6 GB) and 262144', async () => {
    await refused('config', configWith((c) => (c.vision_config.num_hidden_layers = 1e9)), 'BAD_FORMAT', /vision_config.num_hidden_layers must be at most 1024/);
    await refused('config', configWith((c) => (c.vision_config.num_hidden_layers = 262144)), 'BAD_FORMAT', /vision_config.num_hidden_layers must be at most/);
    await refused('config', configWith((c) => (c.vision_config.num_hidden_layers = 500)), 'MISSING_TENSOR', /encoder.layers.1.layer_norm1.weight is missing .*: vision_config.num_hidden_layers is 500, but it has tensors for 1 layer\b/);
  });

  test('mmproj clip.vision.block_count 2^31 (hung for more than 300 s)', async () => {
    await refused('mmproj', ggufWith(corpus.mmproj, 'clip.vision.block_count', 2 ** 31), 'MISSING_TENSOR', /clip.vision.block_count declares 2147483648 layers, but the file has tensors for 1/);
  });

  test('safetensors header length off by a few bytes (loaded, with NaN logits)', async () => {
    for (const delta of [-1, -3, -8]) {
      await refused('safetensors', safetensorsWithHeaderLength(delta), 'BAD_FORMAT', /header length or the file size is wrong/);
    }
  });

  test('GGUF gemma3.block_count 1 with 2 layers of tensors (loaded the first layer alone)', async () => {
    await refused('gguf', ggufWith(corpus.ggufs[0]!, 'gemma3.block_count', 1), 'BAD_FORMAT', /block_count declares 1 layers, but the file has tensors for 2/);
  });

  test('a 600-byte JPEG whose header says 9000x9000 (was decoded: 243 MB of grey pixels)', async () => {
    const jpeg = Buffer.from(readFileSync(corpus.images.find((p) => p.endsWith('baseline.jpg'))!));
    for (let at = 2; at < jpeg.length; at += 2 + jpeg.readUInt16BE(at + 2)) {
      if (jpeg[at + 1] === 0xc0) {
        jpeg.writeUInt16BE(9000, at + 5);
        jpeg.writeUInt16BE(9000, at + 7);
        break;
      }
    }
    const path = join(tmp.dir, 'huge.jpg');
    writeFileSync(path, jpeg);
    await refused('image', path, 'BAD_FORMAT', /a 9000x9000 JPEG takes at least \d+ bytes, this one has/);
  });

  test('tokenizer.json vocab id 2^27 - 1 (took 4 s to refuse, building a 134M-slot id table)', async () => {
    const tokenizer = JSON.parse(readFileSync(join(corpus.micro, 'tokenizer.json'), 'utf8'));
    tokenizer.model.vocab['in'] = 2 ** 27 - 1;
    const dir = checkpointWith('tokenizer.json', JSON.stringify(tokenizer));
    const ms = await refused('tokenizer', dir, 'BAD_FORMAT', /vocab entry "in" has id 134217727, but the vocab and added tokens have only \d+ entries/);
    assert.ok(ms < 2000, `took ${ms} ms`);
  });

  test('tokenizer.json cut inside a vocab id (hung: the fast scanner read past the end for ever)', async () => {
    const text = readFileSync(join(corpus.micro, 'tokenizer.json'), 'utf8');
    const at = text.indexOf('"au":') + '"au":'.length + 1; // one digit of the id
    await refused('tokenizer', checkpointWith('tokenizer.json', text.slice(0, at)), 'BAD_FORMAT', /tokenizer.json is not valid JSON/);
  });

  test('a truncated GGUF says it is truncated (not "array length is absurd")', async () => {
    const bytes = readFileSync(corpus.ggufs[0]!);
    const path = join(tmp.dir, 'truncated.gguf');
    writeFileSync(path, bytes.subarray(0, 3000)); // inside tokenizer.ggml.tokens
    await refused('gguf', path, 'BAD_FORMAT', /truncated/, /absurd/);
  });
});

describe('safetensors: the tensors tile the data section exactly (as the reference library requires)', () => {
  const f32 = (begin: number, end: number) => ({ dtype: 'F32', shape: [(end - begin) / 4], data_offsets: [begin, end] });
  const open = (header: object, dataBytes: number) => () => {
    const path = join(tmp.dir, `tile-${n++}.safetensors`);
    writeFileSync(path, encodeRaw(JSON.stringify(header), new Uint8Array(dataBytes)));
    openSafetensors(path).close();
  };
  const refusedWith = (fn: () => void, pattern: RegExp) =>
    assert.throws(fn, (e: unknown) => e instanceof GemmaError && e.code === 'BAD_FORMAT' && pattern.test(e.message));

  test('back to back in any header order, empty tensors anywhere: opens', () => {
    open({ b: f32(8, 16), a: f32(0, 8), e: f32(8, 8), z: f32(16, 16) }, 16)();
    open({}, 0)();
  });
  test('a gap between tensors', () => refusedWith(open({ a: f32(0, 8), b: f32(12, 16) }, 16), /4 bytes before tensor b that no tensor covers/));
  test('a gap before the first tensor', () => refusedWith(open({ a: f32(4, 12) }, 12), /4 bytes before tensor a/));
  test('bytes after the last tensor', () => refusedWith(open({ a: f32(0, 8) }, 12), /cover 8 bytes of data but the file has 12/));
  test('data but no tensors', () => refusedWith(open({}, 8), /cover 0 bytes of data but the file has 8/));
});
