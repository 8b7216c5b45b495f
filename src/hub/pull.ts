// `pull`: a model reference → the files the engine needs, in the hub cache, through the official
// @huggingface/hub client (which speaks the hub's storage backends, Xet included). The client
// finds the commit (modelInfo), lists the files with their sizes and LFS sha256 (listFiles), and
// opens each file (downloadFile: a Blob whose slices are Range requests, used to resume).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { HubApiError, downloadFile, listFiles, modelInfo, type ListFileEntry } from '@huggingface/hub';
import { GemmaError } from '../errors.js';
import { blobPath, linkIntoSnapshot, repoDir, snapshotDir, writeRef } from './cache.js';
import { downloadBlob, type RemoteFile } from './download.js';
import { ggufArchitecture } from './gguf-peek.js';
import {
  checkRevision, formatReference, isCommitHash, isSafeEtag, isSafeRepoPath, parseModelReference, type ModelReference,
} from './reference.js';
import { findCachedModel, type CachedModel } from './resolve.js';
import {
  CHECKPOINT_FILES, SAFETENSORS_INDEX, SAFETENSORS_SINGLE, modelKind, pickGguf, pickMmproj, shardsOf,
} from './select.js';
import { hubSettings, type HubSettings } from './settings.js';

export type PullEvent =
  | { type: 'resolved'; repo: string; commit: string; kind: 'safetensors' | 'gguf' }
  | { type: 'file'; file: RemoteFile; cached: boolean }
  | { type: 'progress'; file: RemoteFile; completed: number; total: number }
  | { type: 'retry'; file: RemoteFile; reason: string; offset: number }
  | { type: 'done'; file: RemoteFile; fetched: number; resumedFrom: number };

export interface PullOptions {
  /** Branch, tag or commit (default main). */
  revision?: string;
  /** Default: read from the environment (hubSettings()). */
  settings?: HubSettings;
  onEvent?: (event: PullEvent) => void;
  signal?: AbortSignal;
  /** The fetch the client uses (tests count requests with it). */
  fetch?: typeof fetch;
}

export interface PullResult extends CachedModel {
  /** Bytes fetched over the network (0: everything was cached). */
  fetched: number;
}

