// The Hugging Face hub cache, laid out as huggingface_hub writes it
// (https://huggingface.co/docs/hub/local-cache):
//
//   <cache>/models--OWNER--NAME/
//     blobs/<etag>                       the bytes; etag = sha256 for LFS files, the git blob id otherwise
//     blobs/<etag>.incomplete            a download in progress (never read as the file)
//     refs/<branch or tag>               the commit hash it points to (no newline)
//     snapshots/<commit>/<path>  ->  ../../blobs/<etag>   (a relative symlink, deeper for nested paths)
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';
import { isCommitHash } from './reference.js';

export function repoFolderName(repo: string): string {
  return `models--${repo.split('/').join('--')}`;
}

/** `models--OWNER--NAME` → `OWNER/NAME`, or null for another kind of folder. */
export function repoFromFolder(folder: string): string | null {
  if (!folder.startsWith('models--')) return null;
  const parts = folder.slice('models--'.length).split('--');
  return parts.length === 2 && parts.every((p) => p !== '') ? parts.join('/') : null;
}

export function repoDir(cacheDir: string, repo: string): string {
  return join(cacheDir, repoFolderName(repo));
}

export function blobPath(repoDirectory: string, etag: string): string {
  return join(repoDirectory, 'blobs', etag);
}

export function snapshotDir(repoDirectory: string, commit: string): string {
  return join(repoDirectory, 'snapshots', commit);
}

export function readRef(repoDirectory: string, ref: string): string | null {
  try {
    const commit = readFileSync(join(repoDirectory, 'refs', ref), 'utf8').trim();
    return isCommitHash(commit) ? commit : null;
  } catch {
    return null;
  }
}

export function writeRef(repoDirectory: string, ref: string, commit: string): void {
  const file = join(repoDirectory, 'refs', ref);
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, commit);
}

/** Points snapshots/<commit>/<path> at blobs/<etag> with a relative link (replacing an old one). */
export function linkIntoSnapshot(repoDirectory: string, commit: string, path: string, etag: string): string {
  const pointer = join(snapshotDir(repoDirectory, commit), ...path.split('/'));
  mkdirSync(dirname(pointer), { recursive: true });
  const target = relative(dirname(pointer), blobPath(repoDirectory, etag)).split(sep).join('/');
  try {
    if (lstatSync(pointer).isSymbolicLink() && readlinkSync(pointer) === target) return pointer;
    unlinkSync(pointer);
  } catch {
    // not there yet
  }
  symlinkSync(target, pointer);
  return pointer;
}

/**
 * The commit a revision names in this cache: a commit hash with a snapshot, else refs/<revision>.
 * Without a revision: refs/main, else the only (or most recent) snapshot, as a folder laid out by
 * hand or by an older tool may lack refs.
 */
export function cachedCommit(repoDirectory: string, revision?: string): string | null {
  if (revision !== undefined) {
    if (isCommitHash(revision)) return existsSync(snapshotDir(repoDirectory, revision)) ? revision : null;
    return readRef(repoDirectory, revision);
  }
  const main = readRef(repoDirectory, 'main');
  if (main && existsSync(snapshotDir(repoDirectory, main))) return main;
  let newest: { commit: string; mtime: number } | null = null;
  for (const commit of listDir(join(repoDirectory, 'snapshots'))) {
    const mtime = statSync(snapshotDir(repoDirectory, commit)).mtimeMs;
    if (!newest || mtime > newest.mtime) newest = { commit, mtime };
  }
  return newest?.commit ?? null;
}

function listDir(dir: string): string[] {
  try {
    return readdirSync(dir).sort();
  } catch {
    return [];
  }
}

export interface CachedFile {
  /** Path inside the repository (`model-00001-of-00002.safetensors`). */
  name: string;
  /** Its place in the snapshot. */
  path: string;
  /** Bytes; a link whose blob is missing is not listed. */
  size: number;
}

/** The files of a snapshot whose content is present (links to missing blobs are skipped). */
export function snapshotFiles(repoDirectory: string, commit: string): CachedFile[] {
  const root = snapshotDir(repoDirectory, commit);
  const out: CachedFile[] = [];
  const walk = (dir: string, prefix: string) => {
    for (const name of listDir(dir)) {
      const path = join(dir, name);
      let st;
      try {
        st = statSync(path);
      } catch {
        continue; // a dangling link: the blob was removed or never completed
      }
      if (st.isDirectory()) walk(path, `${prefix}${name}/`);
      else if (st.isFile()) out.push({ name: `${prefix}${name}`, path, size: st.size });
    }
  };
  walk(root, '');
  return out;
}

export interface CachedRevision {
  commit: string;
  /** The refs (branches, tags) pointing at it. */
  refs: string[];
  files: CachedFile[];
}

export interface CachedRepo {
  repo: string;
  dir: string;
  revisions: CachedRevision[];
}

/** Every model repository in the cache, with its snapshots. */
export function scanCache(cacheDir: string): CachedRepo[] {
  const repos: CachedRepo[] = [];
  for (const folder of listDir(cacheDir)) {
    const repo = repoFromFolder(folder);
    if (!repo) continue;
    const dir = join(cacheDir, folder);
    const refs = new Map<string, string[]>();
    const walkRefs = (sub: string) => {
      for (const name of listDir(join(dir, 'refs', sub))) {
        const ref = sub ? `${sub}/${name}` : name;
        if (statSync(join(dir, 'refs', ref)).isDirectory()) walkRefs(ref);
        else {
          const commit = readRef(dir, ref);
          if (commit) refs.set(commit, [...(refs.get(commit) ?? []), ref]);
        }
      }
    };
    walkRefs('');
    const revisions = listDir(join(dir, 'snapshots')).map((commit) => ({
      commit, refs: refs.get(commit) ?? [], files: snapshotFiles(dir, commit),
    }));
    repos.push({ repo, dir, revisions });
  }
  return repos;
}

/** Removes a whole repository from the cache. */
export function removeRepo(cacheDir: string, repo: string): boolean {
  const dir = repoDir(cacheDir, repo);
  if (!existsSync(dir)) return false;
  rmSync(dir, { recursive: true, force: true });
  return true;
}

/**
 * Removes one file from every snapshot of a repository, and its blob when no snapshot links to
 * it any more. Returns the bytes freed.
 */
export function removeFile(repoDirectory: string, name: string): number {
  let freed = 0;
  const blobs = new Set<string>();
  for (const commit of listDir(join(repoDirectory, 'snapshots'))) {
    const pointer = join(snapshotDir(repoDirectory, commit), ...name.split('/'));
    try {
      const st = lstatSync(pointer);
      if (st.isSymbolicLink()) blobs.add(join(dirname(pointer), readlinkSync(pointer)));
      else freed += st.size;
      unlinkSync(pointer);
    } catch {
      // not in this snapshot
    }
  }
  const stillUsed = new Set<string>();
  for (const commit of listDir(join(repoDirectory, 'snapshots'))) {
    for (const f of snapshotFiles(repoDirectory, commit)) {
      try {
        stillUsed.add(join(dirname(f.path), readlinkSync(f.path)));
      } catch {
        // a plain file
      }
    }
  }
  for (const blob of blobs) {
    if (stillUsed.has(blob)) continue;
    try {
      freed += statSync(blob).size;
      unlinkSync(blob);
    } catch {
      // already gone
    }
  }
  return freed;
}
