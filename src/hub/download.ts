// One file of a repository into the cache's blobs/: streamed into blobs/<etag>.incomplete,
// resumed from its length with a Range request after a cut connection (here or in an earlier
// run), checked against its sha256 (LFS files) or git blob id (small files), and only then
// renamed to blobs/<etag>. A partial or corrupt file never takes the blob's name.
import { createHash, type Hash } from 'node:crypto';
import { createReadStream, existsSync, statSync } from 'node:fs';
import { mkdir, open, rename, truncate, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { Readable } from 'node:stream';
import type { ReadableStream as NodeReadableStream } from 'node:stream/web';
import { GemmaError } from '../errors.js';
import { blobPath } from './cache.js';

export interface RemoteFile {
  /** Path in the repository. */
  path: string;
  size: number;
  /** The blob's name in the cache (the sha256 for LFS files, else the git blob id). */
  etag: string;
  /** LFS files: the content's sha256 (hex). */
  sha256?: string;
  /** Small files: the git blob id (sha1 of "blob SIZE\0" + content). */
  gitOid?: string;
}

/** Opens the file's bytes from `offset` to the end (a Range request when offset > 0). */
export type OpenStream = (offset: number) => Promise<ReadableStream<Uint8Array>>;

export interface DownloadOptions {
  onProgress?: (completed: number, total: number) => void;
  /** Before a retry after a cut connection or a checksum mismatch. */
  onRetry?: (reason: string, offset: number) => void;
  signal?: AbortSignal;
  /** Connection cuts survived per file (default 5). */
  maxRetries?: number;
}

export interface DownloadResult {
  blob: string;
  /** Bytes fetched over the network by this call (0 when the blob was already complete). */
  fetched: number;
  /** Bytes of an earlier .incomplete file that were kept (resumed from). */
  resumedFrom: number;
}

/** Errors of the disk rather than of the network: not retried. */
function isWriteError(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException)?.code;
  return typeof code === 'string' && ['ENOSPC', 'EDQUOT', 'EACCES', 'EPERM', 'EROFS', 'EIO', 'EFBIG', 'EISDIR', 'ENOTDIR'].includes(code);
}

class Verifier {
  private sha256: Hash = createHash('sha256');
  private sha1: Hash;
  hashed = 0;

  constructor(private readonly file: RemoteFile) {
    this.sha1 = createHash('sha1').update(`blob ${file.size}\0`);
  }

  update(chunk: Uint8Array): void {
    if (this.file.sha256) this.sha256.update(chunk);
    if (this.file.gitOid) this.sha1.update(chunk);
    this.hashed += chunk.byteLength;
  }

  /** Hashes the first `bytes` of a partial file kept from an earlier attempt. */
  async restart(path: string, bytes: number): Promise<void> {
    this.sha256 = createHash('sha256');
    this.sha1 = createHash('sha1').update(`blob ${this.file.size}\0`);
    this.hashed = 0;
    if (bytes === 0) return;
    for await (const chunk of createReadStream(path, { start: 0, end: bytes - 1, highWaterMark: 1 << 20 })) this.update(chunk as Buffer);
  }

  /** null when the content matches, else what was expected and found. */
  mismatch(): string | null {
    if (this.file.sha256) {
      const got = this.sha256.digest('hex');
      return got === this.file.sha256.toLowerCase() ? null : `sha256 ${got}, expected ${this.file.sha256}`;
    }
    if (this.file.gitOid) {
      const got = this.sha1.digest('hex');
      return got === this.file.gitOid.toLowerCase() ? null : `git blob id ${got}, expected ${this.file.gitOid}`;
    }
    return null;
  }
}

/**
 * Makes blobs/<etag> hold the file, downloading what is missing. A checksum mismatch deletes the
 * partial file and fetches it once more from the start; a second mismatch is an error.
 */