/** Pulls a model; with HF_HUB_OFFLINE=1 only checks that the cache holds it. */
export async function pullModel(reference: string | ModelReference, options: PullOptions = {}): Promise<PullResult> {
  const ref = typeof reference === 'string' ? parseModelReference(reference) : reference;
  const settings = options.settings ?? hubSettings();
  const revision = options.revision === undefined ? undefined : checkRevision(options.revision);
  if (settings.offline) {
    const cached = findCachedModel(ref, settings.cacheDir, revision);
    if (cached) return { ...cached, fetched: 0 };
    throw new GemmaError('FILE_NOT_FOUND', `${formatReference(ref)} is not in the cache (${settings.cacheDir}) and HF_HUB_OFFLINE is set, ` +
      'so it cannot be downloaded; unset HF_HUB_OFFLINE to pull it');
  }
  const client = clientParams(settings, options.fetch);
  const label = formatReference(ref);

  const info = await hubCall(label, settings, () => modelInfo({ ...client, name: ref.repo, revision: revision ?? 'main', additionalFields: ['sha'] }));
  const commit = (info as { sha?: string }).sha;
  if (!commit || !isCommitHash(commit)) throw new GemmaError('DOWNLOAD_FAILED', `${label}: the hub did not say which commit ${revision ?? 'main'} is`);
  const entries: ListFileEntry[] = [];
  await hubCall(label, settings, async () => {
    for await (const e of listFiles({ ...client, repo: ref.repo, revision: commit, recursive: true })) {
      if (e.type !== 'file') continue;
      if (!isSafeRepoPath(e.path)) throw new GemmaError('DOWNLOAD_FAILED', `${label}: the hub listed a file path that would leave the cache: ${JSON.stringify(e.path)}`);
      entries.push(e);
    }
  });
  const byPath = new Map(entries.map((e) => [e.path, e]));
  const paths = [...byPath.keys()];
  const kind = modelKind(paths, ref.quant, ref.repo);
  options.onEvent?.({ type: 'resolved', repo: ref.repo, commit, kind });

  const dir = repoDir(settings.cacheDir, ref.repo);
  let fetched = 0;
  const fetchFile = async (path: string) => {
    const entry = byPath.get(path)!;
    const file = remoteFile(entry);
    const result = await downloadBlob(dir, file, async (offset) => {
      const blob = await hubCall(label, settings, () => downloadFile({ ...client, repo: ref.repo, path, revision: commit }));
      if (!blob) throw new GemmaError('FILE_NOT_FOUND', `${label}: ${path} is listed but the hub has no such file`);
      return (offset > 0 ? blob.slice(offset) : blob).stream();
    }, {
      onProgress: (completed, total) => options.onEvent?.({ type: 'progress', file, completed, total }),
      onRetry: (reason, offset) => options.onEvent?.({ type: 'retry', file, reason, offset }),
      ...(options.signal ? { signal: options.signal } : {}),
    }).catch((err: unknown) => {
      throw err instanceof GemmaError ? err : new GemmaError('DOWNLOAD_FAILED', `${label}: ${path}: ${(err as Error).message}`, { cause: err });
    });
    options.onEvent?.(result.fetched === 0 && result.resumedFrom === 0
      ? { type: 'file', file, cached: true }
      : { type: 'done', file, fetched: result.fetched, resumedFrom: result.resumedFrom });
    fetched += result.fetched;
    linkIntoSnapshot(dir, commit, path, file.etag);
  };

  if (kind === 'safetensors') {
    await fetchFile('config.json');
    checkGemma3Config(join(snapshotDir(dir, commit), 'config.json'), label);
    for (const name of CHECKPOINT_FILES) if (name !== 'config.json' && byPath.has(name)) await fetchFile(name);
    if (byPath.has(SAFETENSORS_INDEX)) {
      await fetchFile(SAFETENSORS_INDEX);
      const index = JSON.parse(readFileSync(join(snapshotDir(dir, commit), SAFETENSORS_INDEX), 'utf8')) as unknown;
      for (const shard of shardsOf(index, paths, label)) await fetchFile(shard);
    } else {
      await fetchFile(SAFETENSORS_SINGLE);
    }
  } else {
    const { file } = pickGguf(paths, ref.quant, ref.repo);
    await checkGemma3Gguf(file);
    const mmproj = pickMmproj(paths);
    for (const name of [file, ...(mmproj ? [mmproj] : [])]) await fetchFile(name);
  }
  /** Reads the GGUF's first 64 KiB: a file of another architecture is refused before it is downloaded. */
  async function checkGemma3Gguf(path: string): Promise<void> {
    const entry = byPath.get(path)!;
    if (existsSync(blobPath(dir, remoteFile(entry).etag))) return;
    const blob = await hubCall(label, settings, () => downloadFile({ ...client, repo: ref.repo, path, revision: commit }));
    if (!blob) return;
    const head = new Uint8Array(await hubCall(label, settings, () => blob.slice(0, Math.min(blob.size, 1 << 16)).arrayBuffer()));
    const arch = ggufArchitecture(head);
    if (arch !== null && arch !== 'gemma3') {
      throw new GemmaError('UNSUPPORTED_MODEL', arch === 'not-gguf'
        ? `${label}: ${path} is not a GGUF file (wrong magic bytes)`
        : `${label} is not a Gemma 3 model: ${path} declares general.architecture "${arch}"; this engine runs gemma3`);
    }
  }

  // The ref moves only once the snapshot is whole: a failed pull leaves an older whole snapshot in use.
  if (revision === undefined || !isCommitHash(revision)) writeRef(dir, revision ?? 'main', commit);
  const cached = findCachedModel(kind === 'gguf' ? { repo: ref.repo, quant: ref.quant ?? pickGguf(paths, undefined, ref.repo).quant } : ref,
    settings.cacheDir, commit);
  if (!cached) throw new GemmaError('DOWNLOAD_FAILED', `${label}: the files were fetched but the snapshot ${snapshotDir(dir, commit)} is not whole`);
  return { ...cached, fetched };
}

