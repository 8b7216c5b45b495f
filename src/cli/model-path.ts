// Where the CLI finds weights: --model (a folder, a .gguf file, or a hub reference such as
// google/gemma-3-4b-it or ggml-org/gemma-3-4b-it-GGUF:Q4_K_M resolved from the Hugging Face
// cache), then $GEMMA3_MODEL (the same forms), then the first Gemma 3 checkpoint in the cache.
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline/promises';
import { fileURLToPath } from 'node:url';
import { GemmaError } from '../index.js';
import { findCachedModel, hubSettings, looksLikeReference, parseModelReference } from '../advanced.js';
import { pullWithProgress } from './pull.js';

/** Checkpoints looked for in the Hugging Face cache when no model is named, preferred first. */
const HUB_MODELS = ['google/gemma-3-4b-it', 'google/gemma-3-1b-it', 'google/gemma-3-12b-it', 'google/gemma-3-27b-it'];

const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

/**
 * The tiny random-weight model --demo runs: the GGUF that scripts/build-demo.mjs writes at
 * `prepare` (shipped in the package), else, in a checkout where only tsc has run, the fixture
 * folder it is made from.
 */
export function demoModelPath(): string {
  const packaged = join(PACKAGE_ROOT, 'dist', 'demo', 'gemma3-demo.gguf');
  if (existsSync(packaged)) return packaged;
  const fixture = join(PACKAGE_ROOT, 'test', 'fixtures', 'tiny-text');
  if (existsSync(join(fixture, 'tokenizer.json'))) return fixture;
  throw new GemmaError('FILE_NOT_FOUND', `the demo model is missing from this installation (${packaged}); ` +
    'reinstall the package, or in a checkout run: npm run build && npm run build:demo');
}

export const HOW_TO_GET_WEIGHTS = `How to get weights:
  1. Accept Google's Gemma license on https://huggingface.co/google/gemma-3-4b-it (or -1b-it, -12b-it, -27b-it).
  2. Create an access token at https://huggingface.co/settings/tokens and set HF_TOKEN=hf_...
  3. Download (about 8.6 GB for the 4B in BF16; or a GGUF such as ggml-org/gemma-3-4b-it-GGUF:Q4_K_M, 3.2 GB):
       npx gemma3 pull google/gemma-3-4b-it
  4. Run:  npx gemma3 chat --model google/gemma-3-4b-it
To try the pipeline without weights: npx gemma3 chat --demo (a tiny random model: the words are meaningless).`;

export interface ResolveOptions {
  /** Download a referenced model that the cache lacks (--pull). */
  pull?: boolean;
  env?: NodeJS.ProcessEnv;
}

export interface ResolvedModel {
  path: string;
  /** The hub name (`owner/name`, `owner/name:QUANT`) when the model was named by one. */
  name: string | undefined;
}

/** A --model value (or $GEMMA3_MODEL): an existing path as is, else a hub reference from the cache. */
async function resolveNamed(value: string, source: string, options: ResolveOptions): Promise<ResolvedModel> {
  if (existsSync(value) || !looksLikeReference(value)) return { path: resolve(value), name: undefined };
  const ref = parseModelReference(value, source);
  const settings = hubSettings(options.env);
  const cached = findCachedModel(ref, settings.cacheDir);
  if (cached) return { path: cached.path, name: cached.reference };
  if (!settings.offline && (options.pull || await confirmPull(value, settings.endpoint))) {
    const pulled = await pullWithProgress(value);
    return { path: pulled.path, name: pulled.reference };
  }
  throw new GemmaError('FILE_NOT_FOUND', `${value} is not in the Hugging Face cache (${settings.cacheDir}) nor a file or folder here` +
    (settings.offline ? ' and HF_HUB_OFFLINE is set' : `; download it with: gemma3 pull ${value} (or add --pull)`));
}

/** On a terminal, asks whether to pull a model the cache lacks (never when stdin or stderr is not a TTY). */
async function confirmPull(name: string, endpoint: string): Promise<boolean> {
  if (!process.stdin.isTTY || !process.stderr.isTTY) return false;
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = await rl.question(`gemma3: ${name} is not downloaded yet. Pull it from ${endpoint} now? [y/N] `);
    return /^y(es)?$/i.test(answer.trim());
  } finally {
    rl.close();
  }
}

/** Resolves the model to use, or throws a FILE_NOT_FOUND error that says how to get one. */
export async function resolveModelPath(explicit: string | undefined, options: ResolveOptions = {}): Promise<string> {
  return (await resolveModel(explicit, options)).path;
}

/** resolveModelPath, with the hub name the model was given by (if any). */
export async function resolveModel(explicit: string | undefined, options: ResolveOptions = {}): Promise<ResolvedModel> {
  const env = options.env ?? process.env;
  if (explicit) return resolveNamed(explicit, '--model', options);
  if (env.GEMMA3_MODEL) return resolveNamed(env.GEMMA3_MODEL, 'GEMMA3_MODEL', options);
  const cacheDir = hubSettings(env).cacheDir;
  for (const repo of HUB_MODELS) {
    const found = findCachedModel({ repo, quant: undefined }, cacheDir);
    if (found) return { path: found.path, name: found.reference };
  }
  throw new GemmaError('FILE_NOT_FOUND', `No model given: pass --model (a folder, a .gguf file or a hub name such as google/gemma-3-4b-it) or set GEMMA3_MODEL.\n${HOW_TO_GET_WEIGHTS}`);
}
