// The models the cache holds, as `gemma3 list` and the server's /api/tags show them (one entry
// per checkpoint folder, one per GGUF quantisation), and removing one (`gemma3 rm`, /api/delete).
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { GemmaError } from '../errors.js';
import { removeFile, removeRepo, repoDir, scanCache, type CachedFile } from './cache.js';
import { formatReference, type ModelReference } from './reference.js';
import { findCachedModel } from './resolve.js';
import { ggufModels, isMmproj, quantOf, type ModelKind } from './select.js';

export interface CachedModelEntry {
  /** The reference that names it: `owner/name` or `owner/name:QUANT`. */
  name: string;
  repo: string;
  quant: string | undefined;
  commit: string;
  /** Branches and tags pointing at the commit. */
  refs: string[];
  kind: ModelKind;
  /** What load() takes. */
  path: string;
  files: CachedFile[];
  size: number;
  modified: Date;
  /** False for a checkpoint missing shards, or files of another kind of repository. */
  complete: boolean;
}

export function listCachedModels(cacheDir: string): CachedModelEntry[] {
  const out: CachedModelEntry[] = [];
  for (const repo of scanCache(cacheDir)) {
    for (const rev of repo.revisions) {
      const names = rev.files.map((f) => f.name);
      const entry = (name: string, quant: string | undefined, kind: ModelKind, files: CachedFile[], path: string, complete: boolean) => {
        const modified = new Date(Math.max(0, ...files.map((f) => statSync(f.path).mtimeMs)));
        out.push({ name, repo: repo.repo, quant, commit: rev.commit, refs: rev.refs, kind, path, files, size: files.reduce((n, f) => n + f.size, 0), modified, complete });
      };
      const ggufs = ggufModels(names);
      const mmproj = rev.files.filter((f) => isMmproj(f.name));
      for (const g of ggufs) {
        const quant = quantOf(g) ?? g.replace(/\.gguf$/i, '');
        const file = rev.files.find((f) => f.name === g)!;
        entry(formatReference({ repo: repo.repo, quant }), quant, 'gguf', [file, ...mmproj], file.path, true);
      }
      if (names.includes('config.json')) {
        const found = findCachedModel({ repo: repo.repo, quant: undefined }, cacheDir, rev.commit);
        const complete = found?.kind === 'safetensors';
        const files = rev.files.filter((f) => !/\.gguf$/i.test(f.name));
        entry(repo.repo, undefined, 'safetensors', files, join(repo.dir, 'snapshots', rev.commit), complete);
      }
    }
  }
  return out;
}

/**
 * Removes a model: a whole repository (`owner/name`), or one GGUF quantisation (`owner/name:QUANT`),
 * taking the repository with it when no other quantisation is left. Returns the bytes freed.
 */
export function removeModel(cacheDir: string, ref: ModelReference): number {
  const label = formatReference(ref);
  const dir = repoDir(cacheDir, ref.repo);
  if (!existsSync(dir)) throw new GemmaError('FILE_NOT_FOUND', `${label} is not in the cache (${cacheDir}); 'gemma3 list' shows what is`);
  if (ref.quant === undefined) {
    const freed = blobBytes(dir);
    removeRepo(cacheDir, ref.repo);
    return freed;
  }
  const entries = listCachedModels(cacheDir).filter((m) => m.repo === ref.repo);
  const wanted = ref.quant.toUpperCase();
  const matching = entries.filter((m) => m.kind === 'gguf' && m.quant === wanted);
  if (matching.length === 0) {
    throw new GemmaError('FILE_NOT_FOUND', `${label} is not in the cache; cached from ${ref.repo}: ${entries.map((m) => m.name).join(', ') || 'nothing'}`);
  }
  let freed = 0;
  for (const name of new Set(matching.map((m) => m.files[0]!.name))) freed += removeFile(dir, name);
  if (!listCachedModels(cacheDir).some((m) => m.repo === ref.repo)) {
    // Only the vision projector (or other leftovers) remain: the repository goes with them.
    freed += blobBytes(dir);
    removeRepo(cacheDir, ref.repo);
  }
  return freed;
}

/** Bytes held in a repository's blobs/ (complete and partial). */
function blobBytes(dir: string): number {
  let n = 0;
  try {
    for (const f of readdirSync(join(dir, 'blobs'))) n += statSync(join(dir, 'blobs', f)).size;
  } catch {
    // no blobs/
  }
  return n;
}
