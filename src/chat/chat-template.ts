// Renders a conversation with the checkpoint's own Jinja `chat_template` (via @huggingface/jinja, the
// engine transformers.js uses), so fine-tunes with their own templates work and the text is identical to
// the reference processor. Also expands `<start_of_image>` placeholders into the image token sequence.
// It does not tokenize: see the BOS note on `ChatTemplate.render`.
//
// ref: Gemma 3 template behaviour, spec gemma3-architecture.md §4.1–4.3; fixtures in
// test/fixtures/chat-template (renders by @huggingface/jinja@0.5.11, cross-checked with Python jinja2).

import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Template } from '@huggingface/jinja';
import { GemmaError, invalidArgument } from '../errors.js';
import type { ChatMessage } from './messages.js';

/** Text the Gemma 3 template emits as its first token (`{{ bos_token }}`). */
export const GEMMA3_BOS_TOKEN = '<bos>';

export interface RenderOptions {
  /** Append the opening of the model's turn (`<start_of_turn>model\n` for Gemma 3). Default true. */
  addGenerationPrompt?: boolean;
}

export interface ChatTemplateOptions {
  /**
   * Variables the template sees besides `messages` and `add_generation_prompt`: the special tokens
   * (`bos_token`, `eos_token`, …) as in transformers' `apply_chat_template`. `bos_token` defaults to
   * `<bos>`, Gemma 3's.
   */
  specialTokens?: Readonly<Record<string, string>>;
  /** Where the template came from, used in error messages. */
  origin?: string;
}

/** A parsed chat template. Parse once, render many times; `render` is synchronous and reentrant. */
export class ChatTemplate {
  /** The Jinja source. */
  readonly source: string;
  /** Where the template came from (a file, or `<string>`), for messages. */
  readonly origin: string;
  /** Special-token variables passed to the template (`bos_token`, `eos_token`, `boi_token`, …). */
  readonly specialTokens: Readonly<Record<string, string>>;
  readonly #template: Template;

  constructor(source: string, options: ChatTemplateOptions = {}) {
    if (typeof source !== 'string' || source.length === 0) {
      throw invalidArgument('chat template source', 'a non-empty string', source);
    }
    this.source = source;
    this.origin = options.origin ?? '<string>';
    this.specialTokens = Object.freeze({ bos_token: GEMMA3_BOS_TOKEN, ...options.specialTokens });
    try {
      this.#template = new Template(source);
    } catch (err) {
      throw new GemmaError('BAD_FORMAT', `the chat template in ${this.origin} could not be parsed: ${messageOf(err)}`, {
        cause: err,
      });
    }
  }

  /** The text the template emits for `bos_token` (`<bos>` for Gemma 3). */
  get bosToken(): string {
    return this.specialTokens['bos_token'] ?? GEMMA3_BOS_TOKEN;
  }

  /**
   * Renders `messages` to the prompt text.
   *
   * BOS: the Gemma 3 template already starts the text with the literal `<bos>`, so tokenize the result
   * with `tokenizer.encode(text, { addBos: false })` (the tokenizer recognises `<bos>` as the special
   * token, id 2); adding BOS again would give the doubled BOS that degrades output. To also cover a
   * fine-tune whose template does not emit BOS, use `addBos: !renderedStartsWithBos(text, template.bosToken)`.
   *
   * Errors (all `GemmaError` 'INVALID_ARGUMENT'): malformed `messages` (checked before rendering; an
   * empty list is rejected although the Gemma 3 template would render just `<bos>`); a template
   * `raise_exception` or any other template failure on these messages, whose message contains the
   * template's own text, e.g. "Conversation roles must alternate user/assistant/user/assistant/...".
   */
  render(messages: readonly ChatMessage[], options: RenderOptions = {}): string {
    validateMessages(messages);
    const addGenerationPrompt = options.addGenerationPrompt ?? true;
    if (typeof addGenerationPrompt !== 'boolean') {
      throw invalidArgument('addGenerationPrompt', 'a boolean', addGenerationPrompt);
    }
    try {
      return this.#template.render({
        ...this.specialTokens,
        messages: toTemplateValue(messages, new Set()),
        add_generation_prompt: addGenerationPrompt,
      });
    } catch (err) {
      // @huggingface/jinja's raise_exception throws a plain Error carrying the template's own text, like
      // its other runtime errors (and it refuses to let us redefine it), so both are reported alike.
      throw new GemmaError(
        'INVALID_ARGUMENT',
        `the chat template (${this.origin}) rejected these messages: ${messageOf(err)}${failureHint(messages)}`,
        { cause: err },
      );
    }
  }
}

