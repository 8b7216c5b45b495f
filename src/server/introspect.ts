// The endpoints clients probe to learn about the model: Ollama's POST /api/show and GET /api/ps,
// and llama-server's POST /tokenize, POST /detokenize and GET /props. The tokenizer for
// /tokenize is loaded on this (HTTP) thread on first use, from the same files as the model's.
import type { ServerResponse } from 'node:http';
import { loadTokenizer, type Tokenizer } from '../tokenizer/tokenizer.js';
import { ApiError, invalidParam, wrongType } from './api-error.js';
import { sendJson } from './http.js';
import { PACKAGE_VERSION } from './model-facts.js';
import { asObject, bool } from './openai-schema.js';
import type { ServerContext } from './server.js';

const tokenizers = new WeakMap<ServerContext, Promise<Tokenizer>>();

function tokenizerOf(ctx: ServerContext): Promise<Tokenizer> {
  let t = tokenizers.get(ctx);
  if (!t) {
    t = loadTokenizer(ctx.engine.info.path);
    tokenizers.set(ctx, t);
    t.catch(() => tokenizers.delete(ctx));
  }
  return t;
}

/** What the model can do, in Ollama's words. */
function capabilities(ctx: ServerContext): string[] {
  return ['completion', 'tools', ...(ctx.engine.info.vision ? ['vision'] : [])];
}

function details(ctx: ServerContext) {
  const info = ctx.engine.info;
  return {
    parent_model: '', format: info.path.toLowerCase().endsWith('.gguf') ? 'gguf' : 'safetensors', family: info.family, families: [info.family],
    parameter_size: formatParameters(info.parameters), quantization_level: info.quantization,
  };
}

export function formatParameters(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(1)}B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  return `${(n / 1e3).toFixed(1)}K`;
}

/** POST /api/show { model }: details, parameters, template, model_info and capabilities. */
export function ollamaShow(ctx: ServerContext, res: ServerResponse, body: unknown): void {
  const o = asObject(body);
  const name = o.model ?? o.name;
  if (name === undefined) throw invalidParam('model', "Missing required parameter: 'model'.", 'missing_required_parameter');
  if (typeof name !== 'string' || name === '') throw wrongType('model', 'a non-empty string', name);
  const info = ctx.engine.info;
  if (name !== info.id && name !== `${info.id}:latest`) {
    throw new ApiError(404, `model '${name}' not found; this server serves '${info.id}'`, 'invalid_request_error', 'model', 'model_not_found');
  }
  const d = info.defaults;
  const parameters = [
    `temperature ${d.temperature}`, `top_k ${d.topK}`, `top_p ${d.topP}`, `min_p ${d.minP}`, `repeat_penalty ${d.repetitionPenalty}`,
    'stop "<end_of_turn>"', `num_ctx ${info.contextLength}`,
  ].join('\n');
  const dims = info.dims;
  sendJson(res, 200, {
    license: '', modelfile: `# served by gemma3 ${PACKAGE_VERSION}\nFROM ${info.id}\n`, parameters,
    template: info.chatTemplate ?? '', details: details(ctx),
    model_info: {
      'general.architecture': 'gemma3', 'general.parameter_count': info.parameters, 'general.quantization': info.quantization,
      'gemma3.context_length': info.contextLength, 'gemma3.max_position_embeddings': dims.maxPositionEmbeddings,
      'gemma3.embedding_length': dims.hiddenSize, 'gemma3.feed_forward_length': dims.intermediateSize, 'gemma3.block_count': dims.numLayers,
      'gemma3.attention.head_count': dims.numHeads, 'gemma3.attention.head_count_kv': dims.numKvHeads,
      'gemma3.attention.key_length': dims.headDim, 'gemma3.attention.sliding_window': dims.slidingWindow, 'gemma3.vocab_size': dims.vocabSize,
    },
    capabilities: capabilities(ctx),
    modified_at: new Date(ctx.startedAt * 1000).toISOString(),
  });
}

/** GET /api/ps: the loaded model (always this one). */
export function ollamaPs(ctx: ServerContext, res: ServerResponse): void {
  const info = ctx.engine.info;
  sendJson(res, 200, {
    models: [{
      name: `${info.id}:latest`, model: `${info.id}:latest`, size: 0, digest: ctx.digest.value ?? '', details: details(ctx),
      expires_at: new Date(Date.now() + 365 * 24 * 3600 * 1000).toISOString(), size_vram: 0, context_length: info.contextLength,
    }],
  });
}

/** POST /tokenize { content, add_special?, with_pieces? } → { tokens }. */
export async function tokenize(ctx: ServerContext, res: ServerResponse, body: unknown): Promise<void> {
  const o = asObject(body);
  if (typeof o.content !== 'string') throw wrongType('content', 'a string', o.content);
  if (o.content.length > ctx.options.maxBodyBytes) throw invalidParam('content', "'content' is too long");
  const addSpecial = bool(o, 'add_special') ?? false;
  const withPieces = bool(o, 'with_pieces') ?? false;
  const tok = await tokenizerOf(ctx);
  const ids = tok.encode(o.content, { addBos: addSpecial });
  sendJson(res, 200, { tokens: withPieces ? ids.map((id) => ({ id, piece: tok.isSpecial(id) ? tok.piece(id) : tok.pieceText(id) })) : ids });
}

/** POST /detokenize { tokens } → { content }. */
export async function detokenize(ctx: ServerContext, res: ServerResponse, body: unknown): Promise<void> {
  const o = asObject(body);
  const tok = await tokenizerOf(ctx);
  const ids = o.tokens;
  if (!Array.isArray(ids)) throw wrongType('tokens', 'an array of token ids', ids);
  const bad = ids.findIndex((id) => !(Number.isInteger(id) && id >= 0 && id < tok.size));
  if (bad >= 0) throw wrongType(`tokens[${bad}]`, `a token id in [0, ${tok.size})`, ids[bad]);
  sendJson(res, 200, { content: tok.decode(ids as number[]) });
}

/** GET /props: llama-server's summary of the server and its defaults. */
export function props(ctx: ServerContext, res: ServerResponse): void {
  const info = ctx.engine.info;
  const d = info.defaults;
  sendJson(res, 200, {
    default_generation_settings: {
      n_ctx: info.contextLength,
      params: { temperature: d.temperature, top_k: d.topK, top_p: d.topP, min_p: d.minP, repeat_penalty: d.repetitionPenalty, n_predict: -1 },
    },
    total_slots: ctx.options.parallel, model_alias: info.id, model_path: info.id, chat_template: info.chatTemplate ?? '',
    modalities: { vision: info.vision, audio: false }, build_info: `gemma3 ${PACKAGE_VERSION}`,
  });
}
