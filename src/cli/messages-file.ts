// --messages FILE.json: a conversation in the Hugging Face form, read and checked for Gemma 3's
// shape (roles, order) so that a wrong file is named by position and role; image paths are
// resolved against the file's folder.
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { GemmaError } from '../index.js';
import type { ChatMessage, ContentPart } from '../index.js';
import { isUrl } from './options.js';

/**
 * Reads a --messages file: a JSON array of chat messages in the Hugging Face form
 * (`[{"role": "user", "content": [{"type": "image", "image": "cat.png"}, {"type": "text", "text": "..."}]}]`).
 * Image paths (`image`, `url` or `path` of an image part) are relative to the JSON file.
 */
export function readMessagesFile(file: string): ChatMessage[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new GemmaError(code === 'ENOENT' ? 'FILE_NOT_FOUND' : 'INVALID_ARGUMENT', `cannot read --messages file ${file}: ${(err as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new GemmaError('BAD_FORMAT', `--messages file ${file} is not valid JSON: ${(err as Error).message}`);
  }
  if (!Array.isArray(json) || json.length === 0) {
    throw new GemmaError('INVALID_ARGUMENT', `--messages file ${file} must hold a non-empty JSON array of {role, content} messages`);
  }
  const base = dirname(resolve(file));
  return json.map((message: unknown, i) => {
    if (typeof message !== 'object' || message === null || Array.isArray(message)) {
      throw new GemmaError('INVALID_ARGUMENT', `--messages file ${file}: message ${i} is not an object {role, content}`);
    }
    const m = message as ChatMessage;
    checkRole(file, json, i);
    if (!Array.isArray(m.content)) return m;
    const content = m.content.map((part) => {
      if (typeof part !== 'object' || part === null || part.type !== 'image') return part;
      const out: Record<string, unknown> = { ...part };
      for (const key of ['image', 'url', 'path']) {
        const v = out[key];
        if (typeof v === 'string' && v !== '' && !isUrl(v) && !isAbsolute(v)) out[key] = resolve(base, v);
      }
      return out as ContentPart;
    });
    return { ...m, content };
  });
}

/**
 * Gemma 3's conversation shape, checked here so that a wrong file is named by position and role
 * instead of by the chat template's internal error: an optional system message first, then user
 * and assistant (or model) turns alternating, starting with the user.
 */
function checkRole(file: string, messages: readonly unknown[], i: number): void {
  const roleOf = (k: number): unknown => (messages[k] as { role?: unknown }).role;
  const role = roleOf(i);
  const where = `--messages file ${file}: message ${i}`;
  const offset = roleOf(0) === 'system' ? 1 : 0;
  if (role === 'system') {
    if (i === 0) return;
    throw new GemmaError('INVALID_ARGUMENT', `${where} has role "system"; only the first message may be a system message`);
  }
  if (role !== 'user' && role !== 'assistant' && role !== 'model') {
    throw new GemmaError('INVALID_ARGUMENT',
      `${where} has ${typeof role === 'string' ? `role ${JSON.stringify(role)}` : role === undefined ? 'no role' : 'a role that is not a string'}; ` +
      'the roles are "system" (first message only), "user" and "assistant"');
  }
  const expected = (i - offset) % 2 === 0 ? 'user' : 'assistant';
  if ((expected === 'user') !== (role === 'user')) {
    throw new GemmaError('INVALID_ARGUMENT',
      `${where} has role ${JSON.stringify(role)} where a${expected === 'user' ? ' user' : 'n assistant'} message belongs: ` +
      'after an optional system message, the roles alternate user, assistant, user, ...');
  }
}