/**
 * Loads the checkpoint's own chat template from model folder `dir`: `chat_template.jinja` if present,
 * else `chat_template.json` (`{"chat_template": "..."}`), else `tokenizer_config.json`'s `chat_template`
 * (a string, or the list form `[{name, template}]`, of which 'default' is used). Special tokens
 * (`bos_token`, `eos_token`, …; strings or `{content}` objects) come from `tokenizer_config.json`.
 *
 * Throws `GemmaError`: 'FILE_NOT_FOUND' if `dir` does not exist, 'UNSUPPORTED_MODEL' if it has no chat
 * template, 'BAD_FORMAT' if a file is not valid JSON or the template does not parse.
 */
export async function loadChatTemplate(dir: string): Promise<ChatTemplate> {
  if (typeof dir !== 'string' || dir.length === 0) throw invalidArgument('dir', 'a model folder path', dir);
  const info = await stat(dir).catch(() => null);
  if (!info?.isDirectory()) {
    throw new GemmaError('FILE_NOT_FOUND', `model folder ${dir} does not exist or is not a folder`);
  }

  const tokenizerConfigPath = join(dir, 'tokenizer_config.json');
  const tokenizerConfig = await readJsonIfExists(tokenizerConfigPath);
  const specialTokens = tokenizerConfig ? specialTokensOf(tokenizerConfig) : {};

  const jinjaPath = join(dir, 'chat_template.jinja');
  const jinja = await readTextIfExists(jinjaPath);
  if (jinja !== null) return new ChatTemplate(jinja, { specialTokens, origin: jinjaPath });

  const jsonPath = join(dir, 'chat_template.json');
  const json = await readJsonIfExists(jsonPath);
  if (json !== null) {
    const source = json['chat_template'];
    if (typeof source !== 'string') {
      throw new GemmaError('BAD_FORMAT', `${jsonPath} has no string "chat_template" field`);
    }
    return new ChatTemplate(source, { specialTokens, origin: jsonPath });
  }

  const fromConfig = tokenizerConfig?.['chat_template'];
  if (fromConfig !== undefined && fromConfig !== null) {
    const origin = `${tokenizerConfigPath} (chat_template)`;
    return new ChatTemplate(pickTemplate(fromConfig, tokenizerConfigPath), { specialTokens, origin });
  }

  throw new GemmaError(
    'UNSUPPORTED_MODEL',
    `no chat template was found in ${dir}: expected chat_template.jinja, chat_template.json or a "chat_template" ` +
      `in tokenizer_config.json (a base/pretrained checkpoint has none; give it a raw prompt instead)`,
  );
}

/** Whether rendered text already begins with the BOS token text, i.e. whether to tokenize with `addBos: false`. */
export function renderedStartsWithBos(text: string, bosToken: string = GEMMA3_BOS_TOKEN): boolean {
  return bosToken.length > 0 && text.startsWith(bosToken);
}

export interface ExpandImageOptions {
  boiToken?: string; // default '<start_of_image>'
  eoiToken?: string; // default '<end_of_image>'
  imageToken?: string; // default '<image_soft_token>'
  /** If given, the number of placeholders must equal it (one per supplied image). */
  numImages?: number;
}

/**
 * The Gemma3Processor's string-level expansion (spec §4.2): every `<start_of_image>` in rendered text
 * becomes `\n\n<start_of_image>` + `imageTokensPerImage` × `<image_soft_token>` + `<end_of_image>\n\n`.
 * Tokenize the result afterwards (the `\n\n` merge with neighbouring newlines into multi-newline
 * tokens, so precomputed ids cannot be spliced in). Pan-and-scan crops are not handled.
 * ref: transformers models/gemma3/processing_gemma3.py (`full_image_sequence`, image_seq_length 256).
 */
export function expandImagePlaceholders(text: string, imageTokensPerImage: number, options: ExpandImageOptions = {}): string {
  if (typeof text !== 'string') throw invalidArgument('text', 'a string', text);
  if (!Number.isInteger(imageTokensPerImage) || imageTokensPerImage <= 0) {
    throw invalidArgument('imageTokensPerImage', 'a positive integer', imageTokensPerImage);
  }
  const boi = options.boiToken ?? '<start_of_image>';
  const eoi = options.eoiToken ?? '<end_of_image>';
  const imageToken = options.imageToken ?? '<image_soft_token>';
  const pieces = text.split(boi);
  const count = pieces.length - 1;
  if (options.numImages !== undefined && options.numImages !== count) {
    throw new GemmaError(
      'INVALID_ARGUMENT',
      `the prompt has ${count} ${boi} placeholder(s) but ${options.numImages} image(s) were supplied; ` +
        `they must match (text that contains ${boi} literally also counts)`,
    );
  }
  return pieces.join(`\n\n${boi}${imageToken.repeat(imageTokensPerImage)}${eoi}\n\n`);
}

