// Model management in Ollama's shape over the Hugging Face cache: POST /api/pull (progress as
// NDJSON), DELETE /api/delete, and the cached models that /api/tags lists after the loaded one.
// Pulling and deleting change the disk and reach the network, so both are refused (403) unless
// the server was started with allowPull (`gemma3 serve --allow-pull`). Model names are hub
// references (OWNER/NAME[:QUANT]), checked so that none can reach outside the cache.
import { createHash } from 'node:crypto';
import { readFileSync, readlinkSync } from 'node:fs';
import { join, relative, isAbsolute } from 'node:path';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { GemmaError } from '../errors.js';
import { listCachedModels, parseModelReference, pullModel, removeModel, type CachedModelEntry, type PullEvent } from '../hub/index.js';
import { parseConfig } from '../model/config.js';
import { countParameters } from '../model/parameters.js';
import { ApiError, invalidParam, wrongType } from './api-error.js';
import { sendJson } from './http.js';
import { asObject, bool } from './openai-schema.js';
import type { ServerContext } from './server.js';
import { NdjsonStream } from './sse.js';

/** One pull at a time: two pulls of the same file would write the same .incomplete. */
let pulling: Promise<unknown> = Promise.resolve();

function modelName(o: Record<string, unknown>): string {
  const raw = o.model ?? o.name;
  if (raw === undefined) throw invalidParam('model', "Missing required parameter: 'model'.", 'missing_required_parameter');
  if (typeof raw !== 'string' || raw === '') throw wrongType('model', 'a non-empty string', raw);
  try {
    parseModelReference(raw, "'model'");
  } catch (err) {
    throw invalidParam('model', (err as Error).message);
  }
  return raw;
}

function refuseUnlessAllowed(ctx: ServerContext, what: string): void {
  if (!ctx.options.allowPull) {
    throw new ApiError(403, `${what} is disabled on this server; start it with --allow-pull (gemma3 serve --allow-pull) to allow it`,
      'invalid_request_error', null, 'pull_disabled');
  }
}

/** GemmaError codes of the hub → HTTP statuses. */
function statusOf(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  if (err instanceof GemmaError) {
    const status = { FILE_NOT_FOUND: 404, ACCESS_DENIED: 403, INVALID_ARGUMENT: 400, UNSUPPORTED_MODEL: 400, ABORTED: 499 }[err.code as string] ?? 502;
    return new ApiError(status, err.message, status === 502 ? 'server_error' : 'invalid_request_error', 'model', err.code.toLowerCase());
  }
  return new ApiError(500, `internal error: ${err instanceof Error ? err.message : String(err)}`, 'server_error', null, 'internal_error');
}

function digestOf(file: PullEvent & { file: unknown }): string {
  const f = (file as { file: { sha256?: string; gitOid?: string; etag: string } }).file;
  return f.sha256 ? `sha256:${f.sha256}` : `sha1:${f.gitOid ?? f.etag}`;
}

