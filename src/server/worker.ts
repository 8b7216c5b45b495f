// The model thread: loads the model, prepares prompts and runs the continuous-batching scheduler,
// so the HTTP thread stays free (health checks answer while the model computes). Talks to the
// HTTP side (engine.ts) only through the messages of protocol.ts.
import { parentPort, workerData } from 'node:worker_threads';
import { resolve } from 'node:path';
import { constraintFor, validateGenerateOptions, type GenerateOptions } from '../generate/generate.js';
import type { GrammarConstraint } from '../grammar/grammar.js';
import { load, type LoadOptions } from '../load.js';
import type { Gemma3 } from '../gemma3.js';
import { ApiError, toApiError } from './api-error.js';
import { checkPromptSize, clientError, preparePrompt, promptLimits } from './prompt.js';
import type { FromWorker, Job, ModelInfo, TokenLogprobData, TokenText, ToWorker, WorkerConfig } from './protocol.js';
import type { TokenLogprob } from '../generate/logprobs.js';
import { countParameters, quantizationLevel } from './model-facts.js';
import { modelIdFor } from './model-id.js';
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
    let shown = -1;
    const onProgress = (fraction: number): void => {
      const pct = Math.floor(fraction * 100);
      if (pct === shown) return;
      shown = pct;
      port.postMessage({ type: 'progress', fraction } satisfies FromWorker);
    };
    model = await load(dir, { ...options, contextLength: config.context ?? { atMost: DEFAULT_SERVER_CONTEXT }, onProgress });
  } catch (err) {
    post({ type: 'fatal', message: err instanceof Error ? err.message : String(err) });
    return;
  }
  const context = model.contextLength;
  const info: ModelInfo = {
    id: modelIdFor(dir, config.alias),
    path: dir,
    contextLength: context,
    kvType: model.kvType,
    vision: model.config.vision !== null,
    backend: model.backend,
    parameters: countParameters(model),
    quantization: quantizationLevel(model),
    family: 'gemma3',
    chatTemplate: model.chatTemplate?.source ?? null,
    defaults: {
      temperature: model.defaults.temperature, topK: model.defaults.topK, topP: model.defaults.topP, minP: model.defaults.minP,
      repetitionPenalty: model.defaults.repetitionPenalty,
    },
    dims: (({ vocabSize, hiddenSize, intermediateSize, numLayers, numHeads, numKvHeads, headDim, slidingWindow, maxPositionEmbeddings }) =>
      ({ vocabSize, hiddenSize, intermediateSize, numLayers, numHeads, numKvHeads, headDim, slidingWindow, maxPositionEmbeddings }))(model.config.text),
  };
  const scheduler = new Scheduler(model.decoder, model.tokenizer, { parallel: config.parallel, context, cacheBytes: config.cacheBytes }, {
    token: (id, text, logprob) => post({ type: 'token', id, text, ...(logprob ? { logprob: logprobData(model, logprob) } : {}) }),
    done: (id, done) => post({ type: 'done', id, done }),
    failed: (id, message) => post({ type: 'failed', id, message }),
    load: (active, waiting) => post({ type: 'load', active, waiting }),
    step: (batch, ms) => post({ type: 'step', batch, ms }),
    promptCache: (sequences, bytes) => post({ type: 'promptCache', sequences, bytes }),
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
      const { grammarParam, cachePrompt, ...jobOptions } = job.options;
      const options: GenerateOptions = model.withDefaults({ ...jobOptions, maxTokens: jobOptions.maxTokens ?? context });
      validateGenerateOptions(options);
      const constraint = await grammarFor(options, grammarParam);
      if (cancelled.aborted) {
        constraint?.dispose();
        return abandoned();
      }
      post({ type: 'accepted', id, promptTokens: prompt.length });
      scheduler.add(id, prompt, options, constraint, cachePrompt !== false);
    } catch (err) {
      if (cancelled.aborted) return abandoned();
      post({ type: 'rejected', id, error: clientError(err, job, dir, info.id) });
    } finally {
      preparing.delete(id);
    }
  }

  /** The reply's grammar (compiled here, cached); a grammar xgrammar refuses is the client's 400 on its field. */
  async function grammarFor(options: GenerateOptions, param: string | undefined): Promise<GrammarConstraint | null> {
    try {
      return await constraintFor(model.tokenizer, model.decoder.config.vocabSize, options);
    } catch (err) {
      const e = toApiError(err);
      throw e.status === 400 ? new ApiError(400, e.message, 'invalid_request_error', param ?? null, 'unsupported_schema') : e;
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

/** Ids → the text and bytes clients see for each token (OpenAI's logprobs shape). */
function logprobData(model: Gemma3, lp: TokenLogprob): TokenLogprobData {
  const text = (id: number, logprob: number): TokenText => {
    const byte = model.tokenizer.byteValue(id);
    if (byte >= 0) return { token: byte < 0x80 ? String.fromCharCode(byte) : `\\x${byte.toString(16).padStart(2, '0')}`, bytes: [byte], logprob };
    const token = model.tokenizer.isSpecial(id) ? model.tokenizer.piece(id) : model.tokenizer.pieceText(id);
    return { token, bytes: [...Buffer.from(token, 'utf8')], logprob };
  };
  return { ...text(lp.id, lp.logprob), top: lp.top.map(([id, l]) => text(id, l)) };
}

void main();
