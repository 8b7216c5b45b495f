// Request → prompt ids, in the worker: the chat template for conversations, the tokenizer for
// raw completions, and image parts handed to the library's vision pipeline when the model has one.
import type { ChatMessage, ContentPart } from '../chat/messages.js';
import type { Gemma3 } from '../gemma3.js';
import { ApiError, invalidParam } from './api-error.js';
import type { Job, JobMessage } from './protocol.js';
import type { PromptExtra } from './scheduler.js';

export interface Prompt {
  ids: number[];
  extra?: PromptExtra;
}

/** The prompt of a job; ApiError (400) when it cannot be built. */
export async function preparePrompt(model: Gemma3, job: Job): Promise<Prompt> {
  if (job.kind === 'complete') {
    if (typeof job.prompt === 'string') return { ids: model.tokenizer.encode(job.prompt, { addBos: true }) };
    const V = model.config.text.vocabSize;
    const bad = job.prompt.find((id) => !Number.isInteger(id) || id < 0 || id >= V);
    if (bad !== undefined) throw invalidParam('prompt', `token id ${bad} is outside the vocabulary [0, ${V})`);
    if (job.prompt.length === 0) throw invalidParam('prompt', 'the prompt has no tokens');
    return { ids: [...job.prompt] };
  }
  const messages = job.messages.map(toChatMessage);
  const images = job.messages.reduce((n, m) => n + (Array.isArray(m.content) ? m.content.filter((p) => p.type === 'image').length : 0), 0);
  if (images === 0) return { ids: model.chatIds(messages) };
  if (!model.config.vision) throw noVision();
  return imagePrompt(model, messages);
}

export function noVision(): ApiError {
  return invalidParam('messages', 'this model does not accept images (it has no vision encoder); send text only', 'images_not_supported');
}

/** Job messages → library chat messages: images become `{ type: 'image', image: data URL | Buffer }`. */
export function toChatMessage(m: JobMessage): ChatMessage {
  if (typeof m.content === 'string') return { role: m.role, content: m.content };
  const content: ContentPart[] = m.content.map((p) => p.type === 'text'
    ? { type: 'text', text: p.text }
    : { type: 'image', image: typeof p.image === 'string' ? p.image : Buffer.from(p.image.buffer, p.image.byteOffset, p.image.byteLength) });
  return { role: m.role, content };
}

/**
 * The library's vision path as the server uses it: `prepareChat` (images decoded and preprocessed,
 * template rendered, placeholders expanded, text tokenized) then `encodeImages` (the vision tower:
 * embeddings and image blocks for the decoder). Looked up at run time so that a build without
 * them answers a clear 400 instead of failing.
 */
interface VisionApi {
  prepareChat(messages: readonly ChatMessage[]): Promise<{ ids: number[]; images: Float32Array[] }>;
  encodeImages(prepared: { ids: number[]; images: Float32Array[] }): PromptExtra;
}

async function imagePrompt(model: Gemma3, messages: ChatMessage[]): Promise<Prompt> {
  const api = model as unknown as Partial<VisionApi>;
  if (typeof api.prepareChat !== 'function' || typeof api.encodeImages !== 'function') {
    throw new ApiError(400, 'image input is not available in this build: the library has no vision pipeline wired in',
      'invalid_request_error', 'messages', 'images_not_supported');
  }
  const prepared = await api.prepareChat(messages);
  return { ids: prepared.ids, extra: api.encodeImages(prepared) };
}
