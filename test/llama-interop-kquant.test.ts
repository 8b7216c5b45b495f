// K-quant interop with llama.cpp (node-llama-cpp, CPU only): Q4_K_M, Q5_K_M and Q6_K GGUFs written
// by `convertCheckpoint` load in llama.cpp, whose greedy continuation equals ours, with both
// engines multiplying the K-quant weights as stored against activations in Q8_K. And tiny-text
// itself (64-wide rows, like the 1B's 1152 not whole super-blocks) through q4_k_m and q5_k_m,
// where llama-quantize falls back to Q5_0 / Q5_1 (activations in Q8_0 / Q8_1) and Q8_0.
//
// The checkpoint: tiny-text's architecture widened so that every matrix row is whole 256-value
// super-blocks (hidden 256, intermediate 512, head_dim 64; tiny-text's 64-wide rows would all fall
// back to Q8_0), 8 layers (use_more_bits(i, 8) gives layers 0, 3, 6 and 7 Q6_K attn_v/ffn_down),
// fresh random BF16 weights, and the real Gemma 3 tokenizer (symlinked). Only the embedding rows
// of the first 4096 tokens (the prompt's included) are random, the rest zero: the tied head then
// scores every other token 0, below the best of 4096 random logits, so the greedy path is the
// same as with a full random embedding over those tokens, while the Q6_K quantization of
// 262144 × 256 values (all-zero super-blocks take ggml's early exit) stays cheap in TypeScript.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FILE_TYPE, convertCheckpoint } from '../src/convert/convert.js';
import { f32ToBf16 } from '../src/formats/dtypes.js';
import { openGguf } from '../src/formats/gguf.js';
import { load } from '../src/index.js';
import { loadNativeBinding, type NativeBackend } from '../src/backend/native-backend.js';
import { REPO_ROOT, readJson } from './helpers.js';
import { PROMPT, STEPS, TEXT, llamaGreedy, ourGreedy, rng, startLlama } from './llama-interop-kit.js';
import { encodeSafetensors, tempDir, type StTensor } from './st-writer.js';

const LIVE_ROWS = 4096;
const H = 256, I = 512, HEADS = 4, KV = 2, HD = 64, LAYERS = 8, VOCAB = 262144;


/** The Hugging Face tensors of the widened model: name → shape. */
function shapes(): [string, number[]][] {
  const out: [string, number[]][] = [['model.embed_tokens.weight', [VOCAB, H]], ['model.norm.weight', [H]]];
  for (let l = 0; l < LAYERS; l++) {
    const p = `model.layers.${l}.`;
    out.push(
      [p + 'input_layernorm.weight', [H]], [p + 'post_attention_layernorm.weight', [H]],
      [p + 'pre_feedforward_layernorm.weight', [H]], [p + 'post_feedforward_layernorm.weight', [H]],
      [p + 'self_attn.q_proj.weight', [HEADS * HD, H]], [p + 'self_attn.k_proj.weight', [KV * HD, H]],
      [p + 'self_attn.v_proj.weight', [KV * HD, H]], [p + 'self_attn.o_proj.weight', [H, HEADS * HD]],
      [p + 'self_attn.q_norm.weight', [HD]], [p + 'self_attn.k_norm.weight', [HD]],
      [p + 'mlp.gate_proj.weight', [I, H]], [p + 'mlp.up_proj.weight', [I, H]], [p + 'mlp.down_proj.weight', [H, I]],
    );
  }
  return out;
}

function writeRandomCheckpoint(dir: string, seed: number): void {
  const config = readJson(join(TEXT, 'config.json'));
  Object.assign(config, {
    hidden_size: H, intermediate_size: I, num_attention_heads: HEADS, num_key_value_heads: KV, head_dim: HD,
    query_pre_attn_scalar: HD, num_hidden_layers: LAYERS, layer_types: (config.layer_types as string[]).slice(0, LAYERS),
  });
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config, null, 2));
  for (const f of ['tokenizer.json', 'tokenizer_config.json', 'generation_config.json']) symlinkSync(join(TEXT, f), join(dir, f));
  const next = rng(seed);
  const live = new Set(PROMPT);
  const tensors: StTensor[] = shapes().map(([name, shape]) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const embd = name.includes('embed');
    // Matrices std 0.1 and a small embedding (0.01): with tiny-text's 0.05 / 0.08 at this width the
    // ×16 embedding scale drowns the layers and the greedy path only repeats the last token.
    const std = name.includes('norm') ? 0.3 : embd ? 0.01 : 0.1;
    const half = std * Math.sqrt(3);
    const bits = new Uint16Array(n);
    const values = embd ? LIVE_ROWS * H : n;
    for (let i = 0; i < values; i++) bits[i] = f32ToBf16((2 * next() - 1) * half);
    if (embd) for (const id of live) if (id >= LIVE_ROWS) for (let c = 0; c < H; c++) bits[id * H + c] = f32ToBf16((2 * next() - 1) * half);
    return { name, dtype: 'BF16', shape, data: new Uint8Array(bits.buffer) };
  });
  writeFileSync(join(dir, 'model.safetensors'), encodeSafetensors(tensors));
}

