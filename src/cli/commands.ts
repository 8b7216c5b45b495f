// The one-shot subcommands: run, tokenize, logits.
import { createInterface } from 'node:readline';
import { GemmaError } from '../index.js';
import type { ChatMessage, ContentPart } from '../index.js';
import type { ChatOptions } from '../index.js';
import { loadTokenizer } from '../advanced.js';
import type { GenerationChunk } from '../index.js';
import {
  GENERATION_FLAGS, GENERATION_HELP, IMAGE_FLAGS, MODEL_FLAGS, MODEL_HELP, generationOptions, imagePart, loadFromFlags, modelDir,
  numberFlag, parse, parseIds,
} from './options.js';
import { readMessagesFile } from './messages-file.js';

export const RUN_HELP = `gemma3 run [--model PATH | --demo] [options] PROMPT

Prints the model's reply to PROMPT as it streams (statistics on stderr).
  --ids 2,105,...      raw token ids instead of a prompt, no chat template
  --raw                complete the prompt as plain text, no chat template
  --messages FILE.json a JSON array of chat messages in the Hugging Face form, e.g.
                       [{"role": "user", "content": [{"type": "image", "image": "cat.png"},
                       {"type": "text", "text": "What is this?"}]}]; image paths relative to the file
  --json               print one JSON object at the end instead of streaming

${GENERATION_HELP}

${MODEL_HELP}`;

export const TOKENIZE_HELP = `gemma3 tokenize [--model PATH | --demo] [--no-bos] [--json | --jsonl] [TEXT]

Prints the token ids of TEXT (else of stdin), one "id<TAB>piece" line each.
  --no-bos             do not prepend <bos>
  --json               print {"ids": [...]} instead
  --jsonl              read one JSON string per stdin line, print one JSON array of ids per line

${MODEL_HELP}`;

export const LOGITS_HELP = `gemma3 logits [--model PATH | --demo] (--ids 2,105,... | --messages FILE.json) [--top K] [--json]

Prints, for every position of the input, the log-sum-exp of the logits and the best next tokens.
  --ids 2,105,...      token ids, as given (no template, no <bos> added)
  --messages FILE.json chat messages rendered with the model's template (see gemma3 run --help)
  --pan-and-scan       (with --messages) also show the model crops of very wide or tall pictures
  --allow-remote-images  accept http(s) image URLs in the messages
  --top K              best tokens per position (default 10)
  --json               print {"input_ids": [...], "positions": [...]}

${MODEL_HELP}`;

export async function runRun(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, {
    ...MODEL_FLAGS, ...GENERATION_FLAGS, ...IMAGE_FLAGS, ids: { type: 'string' }, raw: { type: 'boolean' }, json: { type: 'boolean' },
    messages: { type: 'string' },
  }, RUN_HELP);
  const options: ChatOptions = generationOptions(values);
  if (values['pan-and-scan']) options.panAndScan = true;
  const prompt = positionals.join(' ');
  const images: string[] = values.image ?? [];
  const sources = ['--ids', '--messages'].filter((f) => values[f.slice(2)] !== undefined);
  if (sources.length > 1) throw new GemmaError('INVALID_ARGUMENT', 'give only one of --ids and --messages');
  if (sources.length && prompt) throw new GemmaError('INVALID_ARGUMENT', `give either ${sources[0]} or a PROMPT, not both`);
  if (sources.length && values.system !== undefined) throw new GemmaError('INVALID_ARGUMENT', `--system cannot be used with ${sources[0]}`);
  if (sources.length && images.length) {
    throw new GemmaError('INVALID_ARGUMENT', `--image cannot be used with ${sources[0]}${values.messages !== undefined ? ' (put image parts in the messages)' : ''}`);
  }
  if (values.raw && (images.length || values.messages !== undefined)) {
    throw new GemmaError('INVALID_ARGUMENT', '--raw cannot be used with --image or --messages (images need the chat template)');
  }
  if (!sources.length && !prompt && !images.length) {
    throw new GemmaError('INVALID_ARGUMENT', 'gemma3 run needs a PROMPT (or --image, --ids or --messages)');
  }
  const ids = values.ids !== undefined ? parseIds(values.ids) : undefined;
  const fromFile = values.messages !== undefined ? readMessagesFile(values.messages) : undefined;
  const model = await loadFromFlags(values);
  const controller = new AbortController();
  process.once('SIGINT', () => controller.abort());
  options.signal = controller.signal;
  let stream: AsyncGenerator<GenerationChunk>;
  if (ids) stream = model.complete({ ids }, options);
  else if (values.raw) stream = model.complete(prompt, options);
  else if (fromFile) stream = model.chat(fromFile, options);
  else {
    const messages: ChatMessage[] = [];
    if (values.system !== undefined) messages.push({ role: 'system', content: values.system });
    if (images.length) {
      const content: ContentPart[] = images.map(imagePart);
      if (prompt) content.push({ type: 'text', text: prompt });
      messages.push({ role: 'user', content });
    } else {
      messages.push({ role: 'user', content: prompt });
    }
    stream = model.chat(messages, options);
  }
  let text = '';
  const generated: number[] = [];
  for await (const chunk of stream) {
    text += chunk.text;
    generated.push(...chunk.tokenIds);
    if (!values.json) process.stdout.write(chunk.text);
    if (chunk.finishReason) {
      if (values.json) {
        process.stdout.write(JSON.stringify({ generated_ids: generated, text, finish_reason: chunk.finishReason }) + '\n');
      } else {
        process.stdout.write('\n');
        const s = chunk.stats!;
        process.stderr.write(`gemma3: ${s.promptTokens} prompt tokens (${s.promptTokensPerSecond.toFixed(1)}/s), ` +
          `${s.generatedTokens} generated (${s.generatedTokensPerSecond.toFixed(1)}/s), finish: ${chunk.finishReason}\n`);
      }
    }
  }
  model.dispose();
  return 0;
}

