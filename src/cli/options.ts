// Flag parsing shared by the subcommands: --help, strict numbers and ranges in the flags' names,
// model resolution, loading with progress, image flags.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { GemmaError } from '../index.js';
import { load } from '../index.js';
import { validateSamplingOptions } from '../advanced.js';
import type { Gemma3 } from '../index.js';
import type { GenerateOptions } from '../index.js';
import type { ContentPart, KvType } from '../index.js';
import { KV_TYPES } from '../backend/backend.js';
import { demoModelPath, resolveModel, type ResolvedModel } from './model-path.js';

/** Replies of the demo model stop here unless --max-tokens says otherwise: its words are noise. */
export const DEMO_MAX_TOKENS = 48;

/** The model flags' help, shared by the commands that load a model. */
export const MODEL_HELP = `Model options:
  --model PATH, -m     a Hugging Face checkpoint folder or a llama.cpp .gguf file, or a name in the hub
                       cache: google/gemma-3-4b-it, ggml-org/gemma-3-4b-it-GGUF:Q4_K_M
                       (default: $GEMMA3_MODEL, else google/gemma-3-*-it in the Hugging Face cache)
  --pull               download the --model name first when the cache lacks it (gemma3 pull)
  --demo               a tiny model with random weights shipped in the package (meaningless words;
                       shows the pipeline working without a download)
  --context N          KV cache size in tokens (default 8192, or the model's limit if lower)
  --mmproj FILE        (GGUF) the vision projector file; default: the one mmproj*.gguf next to the model
  --quant q8_0|q4_0|q4_k_m|q5_k_m|q6_k  quantise the weights as they load (as gemma3 convert --type would)
  --mmap auto|on|off   (GGUF, native backend) serve the weights from a mapping of the file instead of
                       copies made at load; auto (default): float weights when the page cache holds
                       the file in 2 MiB pages (Q4_0/Q8_0 are copied into the kernels' layout)
  --backend auto|native|js   kernels (default auto: native when the addon is built)
  --threads N          threads for the native kernels (default: one per physical core)
  --kv-type f32|f16|bf16  how the KV cache stores keys and values (default f32; f16 and bf16 halve it)`;

/** The generation flags' help (run, chat). */
export const GENERATION_HELP = `Generation options:
  --system TEXT        system prompt
  --max-tokens N       most tokens to generate (default 512; ${DEMO_MAX_TOKENS} with --demo)
  --temperature T      0 = greedy (default: the model's generation_config.json)
  --top-k K  --top-p P  --min-p P  --repetition-penalty R  --seed S
  --stop TEXT          stop string (repeatable)
  --json-schema FILE   the reply is JSON valid for this JSON schema (constrained decoding)
  --grammar FILE       the reply follows this grammar (xgrammar EBNF, GBNF-style: root ::= ...)
  --image PATH         attach a picture (vision models: 4B, 12B, 27B); repeatable
  --pan-and-scan       also show the model crops of very wide or tall pictures
  --allow-remote-images  accept http(s) image URLs`;

export const MODEL_FLAGS = {
  model: { type: 'string', short: 'm' },
  demo: { type: 'boolean' },
  context: { type: 'string' },
  backend: { type: 'string' },
  threads: { type: 'string' },
  mmproj: { type: 'string' },
  quant: { type: 'string' },
  mmap: { type: 'string' },
  pull: { type: 'boolean' },
  'kv-type': { type: 'string' },
} as const satisfies ParseArgsConfig['options'];

export const GENERATION_FLAGS = {
  system: { type: 'string' },
  'max-tokens': { type: 'string' },
  temperature: { type: 'string' },
  'top-k': { type: 'string' },
  'top-p': { type: 'string' },
  'min-p': { type: 'string' },
  'repetition-penalty': { type: 'string' },
  seed: { type: 'string' },
  stop: { type: 'string', multiple: true },
  'json-schema': { type: 'string' },
  grammar: { type: 'string' },
} as const satisfies ParseArgsConfig['options'];