function remoteFile(entry: ListFileEntry): RemoteFile {
  const etag = entry.lfs?.oid ?? entry.oid ?? '';
  if (!isSafeEtag(etag)) throw new GemmaError('DOWNLOAD_FAILED', `the hub listed ${entry.path} with an id that is not a sha1 or sha256: ${JSON.stringify(etag)}`);
  if (entry.lfs) return { path: entry.path, size: entry.lfs.size, etag: entry.lfs.oid, sha256: entry.lfs.oid };
  if (!entry.oid) throw new GemmaError('DOWNLOAD_FAILED', `the hub listed ${entry.path} without an id`);
  return { path: entry.path, size: entry.size, etag: entry.oid, gitOid: entry.oid };
}

/** model_type gemma3 (multimodal) or gemma3_text; anything else is refused before the weights are fetched. */
function checkGemma3Config(path: string, label: string): void {
  let type: unknown;
  try {
    type = (JSON.parse(readFileSync(path, 'utf8')) as { model_type?: unknown }).model_type;
  } catch (err) {
    throw new GemmaError('BAD_FORMAT', `${label}: config.json is not valid JSON: ${(err as Error).message}`);
  }
  if (type !== 'gemma3' && type !== 'gemma3_text') {
    throw new GemmaError('UNSUPPORTED_MODEL', `${label} is not a Gemma 3 model (config.json model_type ${JSON.stringify(type)}); ` +
      'this engine runs gemma3 and gemma3_text checkpoints');
  }
}

interface ClientParams {
  hubUrl: string;
  accessToken?: string;
  fetch?: typeof fetch;
}

function clientParams(settings: HubSettings, customFetch: typeof fetch | undefined): ClientParams {
  const params: ClientParams = { hubUrl: settings.endpoint };
  if (settings.token) {
    // The client refuses tokens without the hf_ prefix with a bare TypeError; say where it came from.
    if (!settings.token.startsWith('hf_')) {
      throw new GemmaError('ACCESS_DENIED', `the Hugging Face token from ${settings.tokenSource} does not start with 'hf_'; ` +
        'create one at https://huggingface.co/settings/tokens and set HF_TOKEN');
    }
    params.accessToken = settings.token;
  }
  if (customFetch) params.fetch = customFetch;
  return params;
}

/** Runs one client call, turning the hub's refusals into messages that say what to do. */
async function hubCall<T>(label: string, settings: HubSettings, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    if (err instanceof GemmaError) throw err;
    if (err instanceof HubApiError) throw explainHubError(err, label, settings);
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    throw new GemmaError('DOWNLOAD_FAILED', `${label}: cannot reach ${settings.endpoint} (${cause?.code ?? cause?.message ?? (err as Error).message})`, { cause: err });
  }
}

function explainHubError(err: HubApiError, label: string, settings: HubSettings): GemmaError {
  const repo = label.split(':')[0]!;
  const page = `${settings.endpoint}/${repo}`;
  const text = `${err.message} ${JSON.stringify(err.data ?? {})}`;
  const denied = err.statusCode === 401 || err.statusCode === 403;
  // The hub answers 401 "Repository not found" for a repository that is missing or private.
  if (err.statusCode === 404 || (denied && /repository not found|RepoNotFound/i.test(text))) {
    return new GemmaError('FILE_NOT_FOUND', `${label}: no such model repository on ${settings.endpoint} (check the spelling` +
      `${settings.token ? '' : '; a private repository also needs HF_TOKEN'})`, { cause: err });
  }
  if (denied && /invalid (credentials|token|username or password)/i.test(text)) {
    return new GemmaError('ACCESS_DENIED', `${label}: the hub rejected the token from ${settings.tokenSource ?? 'HF_TOKEN'} as invalid; ` +
      'create a new one at https://huggingface.co/settings/tokens and set HF_TOKEN', { cause: err });
  }
  if (denied) {
    const how = settings.token
      ? `the account of the token from ${settings.tokenSource} has no access yet: accept the license on ${page} while logged in ` +
        '(approval can take a moment), then pull again'
      : `accept the license on ${page}, create a token at https://huggingface.co/settings/tokens and set HF_TOKEN=hf_... ` +
        '(or run huggingface-cli login), then pull again';
    return new GemmaError('ACCESS_DENIED', `${label} is a gated model: ${how}`, { cause: err });
  }
  return new GemmaError('DOWNLOAD_FAILED', `${label}: the hub answered ${err.statusCode}: ${err.message}`, { cause: err });
}