export async function runTokenize(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, {
    ...MODEL_FLAGS, 'no-bos': { type: 'boolean' }, json: { type: 'boolean' }, jsonl: { type: 'boolean' },
  }, TOKENIZE_HELP);
  const tokenizer = await loadTokenizer(await modelDir(values));
  const addBos = !values['no-bos'];
  if (values.jsonl) {
    if (positionals.length) throw new GemmaError('INVALID_ARGUMENT', '--jsonl reads stdin; do not give TEXT');
    let lineNo = 0;
    for await (const line of createInterface({ input: process.stdin, crlfDelay: Infinity })) {
      lineNo++;
      if (line.trim() === '') continue;
      let text: unknown;
      try {
        text = JSON.parse(line);
      } catch {
        throw new GemmaError('INVALID_ARGUMENT', `stdin line ${lineNo} is not JSON (expected one JSON string per line)`);
      }
      if (typeof text !== 'string') throw new GemmaError('INVALID_ARGUMENT', `stdin line ${lineNo} is not a JSON string`);
      process.stdout.write(JSON.stringify(tokenizer.encode(text, { addBos })) + '\n');
    }
    return 0;
  }
  const text = positionals.length ? positionals.join(' ') : await readStdin();
  const ids = tokenizer.encode(text, { addBos });
  if (values.json) process.stdout.write(JSON.stringify({ ids }) + '\n');
  else for (const id of ids) process.stdout.write(`${id}\t${JSON.stringify(tokenizer.piece(id))}\n`);
  return 0;
}

export async function runLogits(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, {
    ...MODEL_FLAGS, ids: { type: 'string' }, messages: { type: 'string' }, 'pan-and-scan': { type: 'boolean' },
    'allow-remote-images': { type: 'boolean' }, top: { type: 'string' }, json: { type: 'boolean' },
  }, LOGITS_HELP);
  if (positionals.length) {
    throw new GemmaError('INVALID_ARGUMENT', `gemma3 logits takes --ids or --messages, not text (got ${JSON.stringify(positionals.join(' '))})`);
  }
  if ((values.ids === undefined) === (values.messages === undefined)) {
    throw new GemmaError('INVALID_ARGUMENT', 'gemma3 logits needs exactly one of --ids 2,105,... and --messages FILE.json');
  }
  if (values['pan-and-scan'] && values.ids !== undefined) throw new GemmaError('INVALID_ARGUMENT', '--pan-and-scan needs --messages');
  const ids = values.ids !== undefined ? parseIds(values.ids) : undefined;
  const messages = values.messages !== undefined ? readMessagesFile(values.messages) : undefined;
  const top = numberFlag('top', values.top, true) ?? 10;
  const model = await loadFromFlags(values);
  const result = ids
    ? model.logits(ids, top)
    : await model.logitsForMessages(messages!, top, values['pan-and-scan'] ? { panAndScan: true } : {});
  if (values.json) {
    process.stdout.write(JSON.stringify({ input_ids: result.inputIds, positions: result.positions }) + '\n');
  } else {
    result.positions.forEach((p, i) => {
      const best = p.top.slice(0, 5).map(([id, l]) => `${id}:${l.toFixed(3)}`).join(' ');
      process.stdout.write(`${i}\t${result.inputIds[i]}\tlse=${p.logsumexp.toFixed(4)}\t${best}\n`);
    });
  }
  model.dispose();
  return 0;
}

async function readStdin(): Promise<string> {
  if (process.stdin.isTTY) throw new GemmaError('INVALID_ARGUMENT', 'give TEXT, or pipe text on stdin');
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
