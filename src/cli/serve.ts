// gemma3 serve: the OpenAI- and Ollama-compatible HTTP server with the web chat page.
import { GemmaError } from '../index.js';
import { startServer, type ModelLoadOptions } from '../server/index.js';
import { aliasProblem } from '../server/model-id.js';
import { MODEL_FLAGS, contextFlag, flagTerms, kvTypeFlag, mmapFlag, modelTarget, numberFlag, parse, threadsFlag } from './options.js';

export const SERVE_HELP = `gemma3 serve [--model PATH | --demo] [options]

OpenAI-compatible (/v1/chat/completions, /v1/completions, /v1/models) and Ollama-compatible
(/api/chat, /api/generate, /api/tags, /api/pull, /api/delete) HTTP server with a web chat page at /, /health and /metrics.

  --model PATH, -m        a Hugging Face checkpoint folder or a .gguf file (default: $GEMMA3_MODEL,
                          else google/gemma-3-*-it in the Hugging Face cache); --demo: the tiny random model
  --alias NAME            the model id clients use (default: the repository, .gguf file or folder name,
                          e.g. gemma-3-4b-it); requests may also say "gemma3"

  --host ADDR             address to bind (default 127.0.0.1: this machine only)
  --port N                port (default 8080; 0 picks a free one)
  --api-key KEY           require "Authorization: Bearer KEY" on the API (default: $GEMMA3_API_KEY, else none)
  --parallel N            sequences generated together, batched (default 4)
  --queue N               requests that may wait for a slot before 429 (default 4 x parallel)
  --context N             KV cache size per sequence in tokens (default 4096, or the model's limit)
  --cache-ram MB          memory for the prompt cache: finished conversations' KV caches kept so a follow-up
                          computes only its new tokens (default 2048; 0 disables it)
  --allow-remote-images   let clients name http(s) image URLs for the server to fetch (default: data: URLs only)
  --allow-private-image-hosts  let those URLs reach loopback, private and link-local addresses (default: refused)
  --max-body BYTES        largest request body (default 33554432)
  --max-image-pixels N    largest image a request may carry, width x height (default 50000000)
  --cors-origin LIST      let web pages from these origins (comma-separated, '*' for any) call the API
                          (default: only this server's own page; other pages get 403)
  --allowed-hosts LIST    host names accepted in the Host header besides IP addresses, localhost and this
                          machine's name (comma-separated; '.example.com' for subdomains; '*' for any).
                          Other names get 403, which defeats DNS rebinding from web pages
  --allow-pull            let clients pull models from the Hugging Face hub into its cache (POST /api/pull) and
                          delete them (DELETE /api/delete); default: both refused with 403. /api/tags lists the cache
  --switch-models         load a model of the hub cache when a request names it ("model": "OWNER/NAME[:QUANT]"),
                          unloading the current one once its requests are done (one model resident)
  --model NAME [--pull]   a hub name (google/gemma-3-4b-it, OWNER/REPO-GGUF:Q4_K_M) from the cache; --pull fetches it first
  --drain-timeout S       on SIGTERM or Ctrl+C: stop taking requests (/ready answers 503), let running
                          ones finish for up to S seconds, then cut the rest and exit 0 (default 30;
                          a second signal stops at once)
  --backend auto|native|js  --threads N  --quant q8_0|q4_0|q4_k_m|q5_k_m|q6_k  --mmproj FILE  --mmap auto|on|off
  --kv-type f32|f16|bf16  as for gemma3 run

Ollama's keep_alive: the model stays loaded while the server runs; requests asking to unload it
(keep_alive 0 or a duration) get 400, a negative keep_alive is accepted.`;

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1']);