/**
 * Measured for SEED: both files give 16 varied tokens on which llama.cpp and this engine agree,
 * smallest top-2 logit gaps 0.0027 (q4_k_m) and 0.0060 (q6_k). Upstream of the shared integer
 * products the engines differ (llama.cpp's F16 KV cache, its GELU table: log-probabilities
 * 2e-3 apart, see llama-interop.test.ts), and on other seeds a near-tie below that went either
 * way in Q6_K files (3 of 5 seeds tried); the teacher-forced check below bounds it.
 */
const SEED = 7;
/** Every llama.cpp choice must be within this of our best logit on the same history. */
const MAX_SHORTFALL = 0.02;
/**
 * The files whose 16 greedy tokens are pinned equal (measured for SEED). q5_k_m agrees up to its
 * first near-tie, token 1, where our top-2 gap is 0.0072 and llama.cpp's choice 0.0074 below our
 * best (with an F16 KV cache on our side too, as llama.cpp's, q5_k_m agreed on all 16 tokens and
 * q4_k_m split at a 0.0005 gap instead: upstream rounding, not the products).
 */
const EXACT: ReadonlySet<string> = new Set(['q4_k_m', 'q6_k']);
/**
 * tiny-text (64-wide rows, 262144 flat random logits) runs every product with quantized
 * activations (Q8_0 / Q8_1), which amplify the upstream differences: as llama-interop.test.ts
 * holds its Q8_0 file, llama.cpp's choices must be within 0.15 of our best logit and at least 8
 * of 16 tokens agree. Measured: tiny-q4_k_m agrees on the first 14 tokens (then a 0.0011 gap,
 * and llama.cpp's next choice 0.044 below ours), tiny-q5_k_m on the first 15 (0.0122).
 */
const TINY_MAX_SHORTFALL = 0.15;

/**
 * llama-quantize's core (test/llama-quantize.c: llama_model_quantize with its default parameters,
 * no importance matrix), built against the libllama that node-llama-cpp ships prebuilt and the
 * headers of the llama.cpp source it ships beside it (the same release); or why it cannot be.
 */
function buildLlamaQuantize(dir: string): { path: string } | { reason: string } {
  const platform = `${process.platform}-${process.arch}`;
  const source = join(REPO_ROOT, 'node_modules', 'node-llama-cpp', 'llama', 'llama.cpp');
  const bins = join(REPO_ROOT, 'node_modules', '@node-llama-cpp', platform, 'bins', platform);
  if (!existsSync(join(source, 'include', 'llama.h'))) return { reason: `no llama.cpp source in node-llama-cpp (${source})` };
  const lib = existsSync(bins) ? readdirSync(bins).find((f) => /^libllama(\.v[\d.]+)?\.so$/.test(f)) : undefined;
  if (lib === undefined) return { reason: `no prebuilt libllama for ${platform} in node-llama-cpp` };
  const path = join(dir, 'llama-quantize');
  const cc = spawnSync('cc', ['-O1', '-I', join(source, 'include'), '-I', join(source, 'ggml', 'include'), join(REPO_ROOT, 'test', 'llama-quantize.c'),
    '-o', path, join(bins, lib), `-Wl,-rpath,${bins}`], { encoding: 'utf8' });
  if (cc.error || cc.status !== 0) return { reason: `cannot build test/llama-quantize.c: ${cc.error?.message ?? cc.stderr.trim().split('\n')[0]}` };
  return { path };
}

