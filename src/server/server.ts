// `gemma3 serve`: an HTTP server over one model. Routes, the API key, errors in the OpenAI shape
// (Ollama's on /api/*), health, metrics and the web chat page. The model runs in a worker
// thread (engine.ts → worker.ts), so this thread only parses, routes and streams.
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ApiError, toApiError } from './api-error.js';
import { BrowserGuard, listOption } from './browser-guard.js';
import { Engine, type Claim } from './engine.js';
import { DEFAULT_MAX_BODY_BYTES, checkApiKey, readJson, sendError, sendJson } from './http.js';
import { Metrics } from './metrics.js';
import { modelDigest, PACKAGE_VERSION } from './model-facts.js';
import { PREFIX_HASH_HEADER, prefixHash } from './prefix-hash.js';
import { ollamaChat, ollamaGenerate, ollamaTags } from './ollama.js';
import { ollamaDelete, ollamaPull } from './ollama-models.js';
import { hubSettings, type HubSettings } from '../hub/index.js';
import { ModelSwitcher } from './model-switch.js';
import { detokenize, ollamaPs, ollamaShow, props, tokenize } from './introspect.js';
import { chatCompletions, completions, getModel, listModels } from './openai.js';
import type { ModelLoadOptions } from './protocol.js';

/** Default largest image a request may carry, in pixels: 50 MP covers phone photos; the model sees 896x896. */
export const DEFAULT_MAX_IMAGE_PIXELS = 50_000_000;

export interface ServerOptions {
  /** The checkpoint folder. */
  modelPath: string;
  /** The name clients use for it (default: the folder's or file's name); `gemma3 serve --model NAME` passes the hub name. */
  modelName?: string;
  /** Default 127.0.0.1 (loopback only). */
  host?: string;
  /** Default 8080; 0 picks a free port. */
  port?: number;
  /** When set, every API request needs `Authorization: Bearer <apiKey>` (the page, /health excepted). */
  apiKey?: string;
  /** Most sequences generated together (default 4). */
  parallel?: number;
  /** KV cache capacity of each sequence, in tokens (default min(4096, the model's limit)). */
  context?: number;
  /** Requests that may wait for a slot before new ones get 429 (default 4 × parallel). */
  maxQueue?: number;
  /**
   * Megabytes of finished conversations' KV caches kept so that a later request starting the same
   * way computes only the rest (the prompt cache; default DEFAULT_CACHE_RAM_MB, 0 disables it).
   */
  cacheRamMb?: number;
  /** Fetch http(s) image URLs named by clients (default false). */
  allowRemoteImages?: boolean;
  /**
   * Let those URLs reach loopback, private, link-local and other internal addresses (default false:
   * a client could otherwise use the server to probe or read the network it sits in).
   */
  allowPrivateImageHosts?: boolean;
  /** Time allowed to fetch one remote image, in milliseconds (default 15 s). */
  imageFetchTimeoutMs?: number;
  /** Largest request body in bytes (default 32 MiB). */
  maxBodyBytes?: number;
  /** Largest image a request may carry, in pixels (default 50 million; the model sees 896x896). */
  maxImagePixels?: number;
  /** Request bytes all unfinished requests may hold together (default 4 × maxBodyBytes); past it, 429. */
  maxInflightBytes?: number;
  /** Image pixels all unfinished requests may hold together (default 2 × maxImagePixels); past it, 429. */
  maxInflightPixels?: number;
  /**
   * Origins allowed to call the API from other web pages (CORS), e.g. 'https://app.example', a
   * comma-separated list, or '*'. Default none: only the server's own page can use it from a
   * browser, so a random web site cannot drive a model on your machine.
   */
  corsOrigin?: string | string[];
  /**
   * Host names accepted in the Host header besides IP addresses, localhost and this machine's name
   * (a leading dot also accepts subdomains; '*' accepts any). Refusing other names defeats DNS
   * rebinding, where a web page's own domain is pointed at this server.
   */
  allowedHosts?: string | string[];
  /** Passed to load() in the worker: backend, threads, GGUF quant / mmproj, panAndScan. */
  load?: ModelLoadOptions;
  /**
   * Let clients pull models from the Hugging Face hub into the cache (POST /api/pull) and delete
   * them (DELETE /api/delete). Default false: both answer 403, as they reach the network and the disk.
   */
  allowPull?: boolean;
  /** The hub cache, endpoint and token (default: from the environment, as huggingface_hub reads it). */
  hub?: Partial<HubSettings>;
  /**
   * Load a model from the hub cache when a request names it (`"model": "google/gemma-3-4b-it"`),
   * unloading the current one once its requests are done (default false: other names get 404).
   */
  switchModels?: boolean;
  /** The id clients name the model by (default: the repository, file or folder name; model-id.ts). */
  alias?: string;
  /** Called as the weights load, with the fraction read in [0, 1]. */
  onLoadProgress?: (fraction: number) => void;
}

