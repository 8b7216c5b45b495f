// gemma3 chat: an interactive multi-turn conversation in the terminal. Ctrl+C stops a reply;
// /image PATH attaches a picture to the next message; /reset starts over; /exit (or Ctrl+D) quits.
import { existsSync, statSync } from 'node:fs';
import { createInterface } from 'node:readline/promises';
import type { ChatMessage, ContentPart } from '../index.js';
import { GemmaError } from '../index.js';
import { decodeImage } from '../advanced.js';
import type { ChatOptions } from '../index.js';
import {
  GENERATION_FLAGS, GENERATION_HELP, IMAGE_FLAGS, MODEL_FLAGS, MODEL_HELP, generationOptions, imagePart, loadFromFlags, parse,
} from './options.js';

export const CHAT_HELP = `gemma3 chat [--model PATH | --demo] [options]

An interactive multi-turn conversation in the terminal (lines may also be piped on stdin).
In the chat: /image PATH attaches a picture to your next message (vision models), /reset starts
a new conversation, /exit (or Ctrl+D) quits; Ctrl+C stops a reply.

${GENERATION_HELP}

${MODEL_HELP}`;

export async function runChat(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, { ...MODEL_FLAGS, ...GENERATION_FLAGS, ...IMAGE_FLAGS }, CHAT_HELP);
  if (positionals.length) {
    throw new GemmaError('INVALID_ARGUMENT', `gemma3 chat takes no PROMPT (got ${JSON.stringify(positionals.join(' '))}); type it after it starts, or use gemma3 run`);
  }
  const options: ChatOptions = generationOptions(values);
  if (values['pan-and-scan']) options.panAndScan = true;
  // --image files attach to the first message.
  let pending: ContentPart[] = [];
  for (const path of (values.image ?? []) as string[]) pending.push(await checkedImagePart(path));
  const model = await loadFromFlags(values);
  if (pending.length && !model.hasVision) {
    model.dispose();
    throw new GemmaError('INVALID_ARGUMENT', `the model in ${model.path} is text-only (it has no vision tower), so --image cannot be used`);
  }
  const history: ChatMessage[] = [];
  if (values.system !== undefined) history.push({ role: 'system', content: values.system });
  const rl = createInterface({ input: process.stdin, output: process.stdout, terminal: process.stdin.isTTY });
  let controller: AbortController | null = null;
  rl.on('SIGINT', () => {
    if (controller) controller.abort();
    else rl.close();
  });
  const imageHelp = model.hasVision ? ' /image PATH (attach a picture to the next message),' : '';
  process.stdout.write(`Chat with Gemma 3. Commands:${imageHelp} /reset (new conversation), /exit. Ctrl+C stops a reply.\n`);
  if (pending.length) process.stdout.write(`(${pending.length} image(s) attached to your first message)\n`);
  // The line iterator buffers input, so lines piped in while a reply is generated are not lost.
  const lines = rl[Symbol.asyncIterator]();
  rl.setPrompt('> ');
  for (;;) {
    rl.prompt();
    const next = await lines.next();
    if (next.done) break; // stdin closed
    const text = (next.value as string).trim();
    if (text === '') continue;
    if (text === '/exit' || text === '/quit') break;
    if (text === '/reset') {
      history.splice(values.system !== undefined ? 1 : 0);
      pending = [];
      process.stdout.write('(new conversation)\n');
      continue;
    }
    if (text === '/image' || text.startsWith('/image ')) {
      const path = text.slice('/image'.length).trim();
      try {
        if (!model.hasVision) throw new GemmaError('INVALID_ARGUMENT', 'this model is text-only (it has no vision tower), so it cannot take images');
        if (!path) throw new GemmaError('INVALID_ARGUMENT', 'usage: /image PATH');
        pending.push(await checkedImagePart(path));
        process.stdout.write(`(image attached to your next message: ${pending.length} pending)\n`);
      } catch (err) {
        if (!(err instanceof GemmaError)) throw err;
        process.stdout.write(`gemma3: ${err.message}\n`);
      }
      continue;
    }
    const content: string | ContentPart[] = pending.length ? [...pending, { type: 'text', text }] : text;
    history.push({ role: 'user', content });
    controller = new AbortController();
    let reply = '';
    try {
      for await (const chunk of model.chat(history, { ...options, signal: controller.signal })) {
        reply += chunk.text;
        process.stdout.write(chunk.text);
        if (chunk.finishReason) {
          const s = chunk.stats!;
          process.stdout.write(`\n[${s.promptTokens} prompt tokens, ${s.generatedTokens} tokens, ${s.generatedTokensPerSecond.toFixed(1)} tokens/s` +
            `${chunk.finishReason === 'stop' ? '' : `, ${chunk.finishReason}`}]\n`);
        }
      }
    } catch (err) {
      history.pop();
      // A bad picture or a full context leaves the conversation usable; anything else ends it.
      if (err instanceof GemmaError && ['BAD_FORMAT', 'INVALID_ARGUMENT', 'FILE_NOT_FOUND', 'CONTEXT_FULL'].includes(err.code)) {
        process.stdout.write(`\ngemma3: ${err.message}\n`);
        // Only the picture at fault is dropped (a URL can fail only once it is fetched): the others
        // stay attached and the question is offered again.
        if (err.imageIndex !== undefined && pending[err.imageIndex] !== undefined) {
          pending.splice(err.imageIndex, 1);
          process.stdout.write(`(that image was removed; your message was not sent${pending.length ? `; ${pending.length} image(s) still attached` : ''})\n`);
          if (process.stdin.isTTY) rl.write(text);
        } else {
          pending = [];
        }
        continue;
      }
      throw err;
    } finally {
      controller = null;
    }
    pending = [];
    history.push({ role: 'assistant', content: reply });
  }
  rl.close();
  model.dispose();
  return 0;
}

/**
 * An image part for a local file that decodes as a picture, so that a wrong path or file is refused
 * when attached, before it can cost the message it would go with (URLs are fetched when sent).
 */
async function checkedImagePart(path: string): Promise<ContentPart> {
  const part = imagePart(path);
  const image = (part as { image: string }).image;
  if (!/^(data|https?|file):/i.test(image)) {
    if (!existsSync(image)) throw new GemmaError('FILE_NOT_FOUND', `image file not found: ${image}`);
    if (!statSync(image).isFile()) throw new GemmaError('INVALID_ARGUMENT', `image path is not a file: ${image}`);
    await decodeImage(image);
  }
  return part;
}