/** Image input (run, chat); --messages is added by the commands that take it. */
export const IMAGE_FLAGS = {
  image: { type: 'string', multiple: true },
  'pan-and-scan': { type: 'boolean' },
  'allow-remote-images': { type: 'boolean' },
} as const satisfies ParseArgsConfig['options'];

export interface ParsedFlags {
  values: Record<string, any>;
  positionals: string[];
}

/** Thrown by parse() for --help / -h: main prints the text on stdout and exits 0. */
export class HelpRequest {
  constructor(readonly text: string) {}
}

/**
 * Parses a command's flags. `help`, the command's help text, is shown for --help or -h anywhere
 * before `--`. A value flag followed by a negative number (`--max-tokens -5`) takes it as its
 * value, so that the number's range is what gets reported, not an "ambiguous argument".
 */
export function parse(args: string[], options: NonNullable<ParseArgsConfig['options']>, help?: string): ParsedFlags {
  const end = args.indexOf('--');
  const flags = end === -1 ? args : args.slice(0, end);
  if (help !== undefined && (flags.includes('--help') || flags.includes('-h'))) throw new HelpRequest(help);
  const joined: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const next = args[i + 1];
    const name = arg.startsWith('--') ? arg.slice(2) : undefined;
    if ((end === -1 || i < end) && name !== undefined && options[name]?.type === 'string' && next !== undefined && /^-\.?\d/.test(next)) {
      joined.push(`${arg}=${next}`);
      i++;
    } else {
      joined.push(arg);
    }
  }
  const { values, positionals } = parseArgs({ args: joined, options, allowPositionals: true, strict: true });
  return { values, positionals };
}

/** Parses a numeric flag; undefined when absent, a clear error when not a number. */
export function numberFlag(name: string, value: string | undefined, integer = false): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || (integer && !Number.isInteger(n))) {
    throw new GemmaError('INVALID_ARGUMENT', `--${name} must be ${integer ? 'an integer' : 'a number'}, got ${JSON.stringify(value)}`);
  }
  return n;
}

/** Library option names → the flags that set them, for errors in the user's terms. */
const FLAG_OF_OPTION: Readonly<Record<string, string>> = {
  maxTokens: 'max-tokens', temperature: 'temperature', topK: 'top-k', topP: 'top-p', minP: 'min-p',
  repetitionPenalty: 'repetition-penalty', seed: 'seed', stop: 'stop', contextLength: 'context', threads: 'threads',
};

/**
 * Runs `fn`, rewording an INVALID_ARGUMENT error about a library option (`topP must be ...`, the
 * uniform wording of invalidArgument) as one about its flag (`--top-p must be ...`).
 */
export async function inFlagTerms<T>(fn: () => T | Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw reworded(err);
  }
}

function reworded(err: unknown): unknown {
  if (!(err instanceof GemmaError) || err.code !== 'INVALID_ARGUMENT') return err;
  const message = flagTerms(err.message);
  return message === err.message ? err : new GemmaError('INVALID_ARGUMENT', message, { cause: err });
}

/** `topP must be ...` → `--top-p must be ...`; other messages unchanged. */
export function flagTerms(message: string): string {
  const m = /^(\w+) must be /.exec(message);
  const flag = m ? FLAG_OF_OPTION[m[1]!] : undefined;
  return flag === undefined ? message : `--${flag}${message.slice(m![1]!.length)}`;
}

