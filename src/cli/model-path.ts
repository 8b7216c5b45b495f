// Where the CLI finds weights: --model, then $GEMMA3_MODEL, then the Hugging Face cache.
import { existsSync, readdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GemmaError } from '../index.js';

/** Checkpoints looked for in the Hugging Face cache, preferred first. */
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
  2. Create an access token at https://huggingface.co/settings/tokens.
  3. Download (about 9 GB for the 4B in BF16):
       pip install -U huggingface_hub && HF_TOKEN=hf_... huggingface-cli download google/gemma-3-4b-it
  4. Run:       npx gemma3 chat --model ~/.cache/huggingface/hub/models--google--gemma-3-4b-it/snapshots/<rev>
     or set GEMMA3_MODEL to that folder.
To try the pipeline without weights: npx gemma3 chat --demo (a tiny random model: the words are meaningless).`;

export function hubCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.HF_HUB_CACHE) return env.HF_HUB_CACHE;
  if (env.HF_HOME) return join(env.HF_HOME, 'hub');
  return join(env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'huggingface', 'hub');
}

/** Resolves the model folder to use, or throws a FILE_NOT_FOUND error that says how to get one. */
export function resolveModelPath(explicit: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  if (explicit) return resolve(explicit);
  if (env.GEMMA3_MODEL) return resolve(env.GEMMA3_MODEL);
  const cache = hubCacheDir(env);
  for (const repo of HUB_MODELS) {
    const snapshots = join(cache, `models--${repo.replace('/', '--')}`, 'snapshots');
    if (!existsSync(snapshots)) continue;
    for (const rev of readdirSync(snapshots).sort()) {
      const dir = join(snapshots, rev);
      if (existsSync(join(dir, 'config.json'))) return dir;
    }
  }
  throw new GemmaError('FILE_NOT_FOUND', `No model given: pass --model DIR or set GEMMA3_MODEL.\n${HOW_TO_GET_WEIGHTS}`);
}