/** The first tensor (in file order) whose name, type or bytes differ between two GGUFs, or null. */
function firstTensorDifference(ours: string, theirs: string): string | null {
  const a = openGguf(ours), b = openGguf(theirs);
  try {
    const an = [...a.names()], bn = [...b.names()];
    if (an.join() !== bn.join()) return `tensor names or order: ours ${an.length}, llama-quantize ${bn.length}`;
    const fa = readFileSync(ours), fb = readFileSync(theirs);
    for (const name of an) {
      const x = a.info(name), y = b.info(name);
      if (x.dtype !== y.dtype) return `${name}: ours ${x.dtype}, llama-quantize ${y.dtype}`;
      if (x.sizeBytes !== y.sizeBytes || !fa.subarray(x.fileOffset, x.fileOffset + x.sizeBytes).equals(fb.subarray(y.fileOffset, y.fileOffset + y.sizeBytes))) {
        return `${name} (${x.dtype}): different bytes`;
      }
    }
    return null;
  } finally {
    a.close();
    b.close();
  }
}

const runtime = await startLlama();
const skip = 'reason' in runtime ? runtime.reason : false;

describe('llama.cpp interop with K-quants (node-llama-cpp, CPU)', { skip }, () => {
  const tmp = tempDir('interop-kquant');
  const gguf = (type: string): string => join(tmp.dir, `random-${type}.gguf`);
  const llama = 'llama' in runtime ? runtime.llama : (null as never);

  before(() => {
    writeRandomCheckpoint(tmp.dir, SEED);
    for (const type of ['q4_k_m', 'q5_k_m', 'q6_k'] as const) convertCheckpoint(tmp.dir, gguf(type), { type });
  });
  after(() => tmp.cleanup());

  // The issue's test: a file we write is the file llama-quantize writes from the same weights
  // (our BF16 GGUF of them: llama-quantize widens BF16 to float32 exactly, as we do).
  test('gemma3 convert writes llama-quantize\'s file byte for byte: Q4_0, Q4_K_M, Q5_K_M, Q6_K (and the Q5_0 / Q5_1 / Q8_0 fallbacks of 64-wide rows)', (t) => {
    const tool = buildLlamaQuantize(tmp.dir);
    if ('reason' in tool) return t.skip(tool.reason);
    convertCheckpoint(tmp.dir, gguf('bf16'), { type: 'bf16' });
    convertCheckpoint(TEXT, gguf('tiny-bf16'), { type: 'bf16' });
    const cases = [['', 'q4_0'], ['', 'q4_k_m'], ['', 'q5_k_m'], ['', 'q6_k'], ['tiny-', 'q4_k_m'], ['tiny-', 'q5_k_m']] as const;
    for (const [prefix, type] of cases) {
      const ours = gguf(`${prefix}${type}`);
      if (!existsSync(ours)) convertCheckpoint(prefix ? TEXT : tmp.dir, ours, { type });
      const theirs = gguf(`${prefix}${type}-llama-quantize`);
      const quantized: SpawnSyncReturns<string> = spawnSync(tool.path, [gguf(`${prefix}bf16`), theirs, String(FILE_TYPE[type])], { encoding: 'utf8' });
      assert.equal(quantized.status, 0, `llama-quantize ${prefix}${type}: ${quantized.stderr.slice(-1000)}`);
      // On a difference, the first tensor that differs (or the header, if every tensor is equal).
      if (!readFileSync(ours).equals(readFileSync(theirs))) {
        assert.fail(`${prefix}${type}: ${firstTensorDifference(ours, theirs) ?? 'the tensors are equal, the header (metadata) is not'}`);
      }
      t.diagnostic(`${prefix}${type}: the whole file equals llama-quantize's, byte for byte`);
    }
  });

  test('tiny-text (64-wide rows) through q4_k_m and q5_k_m: llama-quantize\'s fallbacks Q5_0 / Q5_1, Q8_0 for Q6_K', () => {
    for (const [type, base] of [['q4_k_m', 'q5_0'], ['q5_k_m', 'q5_1']] as const) {
      convertCheckpoint(TEXT, gguf(`tiny-${type}`), { type });
      const g = openGguf(gguf(`tiny-${type}`));
      try {
        assert.equal(g.info('token_embd.weight').dtype, 'q8_0');
        for (let l = 0; l < 8; l++) {
          const more = [0, 3, 6, 7].includes(l) ? 'q8_0' : base;
          assert.equal(g.info(`blk.${l}.attn_v.weight`).dtype, more, `${type} attn_v ${l}`);
          assert.equal(g.info(`blk.${l}.ffn_down.weight`).dtype, more, `${type} ffn_down ${l}`);
          for (const t of ['attn_q', 'attn_k', 'attn_output', 'ffn_gate', 'ffn_up']) assert.equal(g.info(`blk.${l}.${t}.weight`).dtype, base);
        }
      } finally {
        g.close();
      }
    }
  });

  for (const [type, base, fileType] of [['q4_k_m', 'q4_k', 15], ['q5_k_m', 'q5_k', 17]] as const) {
    test(`the ${type.toUpperCase()} file has llama-quantize's tensor types`, () => {
      const g = openGguf(gguf(type));
      try {
        assert.equal(g.metadata.get('general.file_type'), fileType);
        assert.equal(g.info('token_embd.weight').dtype, 'q6_k');
        for (let l = 0; l < LAYERS; l++) {
          const more = [0, 3, 6, 7].includes(l) ? 'q6_k' : base;
          assert.equal(g.info(`blk.${l}.attn_v.weight`).dtype, more, `attn_v ${l}`);
          assert.equal(g.info(`blk.${l}.ffn_down.weight`).dtype, more, `ffn_down ${l}`);
          for (const t of ['attn_q', 'attn_k', 'attn_output', 'ffn_gate', 'ffn_up']) assert.equal(g.info(`blk.${l}.${t}.weight`).dtype, base);
          assert.equal(g.info(`blk.${l}.attn_norm.weight`).dtype, 'f32');
        }
      } finally {
        g.close();
      }
    });
  }

  test('load({ quant }) of the checkpoint runs the weights of the converted file: the same logits', async () => {
    const opts = { contextLength: 64, threads: 1 };
    for (const quant of ['q4_k_m', 'q5_k_m', 'q6_k'] as const) {
      const file = await load(gguf(quant), opts);
      const onLoad = await load(tmp.dir, { ...opts, quant });
      try {
        const a = file.logits(PROMPT, 8), b = onLoad.logits(PROMPT, 8);
        assert.deepEqual(a.positions.map((p) => p.top.map(([id]) => id)), b.positions.map((p) => p.top.map(([id]) => id)), quant);
        a.positions.forEach((p, t) => p.top.forEach(([, v], j) => assert.ok(Math.abs(v - b.positions[t]!.top[j]![1]) <= 1e-4, `${quant} position ${t}`)));
      } finally {
        file.dispose();
        onLoad.dispose();
      }
    }
  });

  test('mapped K-quant tensors are served at once and replaced by x16 copies made in the background: the same logits throughout', async (t) => {
    const opts = { contextLength: 64, threads: 1, backend: 'native' } as const;
    for (const quant of ['q4_k_m', 'q5_k_m', 'q6_k'] as const) {
      const read = await load(gguf(quant), { ...opts, mmap: false });
      const mapped = await load(gguf(quant), { ...opts, mmap: true });
      try {
        const backend = mapped.decoder.backend as NativeBackend;
        if (!backend.repacksKQuants) {
          t.skip(`no x16 K-quant kernels here ('${backend.info.kquantKernels}' K-quant kernels): the views stay in the row layout`);
          return;
        }
        // Only the tied embedding (262144 x 256, Q6_K: 55 MB) is large enough to be a view here;
        // the smaller tensors are read and repacked at load.
        const head = mapped.decoder.weights.tokenEmbd;
        assert.equal(head.dtype, 'q6_k');
        assert.equal(read.decoder.weights.layers[0]!.attnQ.layout, 'x16', `${quant}: a tensor read at load is repacked`);
        const expected = read.logits(PROMPT, 8).positions;
        assert.deepEqual(mapped.logits(PROMPT, 8).positions, expected, `${quant}: view (row kernels) or copy, the same logits`);
        for (let i = 0; i < 400 && backend.copiesInProgress() > 0; i++) await new Promise((r) => setTimeout(r, 25));
        assert.equal(backend.copiesInProgress(), 0, `${quant}: the background copies finish with one stream`);
        assert.deepEqual(mapped.logits(PROMPT, 8).positions, expected, `${quant}: after the copies`);
        assert.equal(head.layout, 'x16', `${quant}: the copy replaced the mapped view`);
      } finally {
        read.dispose();
        mapped.dispose();
      }
    }
  });

  test('a model\'s first pass holds one of the two copy threads (the copying would compete with it for the cores); a hold never stops the copying', async (t) => {
    const binding = loadNativeBinding();
    if (binding instanceof Error) return t.skip('no native addon');
    // A hold taken from before the load, and the decoder's own for its first pass on top.
    binding.holdCopies(true);
    let held = true;
    const mapped = await load(gguf('q6_k'), { contextLength: 64, threads: 1, backend: 'native', mmap: true });
    try {
      const backend = mapped.decoder.backend as NativeBackend;
      if (!backend.repacksKQuants) return t.skip(`no x16 K-quant kernels here ('${backend.info.kquantKernels}' K-quant kernels)`);
      const calls: string[] = [];
      const started = backend.passStarted.bind(backend), finished = backend.passFinished.bind(backend);
      backend.passStarted = () => { calls.push('started'); started(); };
      backend.passFinished = () => { calls.push('finished'); finished(); };
      const expected = mapped.logits(PROMPT, 8).positions;
      mapped.logits(PROMPT, 8);
      assert.deepEqual(calls, ['started', 'finished', 'started', 'finished'], 'every pass says when it starts and ends');
      // Still held: the first copy thread goes on, and the embedding's copy (55 MB) finishes.
      for (let i = 0; i < 400 && backend.copiesInProgress() > 0; i++) await new Promise((r) => setTimeout(r, 25));
      assert.equal(backend.copiesInProgress(), 0, 'the copy finishes under a hold');
      assert.equal(mapped.decoder.weights.tokenEmbd.layout, 'x16');
      assert.deepEqual(mapped.logits(PROMPT, 8).positions, expected, 'the same logits over the copy');
    } finally {
      if (held) binding.holdCopies(false);
      held = false;
      mapped.dispose();
    }
  });

  for (const type of ['q4_k_m', 'q5_k_m', 'q6_k', 'tiny-q4_k_m', 'tiny-q5_k_m'] as const) {
    test(`${type}: llama.cpp loads our GGUF and greedy-generates ${EXACT.has(type) ? `the same ${STEPS} tokens` : 'the same tokens up to a near-tie'}`, async (t) => {
      const ours = await load(gguf(type), { contextLength: 64, threads: 1 });
      try {
        const mine = await ourGreedy(ours);
        const theirs = await llamaGreedy(llama, gguf(type));
        const margins = ours.logits([...PROMPT, ...mine.slice(0, -1)], 2).positions.slice(PROMPT.length - 1).map((p) => p.top[0]![1] - p.top[1]![1]);
        t.diagnostic(`${type} (${ours.backend} backend): ours ${JSON.stringify(mine)}, llama.cpp ${JSON.stringify(theirs)}; smallest top-2 gap ${Math.min(...margins).toFixed(4)}`);
        assert.equal(mine.length, STEPS);
        const tiny = type.startsWith('tiny');
        if (!tiny) assert.ok(mine.every((id) => id < LIVE_ROWS || PROMPT.includes(id)), 'every greedy token has a live embedding row');
        // Teacher-forced: our logits on llama.cpp's history, our best minus our logit of its choice.
        const positions = ours.logits([...PROMPT, ...theirs.slice(0, -1)], 64).positions.slice(PROMPT.length - 1);
        const shortfall = Math.max(...theirs.map((id, j) => {
          const hit = positions[j]!.top.find(([tok]) => tok === id);
          return hit === undefined ? Infinity : positions[j]!.top[0]![1] - hit[1];
        }));
        const bound = tiny ? TINY_MAX_SHORTFALL : MAX_SHORTFALL;
        assert.ok(shortfall <= bound, `llama.cpp chose a token ${shortfall} below our best logit`);
        assert.ok(new Set(mine).size >= 5, `a varied greedy path (${new Set(mine).size} distinct tokens)`);
        if (EXACT.has(type)) assert.deepEqual(theirs, mine, `teacher-forced shortfall ${shortfall.toFixed(4)}`);
        // The same tokens before our first near-tie (a top-2 gap within the bound), where either engine's rounding may tip it.
        const firstTie = margins.findIndex((m) => m < bound);
        const before = firstTie < 0 ? STEPS : firstTie;
        assert.deepEqual(theirs.slice(0, before), mine.slice(0, before), `before the first near-tie (token ${firstTie})`);
        if (tiny) {
          let agree = 0;
          while (agree < STEPS && theirs[agree] === mine[agree]) agree++;
          assert.ok(agree >= 8, `only the first ${agree} of ${STEPS} greedy tokens agree`);
        }
      } finally {
        ours.dispose();
      }
    });
  }
});
