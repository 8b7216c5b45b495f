// Loading a cached model named in a request's `model` field (`gemma3 serve --switch-models`):
// one model is resident; a request for another model in the hub cache waits for the running
// requests to finish, unloads the old model and loads the new one. Only hub references found in
// the cache can be loaded: a name shaped like a path (`../x`, `/etc/x`, `a/b/c`) is a 400, so a
// request can never name a file outside the cache.
import { ApiError, invalidParam } from './api-error.js';
import { Engine, type EngineOptions } from './engine.js';
import { findCachedModel, parseModelReference } from '../hub/index.js';
import { modelDigest } from './model-facts.js';
import type { ServerContext } from './server.js';

/** How long a switch waits for the old model's requests to finish before it cancels them. */
const DRAIN_TIMEOUT_MS = 120_000;

export class ModelSwitcher {
  /** Switches run one at a time; requests for any model wait behind a switch in progress. */
  private lock: Promise<unknown> = Promise.resolve();

  constructor(private readonly ctx: ServerContext, private readonly engineOptions: Omit<EngineOptions, 'modelPath'>) {}

  /** Makes the model a request body names resident, when it is a cached model other than the current one. */
  async ensure(body: unknown): Promise<void> {
    await this.lock; // a request arriving during a switch waits for it (it may want the new model)
    const model = (body !== null && typeof body === 'object' && !Array.isArray(body)) ? (body as { model?: unknown }).model : undefined;
    if (typeof model !== 'string' || this.isCurrent(model)) return;
    // Names without an owner ('gemma3', 'gpt-4o') are not hub names: the route answers them as before.
    if (!model.includes('/') && !model.startsWith('.')) return;
    let ref;
    try {
      ref = parseModelReference(model, "'model'");
    } catch (err) {
      throw invalidParam('model', (err as Error).message);
    }
    const cached = findCachedModel(ref, this.ctx.options.hub.cacheDir);
    if (!cached) {
      throw new ApiError(404, `model '${model}' is not in this server's model cache` +
        (this.ctx.options.allowPull ? '; pull it first with POST /api/pull' : ''), 'invalid_request_error', 'model', 'model_not_found');
    }
    const run = this.lock.then(() => this.isCurrent(model) ? undefined : this.switchTo(cached.path, cached.reference));
    this.lock = run.catch(() => {});
    await run;
  }

  private isCurrent(model: string): boolean {
    const id = this.ctx.engine.info.id;
    return model === id || model === `${id}:latest`;
  }

  private async switchTo(path: string, name: string): Promise<void> {
    const old = this.ctx.engine;
    const deadline = Date.now() + DRAIN_TIMEOUT_MS;
    while (old.outstanding > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
    const previous = { path: old.info.path, id: old.info.id };
    await old.close();
    try {
      this.ctx.engine = await this.start(path, name);
    } catch (err) {
      // The new model failed to load: bring the old one back, and say why.
      this.ctx.engine = await this.start(previous.path, previous.id);
      throw new ApiError(500, `model '${name}' could not be loaded: ${err instanceof Error ? err.message : String(err)}`,
        'server_error', 'model', 'model_load_failed');
    }
  }

  private async start(path: string, name: string): Promise<Engine> {
    const engine = await Engine.start({ ...this.engineOptions, modelPath: path }, this.ctx.metrics);
    engine.info.id = name;
    this.ctx.digest.value = null;
    modelDigest(engine.info.path).then((d) => {
      if (this.ctx.engine === engine) this.ctx.digest.value = d;
    }, () => {});
    return engine;
  }
}