// ---------------------------------------------------------------------------------------------------

function validateMessages(messages: unknown): void {
  if (!Array.isArray(messages) || messages.length === 0) {
    throw invalidArgument('messages', 'a non-empty array of chat messages', messages);
  }
  messages.forEach((message: unknown, i) => {
    const where = `messages[${i}]`;
    if (!isObject(message)) throw invalidArgument(where, 'an object { role, content }', message);
    const { role, content } = message;
    if (typeof role !== 'string' || role.length === 0) throw invalidArgument(`${where}.role`, 'a non-empty string', role);
    if (typeof content === 'string') return;
    if (!Array.isArray(content)) {
      const inner = invalidArgument(`${where}.content`, 'a string or an array of content parts', content);
      throw new GemmaError('INVALID_ARGUMENT', `Invalid content type: ${inner.message}`);
    }
    content.forEach((part: unknown, j) => {
      const at = `${where}.content[${j}]`;
      if (!isObject(part) || typeof part['type'] !== 'string') {
        throw invalidArgument(at, 'an object with a string "type" (e.g. { type: "text", text })', part);
      }
      if (part['type'] === 'text' && typeof part['text'] !== 'string') {
        throw invalidArgument(`${at}.text`, 'a string', part['text']);
      }
    });
  });
}

/**
 * A copy of the messages as plain data for the template. @huggingface/jinja turns every object into a map
 * of its own keys, so binary image data (a Uint8Array of pixels, a Buffer) would be copied entry by entry;
 * such values become a short descriptive string. Functions and symbols are dropped.
 */
function toTemplateValue(value: unknown, seen: Set<object>): unknown {
  switch (typeof value) {
    case 'string':
    case 'number':
    case 'boolean':
    case 'undefined':
      return value;
    case 'bigint':
      return value.toString();
    case 'function':
    case 'symbol':
      return undefined;
  }
  if (value === null) return null;
  const object = value as object;
  if (seen.has(object)) return '[Circular]';
  if (Array.isArray(object)) {
    seen.add(object);
    const out = object.map((item) => toTemplateValue(item, seen));
    seen.delete(object);
    return out;
  }
  const proto: unknown = Object.getPrototypeOf(object);
  if (proto !== Object.prototype && proto !== null) return `[object ${object.constructor?.name ?? 'Object'}]`;
  seen.add(object);
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(object)) {
    const converted = toTemplateValue(item, seen);
    if (converted !== undefined || item === undefined) out[key] = converted;
  }
  seen.delete(object);
  return out;
}

/** A pointer for the one failure of the Gemma 3 template that is not a `raise_exception`. */
function failureHint(messages: readonly ChatMessage[]): string {
  const first = messages[0];
  if (first?.role === 'system' && Array.isArray(first.content) && first.content[0]?.type !== 'text') {
    return ' (hint: Gemma 3 templates use only the first item of a system message content list, which must be a text item)';
  }
  return '';
}

function pickTemplate(value: unknown, path: string): string {
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) {
    const names = value.map((entry: unknown) => (isObject(entry) ? String(entry['name']) : '?'));
    const entry: unknown = value.find((e: unknown) => isObject(e) && e['name'] === 'default');
    if (!isObject(entry)) {
      throw new GemmaError(
        'UNSUPPORTED_MODEL',
        `${path} has named chat templates (${names.join(', ')}) but none named "default"`,
      );
    }
    if (typeof entry['template'] !== 'string') {
      throw new GemmaError('BAD_FORMAT', `${path}: the "default" chat template has no string "template"`);
    }
    return entry['template'];
  }
  throw new GemmaError('BAD_FORMAT', `${path}: "chat_template" must be a string or a list of {name, template}`);
}

/** `*_token` entries of tokenizer_config.json whose value is a string or an `{content: string}` object. */
function specialTokensOf(config: Record<string, unknown>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(config)) {
    if (!key.endsWith('_token')) continue;
    if (typeof value === 'string') out[key] = value;
    else if (isObject(value) && typeof value['content'] === 'string') out[key] = value['content'];
  }
  return out;
}

async function readTextIfExists(path: string): Promise<string | null> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if (isNotFound(err)) return null;
    throw new GemmaError('FILE_NOT_FOUND', `could not read ${path}: ${messageOf(err)}`, { cause: err });
  }
}

async function readJsonIfExists(path: string): Promise<Record<string, unknown> | null> {
  const text = await readTextIfExists(path);
  if (text === null) return null;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new GemmaError('BAD_FORMAT', `${path} is not valid JSON: ${messageOf(err)}`, { cause: err });
  }
  if (!isObject(parsed)) throw new GemmaError('BAD_FORMAT', `${path} must hold a JSON object`);
  return parsed;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isNotFound(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