export async function runServe(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, {
    ...MODEL_FLAGS,
    host: { type: 'string' },
    port: { type: 'string' },
    'api-key': { type: 'string' },
    parallel: { type: 'string' },
    queue: { type: 'string' },
    'cache-ram': { type: 'string' },
    'allow-remote-images': { type: 'boolean' },
    'allow-private-image-hosts': { type: 'boolean' },
    'max-body': { type: 'string' },
    'max-image-pixels': { type: 'string' },
    'cors-origin': { type: 'string' },
    'allowed-hosts': { type: 'string' },
    'allow-pull': { type: 'boolean' },
    'switch-models': { type: 'boolean' },
    alias: { type: 'string' },
    'drain-timeout': { type: 'string' },
  }, SERVE_HELP);
  if (positionals.length) throw new GemmaError('INVALID_ARGUMENT', `gemma3 serve takes no positional arguments (got ${JSON.stringify(positionals.join(' '))})`);
  const port = numberFlag('port', values.port, true) ?? 8080;
  if (port < 0 || port > 65535) throw new GemmaError('INVALID_ARGUMENT', `--port must be in [0, 65535], got ${port}`);
  const parallel = numberFlag('parallel', values.parallel, true) ?? 4;
  if (parallel < 1 || parallel > 256) throw new GemmaError('INVALID_ARGUMENT', `--parallel must be in [1, 256], got ${parallel}`);
  const queue = numberFlag('queue', values.queue, true);
  if (queue !== undefined && queue < 0) throw new GemmaError('INVALID_ARGUMENT', `--queue must be >= 0, got ${queue}`);
  const drainSeconds = numberFlag('drain-timeout', values['drain-timeout']) ?? 30;
  if (drainSeconds < 0 || drainSeconds > 86_400) throw new GemmaError('INVALID_ARGUMENT', `--drain-timeout must be in [0, 86400] seconds, got ${drainSeconds}`);
  const context = contextFlag(values.context);
  const alias = values.alias;
  if (alias !== undefined && aliasProblem(alias) !== null) {
    throw new GemmaError('INVALID_ARGUMENT', `--alias must be ${aliasProblem(alias)}, got ${JSON.stringify(alias)}`);
  }
  const cacheRam = numberFlag('cache-ram', values['cache-ram']);
  if (cacheRam !== undefined && cacheRam < 0) throw new GemmaError('INVALID_ARGUMENT', `--cache-ram must be a number of megabytes >= 0, got ${cacheRam}`);
  const maxBody = numberFlag('max-body', values['max-body'], true);
  if (maxBody !== undefined && maxBody < 1024) throw new GemmaError('INVALID_ARGUMENT', `--max-body must be at least 1024 bytes, got ${maxBody}`);
  const maxImagePixels = numberFlag('max-image-pixels', values['max-image-pixels'], true);
  if (maxImagePixels !== undefined && maxImagePixels < 1) throw new GemmaError('INVALID_ARGUMENT', `--max-image-pixels must be positive, got ${maxImagePixels}`);
  const threads = threadsFlag(values.threads);
  const backend = values.backend;
  if (backend !== undefined && backend !== 'auto' && backend !== 'native' && backend !== 'js') {
    throw new GemmaError('INVALID_ARGUMENT', `--backend must be auto, native or js, got ${JSON.stringify(backend)}`);
  }
  const mmap = mmapFlag(values.mmap);
  const kvType = kvTypeFlag(values['kv-type']);
  const load: ModelLoadOptions = {
    ...(mmap !== undefined ? { mmap } : {}), ...(kvType !== undefined ? { kvType } : {}),
    ...(backend !== undefined ? { backend } : {}), ...(threads !== undefined ? { threads } : {}),
    ...(values.quant !== undefined ? { quant: values.quant } : {}), ...(values.mmproj !== undefined ? { mmproj: values.mmproj } : {}),
  };
  const host = values.host ?? '127.0.0.1';
  const apiKey = values['api-key'] ?? process.env.GEMMA3_API_KEY;
  const { path: dir, name: modelName } = await modelTarget(values);
  if (!LOOPBACK.has(host) && !apiKey) {
    process.stderr.write(`gemma3: warning: listening on ${host} without --api-key: anyone who can reach it can use the model\n`);
  }
  process.stderr.write(`gemma3: loading ${dir} ...\n`);
  const started = Date.now();
  let server;
  try {
    server = await startServer({
      onLoadProgress: loadProgress(dir), ...(alias !== undefined ? { alias } : {}),
      modelPath: dir, ...(modelName ? { modelName } : {}), host, port, parallel, load, allowRemoteImages: values['allow-remote-images'] ?? false,
      allowPrivateImageHosts: values['allow-private-image-hosts'] ?? false, allowPull: values['allow-pull'] ?? false,
      switchModels: values['switch-models'] ?? false,
      ...(values['cors-origin'] ? { corsOrigin: values['cors-origin'] } : {}),
      ...(values['allowed-hosts'] ? { allowedHosts: values['allowed-hosts'] } : {}),
      ...(maxImagePixels !== undefined ? { maxImagePixels } : {}),
      ...(apiKey ? { apiKey } : {}), ...(queue !== undefined ? { maxQueue: queue } : {}),
      ...(cacheRam !== undefined ? { cacheRamMb: cacheRam } : {}),
      ...(context !== undefined ? { context } : {}), ...(maxBody !== undefined ? { maxBodyBytes: maxBody } : {}),
    });
  } catch (err) {
    if (process.stderr.isTTY) process.stderr.write('\n');
    if (err instanceof GemmaError) throw err;
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'EADDRINUSE') throw new GemmaError('INVALID_ARGUMENT', `port ${port} on ${host} is already in use; pick another with --port`);
    throw new GemmaError('INVALID_ARGUMENT', flagTerms(e.message));
  }
  const info = server.engine.info;
  if (process.stderr.isTTY) process.stderr.write('\n');
  process.stderr.write(`gemma3: loaded ${info.id} in ${((Date.now() - started) / 1000).toFixed(1)} s ` +
    `(${info.backend} backend, context ${info.contextLength}, ${info.kvType} KV cache, parallel ${parallel}${info.vision ? ', vision' : ''})\n`);
  process.stdout.write(`gemma3: serving ${info.id} at ${server.url}  (chat page: ${server.url}/, API: ${server.url}/v1)\n`);
  await new Promise<void>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) {
        process.stderr.write(`gemma3: ${signal} again: stopping now\n`);
        process.exit(130);
      }
      stopping = true;
      process.stderr.write(`\ngemma3: ${signal}: draining: ${server.engine.outstanding} request(s) running; ` +
        `waiting up to ${drainSeconds} s for them\n`);
      void server.drain(drainSeconds * 1000).then(({ finished, cut }) => {
        process.stderr.write(`gemma3: stopped (${finished} finished, ${cut} cut off)\n`);
        resolve();
      });
    };
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGTERM', () => stop('SIGTERM'));
  });
  return 0;
}

/**
 * Shows the load as it goes: one updating line on a terminal, else a line per tenth (a service's
 * log shows that a large model is still loading, not hung).
 */
function loadProgress(dir: string): (fraction: number) => void {
  const tty = process.stderr.isTTY === true;
  let shown = -1;
  return (fraction) => {
    const pct = Math.floor(fraction * 100);
    const step = tty ? pct : Math.floor(pct / 10) * 10;
    if (step === shown) return;
    shown = step;
    process.stderr.write(tty ? `\rgemma3: loading ${dir} ${pct}%` : `gemma3: loading ${dir} ${step}%\n`);
  };
}
