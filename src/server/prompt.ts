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

/** The library's vision path: prepareChat (decode, preprocess, render, expand, tokenize), then the tower. */
async function imagePrompt(model: Gemma3, messages: ChatMessage[]): Promise<Prompt> {
  const prepared = await model.prepareChat(messages);
  return { ids: prepared.ids, extra: model.encodeImages(prepared) };
}
