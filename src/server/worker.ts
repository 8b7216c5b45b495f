// The model thread: loads the model, prepares prompts and runs the continuous-batching scheduler,
// so the HTTP thread stays free (health checks answer while the model computes). Talks to the
// HTTP side (engine.ts) only through the messages of protocol.ts.
import { parentPort, workerData } from 'node:worker_threads';
import { basename, resolve } from 'node:path';
import { validateGenerateOptions, type GenerateOptions } from '../generate/generate.js';
import { load, type LoadOptions } from '../load.js';
import type { Gemma3 } from '../gemma3.js';
import { ApiError } from './api-error.js';
import { checkPromptSize, clientError, preparePrompt, promptLimits } from './prompt.js';
import type { FromWorker, Job, ModelInfo, ToWorker, WorkerConfig } from './protocol.js';
import { countParameters, quantizationLevel } from './model-facts.js';
import { Scheduler } from './scheduler.js';

/** KV cache capacity per sequence when --context is not given (or the model's limit, if lower). */
export const DEFAULT_SERVER_CONTEXT = 4096;

const port = parentPort!;
/** Events wait here and cross to the HTTP thread together, one message per flush. */
let outbox: FromWorker[] = [];
function flush(): void {
  if (outbox.length === 0) return;
  port.postMessage(outbox.length === 1 ? outbox[0] : { type: 'batch', messages: outbox } satisfies FromWorker);
  outbox = [];
}
function post(m: FromWorker): void {
  if (outbox.length === 0) queueMicrotask(flush); // events outside a step (cancel, rejection) go out promptly
  outbox.push(m);
}
const config = workerData as WorkerConfig;

async function main(): Promise<void> {
  const dir = resolve(config.modelPath);
  let model: Gemma3;
  const options = { ...config.load } as LoadOptions;
  try {
    // --context exactly (refused above the model's limit), else the default or the model's own limit if lower.
    model = await load(dir, { ...options, contextLength: config.context ?? { atMost: DEFAULT_SERVER_CONTEXT } });
  } catch (err) {
    post({ type: 'fatal', message: err instanceof Error ? err.message : String(err) });
    return;
  }
  const context = model.contextLength;
  const info: ModelInfo = {
    id: basename(dir).replace(/\.gguf$/i, ''),
    path: dir,
    contextLength: context,
    kvType: model.kvType,
    vision: model.config.vision !== null,
    backend: model.backend,
    parameters: countParameters(model),
    quantization: quantizationLevel(model),
    family: 'gemma3',
  };
  const scheduler = new Scheduler(model.decoder, model.tokenizer, { parallel: config.parallel, context }, {
    token: (id, text) => post({ type: 'token', id, text }),
    done: (id, done) => post({ type: 'done', id, done }),
    failed: (id, message) => post({ type: 'failed', id, message }),
    load: (active, waiting) => post({ type: 'load', active, waiting }),
    step: (batch, ms) => post({ type: 'step', batch, ms }),
    flush,
  });
  /** Jobs whose prompt is being prepared (images decode asynchronously), with their cancellation. */
  const preparing = new Map<number, AbortController>();
  const limits = promptLimits(model, context);

  async function submit(id: number, job: Job, cancelFlag: Int32Array): Promise<void> {
    const controller = new AbortController();
    preparing.set(id, controller);
    // Seen inside synchronous work too (the vision tower), where no message can arrive.
    const cancelled = { get aborted() { return controller.signal.aborted || Atomics.load(cancelFlag, 0) === 1; } };
    const abandoned = () => post({ type: 'done', id, done: { text: '', finishReason: 'abort', promptTokens: 0, completionTokens: 0, prefillMs: 0, decodeMs: 0 } });
    try {
      checkPromptSize(job, limits);
      const prompt = await preparePrompt(model, job, { signal: controller.signal, cancelled });
      const param = job.kind === 'chat' ? 'messages' : 'prompt';
      if (prompt.length >= context) {
        throw new ApiError(400,
          `This model's maximum context length is ${context} tokens. However, your ${param} resulted in ${prompt.length} tokens ` +
          `(at least 1 token must be left for the reply). Please reduce the length of the ${param}.`,
          'invalid_request_error', param, 'context_length_exceeded');
      }
      const options: GenerateOptions = model.withDefaults({ ...job.options, maxTokens: job.options.maxTokens ?? context });
      validateGenerateOptions(options);
      if (cancelled.aborted) return abandoned();
      post({ type: 'accepted', id, promptTokens: prompt.length });
      scheduler.add(id, prompt, options);
    } catch (err) {
      if (cancelled.aborted) return abandoned();
      post({ type: 'rejected', id, error: clientError(err, job, dir, info.id) });
    } finally {
      preparing.delete(id);
    }
  }

  port.on('message', (m: ToWorker) => {
    switch (m.type) {
      case 'submit':
        void submit(m.id, m.job, m.cancelFlag);
        break;
      case 'cancel':
        if (preparing.has(m.id)) preparing.get(m.id)!.abort();
        else scheduler.cancel(m.id);
        break;
      case 'shutdown':
        // Between steps (no kernel running): stop every sequence, then end this thread.
        scheduler.cancelAll();
        flush();
        model.dispose();
        process.exit(0);
    }
  });
  post({ type: 'ready', info });
}

void main();