/** Generation flags → options, every value checked (in the flags' names) before a model loads. */
export function generationOptions(values: Record<string, unknown>): GenerateOptions {
  const str = (k: string) => values[k] as string | undefined;
  const options: GenerateOptions = {};
  const set = <K extends keyof GenerateOptions>(key: K, v: GenerateOptions[K] | undefined) => {
    if (v !== undefined) options[key] = v;
  };
  set('maxTokens', numberFlag('max-tokens', str('max-tokens'), true));
  set('temperature', numberFlag('temperature', str('temperature')));
  set('topK', numberFlag('top-k', str('top-k'), true));
  set('topP', numberFlag('top-p', str('top-p')));
  set('minP', numberFlag('min-p', str('min-p')));
  set('repetitionPenalty', numberFlag('repetition-penalty', str('repetition-penalty')));
  set('seed', numberFlag('seed', str('seed'), true));
  set('stop', values.stop as string[] | undefined);
  if (options.maxTokens === undefined && values.demo) options.maxTokens = DEMO_MAX_TOKENS;
  if (options.maxTokens !== undefined && options.maxTokens < 1) {
    throw new GemmaError('INVALID_ARGUMENT', `--max-tokens must be a positive integer, got ${options.maxTokens}`);
  }
  if (options.stop?.some((s) => s === '')) throw new GemmaError('INVALID_ARGUMENT', '--stop needs a non-empty string');
  try {
    validateSamplingOptions(options);
  } catch (err) {
    throw reworded(err);
  }
  Object.assign(options, grammarFlags(str('json-schema'), str('grammar')));
  return options;
}