export async function ollamaPull(ctx: ServerContext, req: IncomingMessage, res: ServerResponse, body: unknown): Promise<void> {
  refuseUnlessAllowed(ctx, 'pulling models');
  const o = asObject(body);
  const name = modelName(o);
  const stream = bool(o, 'stream') ?? true;
  const controller = new AbortController();
  res.once('close', () => {
    if (!res.writableFinished) controller.abort();
  });
  // The stream starts with the first file, so that an unknown repository, a missing quantisation
  // or a gated model is answered with its own status rather than inside a 200 stream.
  let out: NdjsonStream | null = null;
  const start = () => {
    if (out || !stream) return;
    out = new NdjsonStream(res);
    out.send({ status: 'pulling manifest' });
  };
  const onEvent = (e: PullEvent) => {
    if (e.type === 'resolved') return;
    start();
    if (!out) return;
    const digest = digestOf(e);
    const status = `pulling ${e.file.path}`;
    if (e.type === 'file') out.send({ status, digest, total: e.file.size, completed: e.file.size });
    else if (e.type === 'progress') progress(out, status, digest, e.completed, e.total);
    else if (e.type === 'retry') out.send({ status: `${status}: ${e.reason}`, digest, total: e.file.size, completed: e.offset });
    else out.send({ status, digest, total: e.file.size, completed: e.file.size });
  };
  const lastSent = new Map<string, number>();
  const progress = (s: NdjsonStream, status: string, digest: string, completed: number, total: number) => {
    const now = Date.now();
    if (completed < total && now - (lastSent.get(digest) ?? 0) < 100) return; // at most 10 lines a second per file
    lastSent.set(digest, now);
    s.send({ status, digest, total, completed });
  };
  const run = pulling.then(() => pullModel(name, { settings: ctx.options.hub, onEvent, signal: controller.signal }));
  pulling = run.catch(() => {});
  try {
    await run;
  } catch (err) {
    const e = statusOf(err);
    if (out) {
      (out as NdjsonStream).send({ error: e.message });
      (out as NdjsonStream).end();
      return;
    }
    throw e;
  }
  if (!stream) return sendJson(res, 200, { status: 'success' });
  start();
  const s = out as unknown as NdjsonStream;
  s.send({ status: 'verifying sha256 digest' });
  s.send({ status: 'writing manifest' });
  s.send({ status: 'success' });
  s.end();
}

export async function ollamaDelete(ctx: ServerContext, _req: IncomingMessage, res: ServerResponse, body: unknown): Promise<void> {
  refuseUnlessAllowed(ctx, 'deleting models');
  const name = modelName(asObject(body));
  const ref = parseModelReference(name);
  const loaded = ctx.engine.info.path;
  const inUse = listCachedModels(ctx.options.hub.cacheDir).some((m) =>
    m.repo === ref.repo && (ref.quant === undefined || m.quant === ref.quant.toUpperCase()) && inside(m.path, loaded));
  if (inUse) throw new ApiError(409, `model '${name}' is the one this server has loaded; stop the server to delete it`, 'invalid_request_error', 'model', 'model_in_use');
  try {
    removeModel(ctx.options.hub.cacheDir, ref);
  } catch (err) {
    throw statusOf(err);
  }
  res.writeHead(200, { 'Content-Length': 0 });
  res.end();
}

function inside(modelPath: string, loaded: string): boolean {
  const rel = relative(modelPath, loaded);
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
}

/** The cached models in /api/tags' shape (the loaded one excluded: it is listed first already). */
export function cachedModelTags(ctx: ServerContext): Record<string, unknown>[] {
  let models: CachedModelEntry[];
  try {
    models = listCachedModels(ctx.options.hub.cacheDir);
  } catch {
    return []; // an unreadable cache lists nothing rather than failing /api/tags
  }
  return models.filter((m) => m.complete && m.path !== ctx.engine.info.path).map((m) => ({
    name: m.name, model: m.name, modified_at: m.modified.toISOString(), size: m.size,
    // Blobs are named by their sha256 (LFS) or git id, so the digest costs no read of the weights:
    // a GGUF model's own sha256, or a checkpoint's files' ids hashed together.
    digest: `sha256:${m.kind === 'gguf' ? blobName(m.files[0]!.path) : createHash('sha256').update(m.files.map((f) => blobName(f.path)).join('\n')).digest('hex')}`,
    details: {
      parent_model: '', format: m.kind, family: 'gemma3', families: ['gemma3'],
      parameter_size: m.kind === 'safetensors' ? parameterSize(m.path) : '', quantization_level: m.quant ?? '',
    },
  }));
}

/** snapshots/<commit>/<file> -> ../../blobs/<etag>: the etag (or the file name of a plain copy). */
function blobName(path: string): string {
  let target = path;
  try {
    target = readlinkSync(path);
  } catch {
    // a plain file (a cache copied without links)
  }
  return target.slice(target.lastIndexOf('/') + 1);
}

function parameterSize(folder: string): string {
  try {
    const n = countParameters(parseConfig(JSON.parse(readFileSync(join(folder, 'config.json'), 'utf8'))));
    return n >= 1e9 ? `${(n / 1e9).toFixed(1)}B` : `${(n / 1e6).toFixed(1)}M`;
  } catch {
    return '';
  }
}