export interface ResolvedOptions {
  host: string;
  port: number;
  apiKey: string | undefined;
  parallel: number;
  maxQueue: number;
  allowRemoteImages: boolean;
  allowPrivateImageHosts: boolean;
  imageFetchTimeoutMs: number;
  maxBodyBytes: number;
  maxImagePixels: number;
  corsOrigins: string[];
  allowedHosts: string[];
  allowPull: boolean;
  hub: HubSettings;
  switchModels: boolean;
}

/** What the route handlers share. */
export interface ServerContext {
  engine: Engine;
  metrics: Metrics;
  options: ResolvedOptions;
  guard: BrowserGuard;
  /** The model files' sha256 (`value` null until computed, in the background). */
  digest: { value: string | null };
  /** Unix seconds. */
  startedAt: number;
  fingerprint: string;
  /** Loads cached models by name (switchModels), else null. */
  switcher: ModelSwitcher | null;
  /** Set by drain(): /ready answers 503 and new generation requests are refused. */
  draining: boolean;
}

export interface RunningServer {
  /** e.g. http://127.0.0.1:8080 */
  url: string;
  port: number;
  readonly engine: Engine;
  metrics: Metrics;
  server: Server;
  close(): Promise<void>;
  /**
   * Stops taking work (/ready → 503, new generation requests → 503), lets the running ones
   * finish for up to `graceMs`, then closes, cutting what still runs (those streams end with a
   * `shutting_down` error). Resolves with how many finished and how many were cut.
   */
  drain(graceMs: number): Promise<{ finished: number; cut: number }>;
}

/** Megabytes of idle KV caches the prompt cache keeps by default. */
export const DEFAULT_CACHE_RAM_MB = 2048;