/** --json-schema FILE (a JSON schema) and --grammar FILE (xgrammar EBNF, GBNF-style) → grammar options. */
export function grammarFlags(schemaFile: string | undefined, grammarFile: string | undefined): Pick<GenerateOptions, 'responseFormat' | 'grammar'> {
  if (schemaFile !== undefined && grammarFile !== undefined) throw new GemmaError('INVALID_ARGUMENT', '--json-schema and --grammar cannot be used together');
  const read = (flag: string, file: string) => {
    try {
      return readFileSync(file, 'utf8');
    } catch (err) {
      throw new GemmaError('INVALID_ARGUMENT', `--${flag}: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  };
  if (grammarFile !== undefined) return { grammar: read('grammar', grammarFile) };
  if (schemaFile === undefined) return {};
  const text = read('json-schema', schemaFile);
  let schema: unknown;
  try {
    schema = JSON.parse(text);
  } catch (err) {
    throw new GemmaError('INVALID_ARGUMENT', `--json-schema: ${schemaFile} is not valid JSON: ${(err as Error).message}`);
  }
  if (schema === null || typeof schema !== 'object' || Array.isArray(schema)) {
    throw new GemmaError('INVALID_ARGUMENT', `--json-schema: ${schemaFile} must hold a JSON schema object`);
  }
  return { responseFormat: { type: 'json_schema', schema: schema as Record<string, unknown> } };
}

/** --context N, checked for what needs no model (the model's own limit is checked at load). */
export function contextFlag(value: string | undefined): number | undefined {
  const n = numberFlag('context', value, true);
  if (n !== undefined && n < 2) throw new GemmaError('INVALID_ARGUMENT', `--context must be an integer >= 2, got ${n}`);
  return n;
}

/** --threads N. */
export function threadsFlag(value: string | undefined): number | undefined {
  const n = numberFlag('threads', value, true);
  if (n !== undefined && (n < 1 || n > 64)) throw new GemmaError('INVALID_ARGUMENT', `--threads must be an integer in [1, 64], got ${n}`);
  return n;
}

/** Parses --ids "2,105,..." into integers. */
export function parseIds(value: string): number[] {
  const parts = value.split(/[\s,]+/).filter((p) => p !== '');
  const ids = parts.map(Number);
  if (ids.length === 0 || ids.some((id) => !Number.isInteger(id) || id < 0)) {
    throw new GemmaError('INVALID_ARGUMENT', `--ids must be comma-separated non-negative integers, got ${JSON.stringify(value)}`);
  }
  return ids;
}

export async function modelDir(values: { model?: string | undefined; demo?: boolean | undefined; pull?: boolean | undefined }): Promise<string> {
  return (await modelTarget(values)).path;
}

/** modelDir, with the hub name the model was given by (`gemma3 serve` serves it under that name). */
export async function modelTarget(values: { model?: string | undefined; demo?: boolean | undefined; pull?: boolean | undefined }): Promise<ResolvedModel> {
  if (values.demo) {
    if (values.model) throw new GemmaError('INVALID_ARGUMENT', '--demo and --model cannot be used together');
    process.stderr.write('gemma3: DEMO MODE: a tiny model with random weights; its words are meaningless. ' +
      'It shows the whole pipeline working. Use --model DIR for real Gemma 3 weights.\n');
    return { path: demoModelPath(), name: undefined };
  }
  return resolveModel(values.model, { pull: values.pull === true });
}

/** --mmap auto|on|off → load()'s `mmap` option. */
export function mmapFlag(value: string | undefined): 'auto' | boolean | undefined {
  if (value === undefined || value === 'auto') return value;
  if (value === 'on' || value === 'off') return value === 'on';
  throw new GemmaError('INVALID_ARGUMENT', `--mmap must be auto, on or off, got ${JSON.stringify(value)}`);
}

/** --kv-type f32|f16|bf16 → load()'s `kvType` option; checked before anything loads. */
export function kvTypeFlag(value: string | undefined): KvType | undefined {
  if (value === undefined) return undefined;
  if (!(KV_TYPES as readonly string[]).includes(value)) {
    throw new GemmaError('INVALID_ARGUMENT', `--kv-type must be ${KV_TYPES.join(', ')}, got ${JSON.stringify(value)}`);
  }
  return value as KvType;
}

/** Loads the model named by the flags, showing progress on stderr. */
export async function loadFromFlags(values: Record<string, unknown>): Promise<Gemma3> {
  const kvType = kvTypeFlag(values['kv-type'] as string | undefined);
  const contextLength = contextFlag(values.context as string | undefined);
  const threads = threadsFlag(values.threads as string | undefined);
  const backend = values.backend as string | undefined;
  if (backend !== undefined && !['auto', 'native', 'js'].includes(backend)) {
    throw new GemmaError('INVALID_ARGUMENT', `--backend must be auto, native or js, got ${JSON.stringify(backend)}`);
  }
  const quant = values.quant as string | undefined;
  if (quant !== undefined && !['q8_0', 'q4_0', 'q4_k_m', 'q5_k_m', 'q6_k'].includes(quant)) {
    throw new GemmaError('INVALID_ARGUMENT', `--quant must be q8_0, q4_0, q4_k_m, q5_k_m or q6_k, got ${JSON.stringify(quant)}`);
  }
  const mmap = mmapFlag(values.mmap as string | undefined);
  const mmproj = values.mmproj as string | undefined;
  if (mmproj !== undefined && mmproj === '') throw new GemmaError('INVALID_ARGUMENT', '--mmproj needs a file path');
  const dir = await modelDir(values as { model?: string; demo?: boolean; pull?: boolean });
  const tty = process.stderr.isTTY;
  let shown = -1;
  const started = Date.now();
  const model = await inFlagTerms(() => load(dir, {
    ...(quant !== undefined ? { quant: quant as 'q8_0' | 'q4_0' | 'q4_k_m' | 'q5_k_m' | 'q6_k' } : {}),
    ...(mmap !== undefined ? { mmap } : {}),
    ...(kvType !== undefined ? { kvType } : {}),
    ...(mmproj !== undefined ? { mmproj } : {}),
    ...(contextLength !== undefined ? { contextLength } : {}),
    ...(threads !== undefined ? { threads } : {}),
    ...(backend !== undefined ? { backend: backend as 'auto' | 'native' | 'js' } : {}),
    ...(values['allow-remote-images'] ? { allowRemoteImages: true } : {}),
    onProgress: (f) => {
      const pct = Math.floor(f * 100);
      if (tty && pct !== shown) {
        shown = pct;
        process.stderr.write(`\rgemma3: loading ${dir} ${pct}%`);
      }
    },
  }));
  if (tty) process.stderr.write(`\rgemma3: loaded ${dir} in ${((Date.now() - started) / 1000).toFixed(1)} s (${model.backend} backend)\n`);
  return model;
}

/** An image part for a path given on the command line (resolved against the working directory). */
export function imagePart(path: string): ContentPart {
  if (path === '') throw new GemmaError('INVALID_ARGUMENT', '--image needs a file path');
  return { type: 'image', image: isUrl(path) ? path : resolve(path) };
}

export function isUrl(s: string): boolean {
  return /^(data|https?|file):/i.test(s);
}