export async function downloadBlob(repoDirectory: string, file: RemoteFile, openStream: OpenStream, options: DownloadOptions = {}): Promise<DownloadResult> {
  const blob = blobPath(repoDirectory, file.etag);
  if (existsSync(blob) && statSync(blob).size === file.size) return { blob, fetched: 0, resumedFrom: 0 };
  await mkdir(dirname(blob), { recursive: true });
  const incomplete = `${blob}.incomplete`;
  const maxRetries = options.maxRetries ?? 5;
  const verifier = new Verifier(file);
  let fetched = 0;
  let cuts = 0;
  let mismatches = 0;
  let resumedFrom = -1;
  for (;;) {
    let offset = existsSync(incomplete) ? statSync(incomplete).size : 0;
    if (offset > file.size) {
      await truncate(incomplete, 0);
      offset = 0;
    }
    if (resumedFrom < 0) resumedFrom = offset;
    if (verifier.hashed !== offset) await verifier.restart(incomplete, offset);
    if (offset < file.size) {
      const before = offset;
      try {
        offset = await appendFrom(incomplete, offset, file, openStream, verifier, options);
      } catch (err) {
        fetched += verifier.hashed - before;
        if (err instanceof GemmaError) throw err;
        if (isWriteError(err)) {
          throw new GemmaError('DOWNLOAD_FAILED', `could not write ${incomplete}: ${(err as Error).message}. ` +
            `The ${verifier.hashed} bytes written are kept there; run the pull again to resume once the disk has room.`, { cause: err });
        }
        cuts++;
        if (cuts > maxRetries) {
          throw new GemmaError('DOWNLOAD_FAILED', `downloading ${file.path} failed ${cuts} times (last: ${describeError(err)}); ` +
            `${verifier.hashed} of ${file.size} bytes are kept in ${incomplete}; run the pull again to resume`, { cause: err });
        }
        options.onRetry?.(`connection lost (${describeError(err)})`, verifier.hashed);
        continue;
      }
      fetched += offset - before;
    }
    const mismatch = verifier.mismatch();
    if (mismatch === null) break;
    await unlink(incomplete).catch(() => {});
    verifier.hashed = -1; // force a fresh hash on the next attempt
    mismatches++;
    if (mismatches > 1) {
      throw new GemmaError('BAD_FORMAT', `${file.path} arrived corrupted twice (${mismatch}); nothing was kept. Try again later, or check HF_ENDPOINT`);
    }
    options.onRetry?.(`checksum mismatch (${mismatch}); fetching it again`, 0);
  }
  await rename(incomplete, blob);
  return { blob, fetched, resumedFrom };
}

/** Streams the file from `offset` onto the end of `incomplete`; returns the new length. */
async function appendFrom(incomplete: string, offset: number, file: RemoteFile, openStream: OpenStream, verifier: Verifier,
                          options: DownloadOptions): Promise<number> {
  const handle = await open(incomplete, offset > 0 ? 'a' : 'w');
  try {
    const stream = await openStream(offset);
    for await (const chunk of Readable.fromWeb(stream as unknown as NodeReadableStream<Uint8Array>)) {
      if (options.signal?.aborted) throw new GemmaError('ABORTED', `download of ${file.path} cancelled`);
      const bytes = chunk as Uint8Array;
      if (offset + bytes.byteLength > file.size) {
        throw new GemmaError('DOWNLOAD_FAILED', `${file.path}: the server sent more than the ${file.size} bytes the hub lists`);
      }
      await handle.write(bytes);
      verifier.update(bytes);
      offset += bytes.byteLength;
      options.onProgress?.(offset, file.size);
    }
    if (offset < file.size) throw new Error(`the connection ended after ${offset} of ${file.size} bytes`);
    return offset;
  } finally {
    await handle.close();
  }
}

function describeError(err: unknown): string {
  if (err instanceof Error) {
    const cause = (err as { cause?: unknown }).cause;
    return cause instanceof Error ? `${err.message}: ${cause.message}` : err.message;
  }
  return String(err);
}