/** Loads the model (in a worker thread), then listens. */
export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const parallel = options.parallel ?? 4;
  if (!Number.isInteger(parallel) || parallel < 1 || parallel > 256) throw new RangeError(`parallel must be an integer in [1, 256], got ${parallel}`);
  const resolved: ResolvedOptions = {
    host: options.host ?? '127.0.0.1',
    port: options.port ?? 8080,
    apiKey: options.apiKey || undefined,
    parallel,
    maxQueue: options.maxQueue ?? 4 * parallel,
    allowRemoteImages: options.allowRemoteImages ?? false,
    allowPrivateImageHosts: options.allowPrivateImageHosts ?? false,
    imageFetchTimeoutMs: options.imageFetchTimeoutMs ?? 15_000,
    maxBodyBytes: options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES,
    maxImagePixels: options.maxImagePixels ?? DEFAULT_MAX_IMAGE_PIXELS,
    corsOrigins: listOption(options.corsOrigin),
    allowedHosts: listOption(options.allowedHosts),
    allowPull: options.allowPull ?? false,
    hub: { ...hubSettings(), ...options.hub },
    switchModels: options.switchModels ?? false,
  };
  const maxInflightBytes = options.maxInflightBytes ?? 4 * resolved.maxBodyBytes;
  const maxInflightPixels = options.maxInflightPixels ?? 2 * resolved.maxImagePixels;
  for (const [name, value] of [['maxImagePixels', resolved.maxImagePixels], ['maxInflightBytes', maxInflightBytes], ['maxInflightPixels', maxInflightPixels]] as const) {
    if (!Number.isSafeInteger(value) || value < 1) throw new RangeError(`${name} must be a positive integer, got ${value}`);
  }
  const cacheRamMb = options.cacheRamMb ?? DEFAULT_CACHE_RAM_MB;
  if (typeof cacheRamMb !== 'number' || !Number.isFinite(cacheRamMb) || cacheRamMb < 0) {
    throw new RangeError(`cacheRamMb (--cache-ram) must be a non-negative number of megabytes, got ${cacheRamMb}`);
  }
  const metrics = new Metrics();
  const engineOptions = {
    parallel, cacheBytes: Math.floor(cacheRamMb * 1024 * 1024), maxQueue: resolved.maxQueue, maxInflightBytes, maxInflightPixels,
    ...(options.context !== undefined ? { context: options.context } : {}),
    load: { maxImagePixels: resolved.maxImagePixels, ...options.load },
  };
  const engine = await Engine.start({
    ...engineOptions, modelPath: options.modelPath,
    // The id the resident model is named by: --alias, else the hub name it was given by.
    ...(options.alias !== undefined ? { alias: options.alias } : options.modelName ? { alias: options.modelName } : {}),
  }, metrics, options.onLoadProgress);
  const ctx: ServerContext = {
    engine, metrics, options: resolved, startedAt: Math.floor(Date.now() / 1000),
    guard: new BrowserGuard({ corsOrigins: resolved.corsOrigins, allowedHosts: resolved.allowedHosts }),
    digest: { value: null },
    draining: false,
    fingerprint: `fp_${createHash('sha256').update(engine.info.path).digest('hex').slice(0, 10)}`,
    switcher: null,
  };
  if (resolved.switchModels) ctx.switcher = new ModelSwitcher(ctx, engineOptions);
  modelDigest(engine.info.path).then((d) => (ctx.digest.value = d), () => {});
  const server = createServer((req, res) => void handle(ctx, req, res));
  server.keepAliveTimeout = 5000;
  // A client that trickles its headers or body must not hold a connection (and its bytes) for long.
  server.headersTimeout = 20_000;
  server.requestTimeout = 120_000;
  try {
    await new Promise<void>((ok, fail) => {
      server.once('error', fail);
      server.listen(resolved.port, resolved.host, () => {
        server.off('error', fail);
        ok();
      });
    });
  } catch (err) {
    await ctx.engine.close();
    throw err;
  }
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const close = async (): Promise<void> => {
    await ctx.engine.close();
    server.closeAllConnections();
    await new Promise<void>((ok) => server.close(() => ok()));
  };
  return {
    url: `http://${host}:${address.port}`, port: address.port, metrics, server, close,
    // The resident model's engine (another one after a switch: switchModels).
    get engine() {
      return ctx.engine;
    },
    async drain(graceMs: number) {
      ctx.draining = true;
      const running = ctx.engine.outstanding;
      const deadline = Date.now() + graceMs;
      while (ctx.engine.outstanding > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
      const cut = ctx.engine.outstanding;
      await close();
      return { finished: running - cut, cut };
    },
  };
}

type Handler = (ctx: ServerContext, req: IncomingMessage, res: ServerResponse, body: unknown, claim: Claim) => Promise<void> | void;

/** Model management (ollama-models.ts): not model work, so not held to the engine's capacity. */
const MODEL_ROUTES: Record<string, { method: string; handler: Handler }> = {
  '/api/pull': { method: 'POST', handler: ollamaPull },
  '/api/delete': { method: 'DELETE', handler: ollamaDelete },
};

/** POST endpoints that only read about the model (no generation: not refused when the queue is full). */
const INFO_POST_ROUTES: Record<string, (ctx: ServerContext, res: ServerResponse, body: unknown) => Promise<void> | void> = {
  '/api/show': ollamaShow,
  '/tokenize': tokenize,
  '/detokenize': detokenize,
};
const INFO_GET_ROUTES = ['/api/ps', '/props'];

const POST_ROUTES: Record<string, Handler> = {
  '/v1/chat/completions': chatCompletions,
  '/v1/completions': completions,
  '/api/chat': ollamaChat,
  '/api/generate': ollamaGenerate,
};

