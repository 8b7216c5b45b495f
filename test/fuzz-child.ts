// Child process of the fuzz suite (fuzz-harness.ts starts it): runs a batch of cases of one format,
// each a corrupted file written to disk and handed to the loader that reads such files, and prints
// one line when a case starts and one when it ends, so that the parent can name the case that
// crashed or hung the process. A case passes when the loader succeeds or throws a GemmaError.
//
//   node --max-old-space-size=N fuzz-child.js '<ChildSpec as JSON>'
import { mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { selectBackend } from '../src/backend/native-backend.js';
import { GemmaError } from '../src/errors.js';
import { openCheckpoint } from '../src/formats/safetensors.js';
import { load } from '../src/load.js';
import { assembleVision } from '../src/load/assemble.js';
import { openMmproj } from '../src/load/gguf-file.js';
import { loadConfig, parseConfig } from '../src/model/config.js';
import { loadTextDecoder } from '../src/model/text-model.js';
import { loadTokenizer } from '../src/tokenizer/tokenizer.js';
import { decodeImage } from '../src/vision/decode.js';
import type { Corpus } from './fuzz-corpus.js';
import type { CaseReport, ChildSpec, Format } from './fuzz-harness.js';
import {
  caseRng, mutateGguf, mutateImage, mutateJson, mutateSafetensors, parseGgufModel, parseSafetensors, pick,
  type GgufModel, type Mutant, type Rng, type SafetensorsModel,
} from './fuzz-mutate.js';

const BACKEND = selectBackend('js');
const LOAD = { backend: 'js', contextLength: 16, threads: 1 } as const;

/** Files a micro checkpoint folder is made of. */
const CHECKPOINT_FILES = ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json', 'preprocessor_config.json'];

/** A checkpoint folder in `work` whose files are the corpus's, except `own` (written by the caller). */
function checkpointWith(corpus: Corpus, dir: string, own: readonly string[]): void {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  for (const f of CHECKPOINT_FILES) if (!own.includes(f)) symlinkSync(join(corpus.micro, f), join(dir, f));
}

/** What a target needs that is worth parsing once per child. */
interface Seeds {
  ggufs?: GgufModel[];
  mmproj?: GgufModel;
  safetensors?: SafetensorsModel;
  tinySafetensors?: SafetensorsModel;
  json?: Map<string, string>;
  images?: Uint8Array[];
}

/** Writes case `rng`'s corrupted input under `work`; returns what to load and what was done. */
function writeCase(format: Format, rng: Rng, corpus: Corpus, seeds: Seeds, work: string): { path: string; what: string } {
  const write = (path: string, m: Mutant): { path: string; what: string } => {
    writeFileSync(path, m.bytes);
    // To reproduce a case by hand: GEMMA3_FUZZ_KEEP=1 keeps a copy of every corrupted file.
    if (process.env.GEMMA3_FUZZ_KEEP === '1') writeFileSync(`${path}.case-${currentCase}`, m.bytes);
    return { path, what: m.what };
  };
  switch (format) {
    case 'gguf': {
      seeds.ggufs ??= corpus.ggufs.map(parseGgufModel);
      const seed = int(rng, seeds.ggufs.length);
      const m = mutateGguf(rng, seeds.ggufs[seed]!);
      return write(join(work, 'model.gguf'), { bytes: m.bytes, what: `${basename(corpus.ggufs[seed]!)}: ${m.what}` });
    }
    case 'mmproj':
      seeds.mmproj ??= parseGgufModel(corpus.mmproj);
      return write(join(work, 'mmproj.gguf'), mutateGguf(rng, seeds.mmproj));
    case 'safetensors': {
      seeds.safetensors ??= parseSafetensors(readFileSync(join(corpus.micro, 'model.safetensors')));
      const dir = join(work, 'ckpt');
      checkpointWith(corpus, dir, ['model.safetensors']);
      return { path: dir, what: write(join(dir, 'model.safetensors'), mutateSafetensors(rng, seeds.safetensors)).what };
    }
    case 'safetensors-tiny': {
      seeds.tinySafetensors ??= parseSafetensors(readFileSync(corpus.tinyText.safetensors));
      const dir = join(work, 'tiny');
      rmSync(dir, { recursive: true, force: true });
      mkdirSync(dir);
      symlinkSync(corpus.tinyText.config, join(dir, 'config.json'));
      return { path: dir, what: write(join(dir, 'model.safetensors'), mutateSafetensors(rng, seeds.tinySafetensors)).what };
    }
    case 'config': {
      const file = pick(rng, ['config.json', 'config.json', 'config.json', 'config.json', 'preprocessor_config.json', 'generation_config.json']);
      const dir = join(work, 'ckpt');
      checkpointWith(corpus, dir, [file]);
      const text = readSeedText(seeds, file === 'generation_config.json' ? null : join(corpus.micro, file));
      const m = mutateJson(rng, text, file === 'config.json' ? CONFIG_FOCUS : file === 'preprocessor_config.json' ? ['size.height', 'size.width', 'image_seq_length'] : []);
      return { path: dir, what: `${file}: ${write(join(dir, file), m).what}` };
    }
    case 'tokenizer': {
      const file = rng() < 0.85 ? 'tokenizer.json' : 'tokenizer_config.json';
      const dir = join(work, 'ckpt');
      checkpointWith(corpus, dir, [file]);
      const m = mutateJson(rng, readSeedText(seeds, join(corpus.micro, file)), file === 'tokenizer.json' ? TOKENIZER_FOCUS : []);
      return { path: dir, what: `${file}: ${write(join(dir, file), m).what}` };
    }
    case 'image': {
      seeds.images ??= corpus.images.map((p) => new Uint8Array(readFileSync(p)));
      const seed = int(rng, seeds.images.length);
      const m = mutateImage(rng, seeds.images[seed]!);
      return write(join(work, 'image'), { bytes: m.bytes, what: `${basename(corpus.images[seed]!)}: ${m.what}` });
    }
  }
}

const int = (rng: Rng, n: number): number => Math.floor(rng() * n);

function readSeedText(seeds: Seeds, path: string | null): string {
  seeds.json ??= new Map();
  const key = path ?? '';
  let text = seeds.json.get(key);
  if (text === undefined) {
    text = path === null ? JSON.stringify({ bos_token_id: 2, eos_token_id: [1, 106], pad_token_id: 0, do_sample: true, top_k: 64, top_p: 0.95 }) : readFileSync(path, 'utf8');
    seeds.json.set(key, text);
  }
  return text;
}

/** config.json fields that size allocations (half of the config corruptions pick one of these). */
const CONFIG_FOCUS = ['text_config.num_hidden_layers', 'text_config.hidden_size', 'text_config.intermediate_size', 'text_config.vocab_size',
  'text_config.num_attention_heads', 'text_config.num_key_value_heads', 'text_config.head_dim', 'text_config.max_position_embeddings',
  'text_config.sliding_window', 'text_config.sliding_window_pattern', 'text_config.layer_types', 'text_config.layer_types.0',
  'text_config.query_pre_attn_scalar', 'text_config.eos_token_id', 'text_config.rope_scaling', 'vision_config.num_hidden_layers',
  'vision_config.hidden_size', 'vision_config.intermediate_size', 'vision_config.num_attention_heads', 'vision_config.image_size',
  'vision_config.patch_size', 'vision_config.num_channels', 'mm_tokens_per_image', 'image_token_index', 'boi_token_index', 'model_type'];

const TOKENIZER_FOCUS = ['model.vocab.<pad>', 'model.vocab.<eos>', 'model.vocab.<bos>', 'model.vocab.▁t', 'model.vocab.in', 'model.merges.0',
  'model.merges.0.0', 'model.merges', 'model.vocab', 'added_tokens.0.id', 'added_tokens.1', 'added_tokens', 'model.type', 'model.unk_token',
  'model.byte_fallback', 'normalizer', 'pre_tokenizer', 'decoder', 'post_processor', 'post_processor.special_tokens.<bos>.ids.0'];

/** Loads one file (or folder) the way the library reads that format. */
async function loadAs(format: Format, path: string, corpus: Corpus): Promise<void> {
  switch (format) {
    case 'gguf': {
      const model = await load(path, { ...LOAD, mmproj: false });
      try {
        model.logits([2], 1);
      } finally {
        model.dispose();
      }
      return;
    }
    case 'mmproj': {
      const text = parseConfig(JSON.parse(readFileSync(join(corpus.micro, 'config.json'), 'utf8')));
      const mmproj = openMmproj(path, { ...text, modelType: 'gemma3_text', vision: null });
      try {
        assembleVision(mmproj.vision, mmproj.config, BACKEND, { allowRemoteImages: false });
      } finally {
        mmproj.source.close();
      }
      return;
    }
    case 'safetensors':
    case 'config': {
      const model = await load(path, LOAD);
      try {
        model.logits([2], 1);
      } finally {
        model.dispose();
      }
      return;
    }
    case 'safetensors-tiny': {
      // load() minus the 33 MB tokenizer.json: config, checkpoint, decoder.
      const config = loadConfig(path);
      const checkpoint = openCheckpoint(path);
      try {
        loadTextDecoder(checkpoint, config.text, BACKEND);
      } finally {
        checkpoint.close();
      }
      return;
    }
    case 'tokenizer': {
      const tokenizer = await loadTokenizer(path);
      const ids = tokenizer.encode('Hello <start_of_turn>user\nwörld 🙂 \u2581\u2581 <0x41>');
      tokenizer.decode(ids);
      tokenizer.decode(ids, { skipSpecialTokens: true });
      return;
    }
    case 'image':
      await decodeImage(readFileSync(path));
      return;
  }
}

/** Writes case i, announces it (so a crash or hang names it), loads it and reports how that ended. */
let currentCase = -1;

async function runCase(spec: ChildSpec, i: number, seeds: Seeds): Promise<CaseReport> {
  currentCase = i;
  let started = performance.now();
  let what = '';
  const report = (r: Pick<CaseReport, 'outcome' | 'code' | 'message'>): CaseReport => ({
    i, what, ...r, ms: Math.round(performance.now() - started), rssMb: Math.round(process.resourceUsage().maxRSS / 1024),
  });
  let path: string;
  if (spec.files !== undefined) {
    path = spec.files[i]!;
    what = basename(path);
  } else {
    try {
      ({ path, what } = writeCase(spec.format, caseRng(spec.seed, spec.format, i), spec.corpus, seeds, spec.work));
    } catch (e) {
      process.stdout.write(`FUZZ start ${JSON.stringify({ i, what })}\n`);
      return report({ outcome: 'untyped', code: 'HARNESS', message: `the mutator itself failed: ${(e as Error)?.stack ?? String(e)}` });
    }
  }
  process.stdout.write(`FUZZ start ${JSON.stringify({ i, what })}\n`);
  started = performance.now();
  try {
    await loadAs(spec.format, path, spec.corpus);
    return report({ outcome: 'ok' });
  } catch (e) {
    const message = (e instanceof Error ? e.message : String(e)).slice(0, 400);
    if (e instanceof GemmaError) return report({ outcome: 'typed', code: e.code, message });
    return report({ outcome: 'untyped', code: e instanceof Error ? e.name : typeof e, message: `${message}\n${(e as Error)?.stack?.split('\n').slice(1, 6).join('\n') ?? ''}` });
  }
}

async function main(): Promise<void> {
  const spec = JSON.parse(process.argv[2]!) as ChildSpec;
  mkdirSync(spec.work, { recursive: true });
  const seeds: Seeds = {};
  for (let i = spec.from; i < spec.to; i++) {
    const r = await runCase(spec, i, seeds);
    process.stdout.write(`FUZZ end ${JSON.stringify(r)}\n`);
  }
}

// Only as fuzz-harness.ts starts it (a test runner that picks up every file under test/ starts it bare).
if (process.argv[2]?.startsWith('{')) await main();
