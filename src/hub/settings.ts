// Where the Hugging Face tools keep things, read from the environment exactly as Python's
// huggingface_hub reads it, so a model pulled by either is found by the other.
// ref: huggingface_hub constants.py (HF_HOME, HF_HUB_CACHE, HF_ENDPOINT, HF_TOKEN, HF_TOKEN_PATH,
// HF_HUB_OFFLINE) and https://huggingface.co/docs/hub/local-cache (cache location).
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

export const DEFAULT_ENDPOINT = 'https://huggingface.co';

export interface HubSettings {
  /** The hub cache: HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub. */
  cacheDir: string;
  /** HF_ENDPOINT (a mirror), else https://huggingface.co; no trailing slash. */
  endpoint: string;
  /** HF_TOKEN, else the token file huggingface-cli login writes; undefined when neither. */
  token: string | undefined;
  /** Where the token came from, for messages ('HF_TOKEN', a file path, or undefined). */
  tokenSource: string | undefined;
  /** HF_HUB_OFFLINE=1: only the cache is used, the network never. */
  offline: boolean;
}

/** HF_HOME, else $XDG_CACHE_HOME/huggingface, else ~/.cache/huggingface. */
export function hfHome(env: NodeJS.ProcessEnv = process.env): string {
  if (env.HF_HOME) return env.HF_HOME;
  return join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'huggingface');
}

export function hubCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  // HUGGINGFACE_HUB_CACHE is the older name Python still honours.
  return env.HF_HUB_CACHE || env.HUGGINGFACE_HUB_CACHE || join(hfHome(env), 'hub');
}

/** Python's truthy values for boolean variables: 1, ON, YES, TRUE (any case). */
function truthy(value: string | undefined): boolean {
  return value !== undefined && ['1', 'on', 'yes', 'true'].includes(value.trim().toLowerCase());
}

export function hubSettings(env: NodeJS.ProcessEnv = process.env): HubSettings {
  let token = env.HF_TOKEN?.trim() || env.HUGGING_FACE_HUB_TOKEN?.trim() || undefined;
  let tokenSource = token ? 'HF_TOKEN' : undefined;
  if (!token) {
    const file = env.HF_TOKEN_PATH || join(hfHome(env), 'token');
    try {
      token = readFileSync(file, 'utf8').trim() || undefined;
      if (token) tokenSource = file;
    } catch {
      // no token file: anonymous access
    }
  }
  return {
    cacheDir: hubCacheDir(env),
    endpoint: (env.HF_ENDPOINT || DEFAULT_ENDPOINT).replace(/\/+$/, ''),
    token,
    tokenSource,
    offline: truthy(env.HF_HUB_OFFLINE),
  };
}
