// Typed access to Hugging Face JSON files (config.json, generation_config.json): every error
// names the file and the key path.
import { readFileSync } from 'node:fs';
import { GemmaError } from '../errors.js';

export type Json = Record<string, unknown>;

/** Reads typed keys of one JSON object; every error names the file and the key path. */
export class Fields {
  constructor(readonly obj: Json, readonly file: string, readonly prefix: string) {}

  path(key: string): string {
    return this.prefix + key;
  }

  bad(key: string, expected: string): GemmaError {
    return new GemmaError('BAD_FORMAT', `${this.file}: ${this.path(key)} must be ${expected}, got ${JSON.stringify(this.obj[key])}`);
  }

  /** A positive integer; `max` refuses a size no real model has before anything is sized by it. */
  posInt(key: string, def: number, max = Number.MAX_SAFE_INTEGER): number {
    const v = Object.hasOwn(this.obj, key) ? this.obj[key] : def;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) throw this.bad(key, 'a positive integer');
    if (v > max) throw this.bad(key, `at most ${max} (larger than any Gemma 3 model; the file is corrupt)`);
    return v;
  }

  /** Token ids: null means "use the default". */
  tokenId(key: string, def: number): number {
    const v = this.obj[key] ?? def;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw this.bad(key, 'a non-negative integer');
    return v;
  }

  posNum(key: string, def: number): number {
    const v = Object.hasOwn(this.obj, key) ? this.obj[key] : def;
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw this.bad(key, 'a positive number');
    return v;
  }

  posNumOrNull(key: string): number | null {
    const v = this.obj[key] ?? null;
    if (v === null) return null;
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw this.bad(key, 'a positive number or null');
    return v;
  }

  bool(key: string, def: boolean): boolean {
    const v = this.obj[key] ?? def;
    if (typeof v !== 'boolean') throw this.bad(key, 'true or false');
    return v;
  }

  /** Refuses a value this engine does not implement (UNSUPPORTED_MODEL). */
  only(key: string, allowed: readonly unknown[], what: string): void {
    const v = this.obj[key];
    if (v !== undefined && v !== null && !allowed.includes(v)) {
      throw new GemmaError('UNSUPPORTED_MODEL', `${this.file}: ${this.path(key)} = ${JSON.stringify(v)} is not supported (${what})`);
    }
  }
}

export function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** `eos_token_id`-style value: a number or a non-empty array of numbers; undefined when absent/null. */
export function tokenIds(f: Fields, key: string): number[] | undefined {
  const v = f.obj[key];
  if (v === undefined || v === null) return undefined;
  const arr = Array.isArray(v) ? v : [v];
  if (arr.length === 0 || !arr.every((x) => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0)) {
    throw f.bad(key, 'a token id or a non-empty array of token ids');
  }
  return arr as number[];
}

export function readJsonFile(path: string, what: string, optional: boolean): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if (optional && (e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new GemmaError('FILE_NOT_FOUND', `${what} not found: ${path}`, { cause: e });
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new GemmaError('BAD_FORMAT', `${path}: not valid JSON (${(e as Error).message})`, { cause: e });
  }
}
