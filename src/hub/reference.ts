// Model references: `OWNER/NAME` (a Hugging Face checkpoint folder) or `OWNER/NAME:QUANT` (one
// quantisation of a GGUF repository, as llama.cpp's -hf takes it). They name cache folders, so
// anything that could escape the cache (`..`, `/`, absolute paths) is refused here, once.
import { GemmaError } from '../errors.js';

export interface ModelReference {
  /** `owner/name`, as the hub spells it. */
  repo: string;
  /** The GGUF quantisation asked for (`Q4_K_M`), or undefined. */
  quant: string | undefined;
}

// The hub's own rule for names: letters, digits, '-', '_', '.'; no '--' or '..'; at most 96 characters.
const PART = /^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$/;
const QUANT = /^[A-Za-z0-9][A-Za-z0-9_]{0,31}$/;

function validPart(part: string): boolean {
  return PART.test(part) && !part.includes('--') && !part.includes('..') && !part.endsWith('.');
}

/**
 * Parses `OWNER/NAME[:QUANT]` (an `hf.co/` or `huggingface.co/` prefix and Ollama's `:latest` are
 * accepted). `what` names the flag or field in the error.
 */
export function parseModelReference(text: string, what = 'model'): ModelReference {
  if (typeof text !== 'string' || text.trim() === '') {
    throw new GemmaError('INVALID_ARGUMENT', `${what} must be a Hugging Face repository OWNER/NAME[:QUANT], got ${JSON.stringify(text)}`);
  }
  const stripped = text.trim().replace(/^(https?:\/\/)?(hf\.co|huggingface\.co)\//i, '');
  const colon = stripped.indexOf(':');
  const repo = colon < 0 ? stripped : stripped.slice(0, colon);
  let quant: string | undefined = colon < 0 ? undefined : stripped.slice(colon + 1);
  if (quant !== undefined && quant.toLowerCase() === 'latest') quant = undefined;
  const parts = repo.split('/');
  if (parts.length !== 2 || !parts.every(validPart)) {
    throw new GemmaError('INVALID_ARGUMENT',
      `${what} must be a Hugging Face repository OWNER/NAME[:QUANT] (letters, digits, '-', '_', '.'; no '..'), got ${JSON.stringify(text)}`);
  }
  if (quant !== undefined && !QUANT.test(quant)) {
    throw new GemmaError('INVALID_ARGUMENT', `${what}: the quantisation after ':' must be a name like Q4_K_M, got ${JSON.stringify(quant)}`);
  }
  return { repo, quant };
}

/** True when `text` has the shape of a reference (and so is not meant as a file path). */
export function looksLikeReference(text: string): boolean {
  try {
    parseModelReference(text);
    return true;
  } catch {
    return false;
  }
}

export function formatReference(ref: ModelReference): string {
  return ref.quant ? `${ref.repo}:${ref.quant}` : ref.repo;
}

/**
 * A file path as the hub lists it, checked before it names anything in the cache: relative,
 * '/'-separated, no '.', '..' or empty segments, no backslash or NUL. A listing that breaks this
 * (a hostile mirror) is refused rather than written outside the snapshot.
 */
export function isSafeRepoPath(path: string): boolean {
  return typeof path === 'string' && path.length > 0 && path.length <= 1024 && !/[\\\0]/.test(path) &&
    path.split('/').every((p) => p !== '' && p !== '.' && p !== '..');
}

/** A blob name: a git blob id (40 hex) or a sha256 (64 hex). */
export function isSafeEtag(etag: string): boolean {
  return /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/.test(etag);
}

const COMMIT = /^[0-9a-f]{40}$/;

export function isCommitHash(revision: string): boolean {
  return COMMIT.test(revision);
}

/** A revision (branch, tag or commit) that is safe as a path component under refs/ and snapshots/. */
export function checkRevision(revision: string, what = '--revision'): string {
  if (typeof revision !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$/.test(revision) ||
      revision.split('/').some((p) => p === '' || p === '.' || p === '..')) {
    throw new GemmaError('INVALID_ARGUMENT', `${what} must be a branch, tag or commit of the repository, got ${JSON.stringify(revision)}`);
  }
  return revision;
}