async function handle(ctx: ServerContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = (req.url ?? '/').split('?')[0]!.replace(/\/+$/, '') || '/';
  const endpoint = routeName(req.method ?? 'GET', path);
  res.once('close', () => ctx.metrics.countRequest(endpoint, res.headersSent ? res.statusCode : 499));
  const ollamaShape = path.startsWith('/api/');
  // What this request holds (body bytes, image pixels) against the server-wide budget.
  const claim = ctx.engine.budget.claim();
  try {
    ctx.guard.check(req);
    const allowOrigin = ctx.guard.corsOriginFor(req);
    if (allowOrigin) {
      res.setHeader('Access-Control-Allow-Origin', allowOrigin);
      res.setHeader('Vary', 'Origin');
      if (req.method === 'OPTIONS') return preflight(res);
    }
    if (req.method === 'GET' || req.method === 'HEAD') {
      if (path === '/health') return health(ctx, res);
      if (path === '/ready') return ready(ctx, res);
      const asset = WEB_ASSETS.get(path === '/' ? '/index.html' : path);
      if (asset) return sendAsset(res, asset);
    }
    if (!POST_ROUTES[path] && !MODEL_ROUTES[path] && !INFO_POST_ROUTES[path] && !INFO_GET_ROUTES.includes(path) &&
        !['/v1/models', '/metrics', '/api/tags', '/api/version'].includes(path) && !path.startsWith('/v1/models/')) {
      throw new ApiError(404, `Unknown endpoint ${req.method} ${path}.`, 'not_found_error', null, 'unknown_url');
    }
    if (ctx.options.apiKey) checkApiKey(req, ctx.options.apiKey);
    const managed = MODEL_ROUTES[path];
    if (managed) {
      if (req.method !== managed.method) throw methodNotAllowed(req, path, managed.method);
      const body = await readJson(req, ctx.options.maxBodyBytes, (bytes) => claim.add(bytes));
      await managed.handler(ctx, req, res, body, claim);
      return;
    }
    const post = POST_ROUTES[path];
    if (post) {
      if (req.method !== 'POST') throw methodNotAllowed(req, path, 'POST');
      if (ctx.draining) {
        res.setHeader('Connection', 'close');
        throw new ApiError(503, 'The server is shutting down; retry (on another replica).', 'server_error', null, 'shutting_down');
      }
      ctx.engine.checkCapacity();
      const body = await readJson(req, ctx.options.maxBodyBytes, (bytes) => claim.add(bytes));
      if (ctx.switcher) await ctx.switcher.ensure(body);
      const conversation = prefixHash(req, body);
      if (conversation !== null) res.setHeader(PREFIX_HASH_HEADER, conversation);
      await post(ctx, req, res, body, claim);
      return;
    }
    const info = INFO_POST_ROUTES[path];
    if (info) {
      if (req.method !== 'POST') throw methodNotAllowed(req, path, 'POST');
      await info(ctx, res, await readJson(req, ctx.options.maxBodyBytes, (bytes) => claim.add(bytes)));
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') throw methodNotAllowed(req, path, 'GET');
    if (path === '/api/ps') return ollamaPs(ctx, res);
    if (path === '/props') return props(ctx, res);
    if (path === '/v1/models') return listModels(ctx, res);
    if (path.startsWith('/v1/models/')) return getModel(ctx, res, safeDecode(path.slice('/v1/models/'.length)));
    if (path === '/api/tags') return ollamaTags(ctx, res);
    if (path === '/api/version') return sendJson(res, 200, { version: PACKAGE_VERSION });
    if (path === '/metrics') return sendMetrics(ctx, res);
  } catch (err) {
    const e = toApiError(err);
    if (res.headersSent) {
      res.end();
      return;
    }
    if (ollamaShape) sendJson(res, e.status, { error: e.message }, e.status === 429 ? { 'Retry-After': '1' } : {});
    else sendError(res, e);
  } finally {
    claim.releaseUnlessAdopted();
  }
}

function routeName(method: string, path: string): string {
  if (POST_ROUTES[path] || MODEL_ROUTES[path] || INFO_POST_ROUTES[path] || INFO_GET_ROUTES.includes(path) ||
      ['/health', '/ready', '/metrics', '/v1/models', '/api/tags', '/api/version'].includes(path)) return path;
  if (path.startsWith('/v1/models/')) return '/v1/models/{id}';
  if (method === 'GET' && WEB_ASSETS.has(path === '/' ? '/index.html' : path)) return '/ (web)';
  return 'other';
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

function methodNotAllowed(req: IncomingMessage, path: string, allowed: string): ApiError {
  return new ApiError(405, `${req.method} is not allowed on ${path}; use ${allowed}.`, 'invalid_request_error', null, 'method_not_allowed');
}

function preflight(res: ServerResponse): void {
  res.writeHead(204, {
    'Access-Control-Allow-Methods': 'GET, POST, DELETE, OPTIONS',
    'Access-Control-Allow-Headers': 'Authorization, Content-Type',
    'Access-Control-Max-Age': '86400',
  });
  res.end();
}

function health(ctx: ServerContext, res: ServerResponse): void {
  const e = ctx.engine;
  sendJson(res, e.healthy ? 200 : 503, {
    status: e.healthy ? 'ok' : 'error', ...(e.problem ? { error: e.problem } : {}), draining: ctx.draining,
    model: e.info.id, vision: e.info.vision, context_length: e.info.contextLength, kv_type: e.info.kvType,
    active: e.active, queued: e.queued, parallel: ctx.options.parallel, max_queue: ctx.options.maxQueue,
    auth: ctx.options.apiKey !== undefined,
  });
}

/**
 * Readiness, as distinct from liveness (/health): whether this replica should be sent new work.
 * 503 while draining for shutdown or when the model worker is gone. (While the model loads the
 * server does not listen yet, so a probe's connection is refused: not ready either.)
 */
function ready(ctx: ServerContext, res: ServerResponse): void {
  const e = ctx.engine;
  const status = !e.healthy ? 'error' : ctx.draining ? 'draining' : 'ready';
  sendJson(res, status === 'ready' ? 200 : 503, { status, model: e.info.id, active: e.active, queued: e.queued });
}

function sendMetrics(ctx: ServerContext, res: ServerResponse): void {
  const e = ctx.engine;
  const text = ctx.metrics.render({
    active: e.active, queued: e.queued, parallel: ctx.options.parallel, model: e.info.id, backend: e.info.backend,
    contextLength: e.info.contextLength,
  });
  res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

// ---------------------------------------------------------------------------------------------
// The web page: static files read once from src/server/web (tsc does not copy them to dist/).

interface Asset {
  body: Buffer;
  type: string;
  etag: string;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
};

export const WEB_DIR = [
  join(dirname(fileURLToPath(import.meta.url)), 'web'),
  resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'src', 'server', 'web'),
].find((d) => existsSync(join(d, 'index.html'))) ?? null;

const WEB_ASSETS: Map<string, Asset> = (() => {
  const assets = new Map<string, Asset>();
  if (!WEB_DIR) return assets;
  // Every page file of a served type in the folder, so adding a module to the page needs no list here.
  for (const name of readdirSync(WEB_DIR).sort()) {
    if (!TYPES[name.slice(name.lastIndexOf('.'))] || name.startsWith('.')) continue;
    const file = join(WEB_DIR, name);
    const body = readFileSync(file);
    assets.set(`/${name}`, {
      body, type: TYPES[name.slice(name.lastIndexOf('.'))]!, etag: `"${createHash('sha1').update(body).digest('hex').slice(0, 16)}"`,
    });
  }
  return assets;
})();

function sendAsset(res: ServerResponse, asset: Asset): void {
  res.writeHead(200, {
    'Content-Type': asset.type, 'Content-Length': asset.body.length, ETag: asset.etag, 'Cache-Control': 'no-cache',
    'Content-Security-Policy': "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; connect-src 'self'",
    'X-Content-Type-Options': 'nosniff',
  });
  res.end(asset.body);
}
