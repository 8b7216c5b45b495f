// A model reference → the folder or .gguf file in the cache that load() reads, without the network.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { GemmaError } from '../errors.js';
import { cachedCommit, repoDir, snapshotDir, snapshotFiles } from './cache.js';
import { formatReference, type ModelReference } from './reference.js';
import { SAFETENSORS_INDEX, SAFETENSORS_SINGLE, ggufModels, pickGguf, type ModelKind } from './select.js';

export interface CachedModel {
  /** `owner/name` or `owner/name:QUANT` (the quantisation of the file found). */
  reference: string;
  repo: string;
  commit: string;
  kind: ModelKind;
  /** What load() takes: the snapshot folder (safetensors) or the .gguf file (its mmproj beside it). */
  path: string;
  /** The snapshot folder. */
  snapshot: string;
  /** The files the model is made of (for a GGUF model: its file and the mmproj). */
  files: { name: string; size: number }[];
}

/** True when a snapshot holds a whole checkpoint: config.json and every shard its index lists. */
function completeCheckpoint(snapshot: string, names: Set<string>): boolean {
  if (!names.has('config.json')) return false;
  if (names.has(SAFETENSORS_INDEX)) {
    try {
      const index = JSON.parse(readFileSync(join(snapshot, SAFETENSORS_INDEX), 'utf8')) as { weight_map?: Record<string, string> };
      const shards = new Set(Object.values(index.weight_map ?? {}));
      return shards.size > 0 && [...shards].every((s) => names.has(s));
    } catch {
      return false;
    }
  }
  return names.has(SAFETENSORS_SINGLE);
}

/** The cached model a reference names, or null when the cache does not hold it (whole). */
export function findCachedModel(ref: ModelReference, cacheDir: string, revision?: string): CachedModel | null {
  const dir = repoDir(cacheDir, ref.repo);
  const commit = cachedCommit(dir, revision);
  if (!commit) return null;
  const snapshot = snapshotDir(dir, commit);
  const files = snapshotFiles(dir, commit);
  const names = new Set(files.map((f) => f.name));
  const base = { repo: ref.repo, commit, snapshot };
  if (ref.quant === undefined && completeCheckpoint(snapshot, names)) {
    const weights = names.has(SAFETENSORS_INDEX) ? files : files.filter((f) => f.name !== SAFETENSORS_INDEX);
    return { ...base, reference: ref.repo, kind: 'safetensors', path: snapshot, files: weights };
  }
  const ggufs = ggufModels([...names]);
  if (ggufs.length === 0) return null;
  let picked: { file: string; quant: string };
  try {
    picked = pickGguf([...names], ref.quant, ref.repo);
  } catch (err) {
    if (err instanceof GemmaError && err.code === 'FILE_NOT_FOUND') return null;
    throw err;
  }
  const mmproj = files.filter((f) => /^mmproj.*\.gguf$/i.test(f.name.slice(f.name.lastIndexOf('/') + 1)));
  return {
    ...base, reference: formatReference({ repo: ref.repo, quant: picked.quant }), kind: 'gguf',
    path: join(snapshot, ...picked.file.split('/')),
    files: [files.find((f) => f.name === picked.file)!, ...mmproj],
  };
}
