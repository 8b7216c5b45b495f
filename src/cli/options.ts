// Flag parsing shared by the subcommands: strict numbers, model resolution, loading with progress,
// image flags and --messages files.
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { GemmaError } from '../index.js';
import { load } from '../index.js';
import type { Gemma3 } from '../index.js';
import type { GenerateOptions } from '../index.js';
import type { ChatMessage, ContentPart } from '../index.js';
import { DEMO_MODEL, resolveModel, type ResolvedModel } from './model-path.js';

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

export function parse(args: string[], options: NonNullable<ParseArgsConfig['options']>): ParsedFlags {
  const { values, positionals } = parseArgs({ args, options, allowPositionals: true, strict: true });
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
  return options;
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
    return { path: DEMO_MODEL, name: undefined };
  }
  return resolveModel(values.model, { pull: values.pull === true });
}

/** --mmap auto|on|off → load()'s `mmap` option. */
export function mmapFlag(value: string | undefined): 'auto' | boolean | undefined {
  if (value === undefined || value === 'auto') return value;
  if (value === 'on' || value === 'off') return value === 'on';
  throw new GemmaError('INVALID_ARGUMENT', `--mmap must be auto, on or off, got ${JSON.stringify(value)}`);
}

/** Loads the model named by the flags, showing progress on stderr. */
export async function loadFromFlags(values: Record<string, unknown>): Promise<Gemma3> {
  const dir = await modelDir(values as { model?: string; demo?: boolean; pull?: boolean });
  const contextLength = numberFlag('context', values.context as string | undefined, true);
  const threads = numberFlag('threads', values.threads as string | undefined, true);
  const backend = values.backend as string | undefined;
  if (backend !== undefined && !['auto', 'native', 'js'].includes(backend)) {
    throw new GemmaError('INVALID_ARGUMENT', `--backend must be auto, native or js, got ${JSON.stringify(backend)}`);
  }
  const quant = values.quant as string | undefined;
  if (quant !== undefined && !['q8_0', 'q4_0', 'q4_k_m', 'q6_k'].includes(quant)) {
    throw new GemmaError('INVALID_ARGUMENT', `--quant must be q8_0, q4_0, q4_k_m or q6_k, got ${JSON.stringify(quant)}`);
  }
  const mmap = mmapFlag(values.mmap as string | undefined);
  const mmproj = values.mmproj as string | undefined;
  if (mmproj !== undefined && mmproj === '') throw new GemmaError('INVALID_ARGUMENT', '--mmproj needs a file path');
  const tty = process.stderr.isTTY;
  let shown = -1;
  const started = Date.now();
  const model = await load(dir, {
    ...(quant !== undefined ? { quant: quant as 'q8_0' | 'q4_0' | 'q4_k_m' | 'q6_k' } : {}),
    ...(mmap !== undefined ? { mmap } : {}),
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
  });
  if (tty) process.stderr.write(`\rgemma3: loaded ${dir} in ${((Date.now() - started) / 1000).toFixed(1)} s (${model.backend} backend)\n`);
  return model;
}

/** An image part for a path given on the command line (resolved against the working directory). */
export function imagePart(path: string): ContentPart {
  if (path === '') throw new GemmaError('INVALID_ARGUMENT', '--image needs a file path');
  return { type: 'image', image: isUrl(path) ? path : resolve(path) };
}

function isUrl(s: string): boolean {
  return /^(data|https?|file):/i.test(s);
}

/**
 * Reads a --messages file: a JSON array of chat messages in the Hugging Face form
 * (`[{"role": "user", "content": [{"type": "image", "image": "cat.png"}, {"type": "text", "text": "..."}]}]`).
 * Image paths (`image`, `url` or `path` of an image part) are relative to the JSON file.
 */
export function readMessagesFile(file: string): ChatMessage[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new GemmaError(code === 'ENOENT' ? 'FILE_NOT_FOUND' : 'INVALID_ARGUMENT', `cannot read --messages file ${file}: ${(err as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new GemmaError('BAD_FORMAT', `--messages file ${file} is not valid JSON: ${(err as Error).message}`);
  }
  if (!Array.isArray(json) || json.length === 0) {
    throw new GemmaError('INVALID_ARGUMENT', `--messages file ${file} must hold a non-empty JSON array of {role, content} messages`);
  }
  const base = dirname(resolve(file));
  return json.map((message: unknown, i) => {
    if (typeof message !== 'object' || message === null || Array.isArray(message)) {
      throw new GemmaError('INVALID_ARGUMENT', `--messages file ${file}: message ${i} is not an object {role, content}`);
    }
    const m = message as ChatMessage;
    if (!Array.isArray(m.content)) return m;
    const content = m.content.map((part) => {
      if (typeof part !== 'object' || part === null || part.type !== 'image') return part;
      const out: Record<string, unknown> = { ...part };
      for (const key of ['image', 'url', 'path']) {
        const v = out[key];
        if (typeof v === 'string' && v !== '' && !isUrl(v) && !isAbsolute(v)) out[key] = resolve(base, v);
      }
      return out as ContentPart;
    });
    return { ...m, content };
  });
}
