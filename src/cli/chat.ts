// gemma3 chat: an interactive multi-turn conversation in the terminal. Ctrl+C stops a reply;
// /reset starts over; /exit (or Ctrl+D) quits.
import { createInterface } from 'node:readline/promises';
import type { ChatMessage } from '../chat/messages.js';
import { GENERATION_FLAGS, MODEL_FLAGS, generationOptions, loadFromFlags, parse } from './options.js';

export async function runChat(args: string[]): Promise<number> {
  const { values } = parse(args, { ...MODEL_FLAGS, ...GENERATION_FLAGS });
  const options = generationOptions(values);
  const model = await loadFromFlags(values);
  const history: ChatMessage[] = [];
  if (values.system !== undefined) history.push({ role: 'system', content: values.system });
  const rl = createInterface({ input: process.stdin, output: process.stdout, terminal: process.stdin.isTTY });
  let controller: AbortController | null = null;
  rl.on('SIGINT', () => {
    if (controller) controller.abort();
    else rl.close();
  });
  process.stdout.write('Chat with Gemma 3. Commands: /reset (new conversation), /exit. Ctrl+C stops a reply.\n');
  for (;;) {
    let line: string;
    try {
      line = await rl.question('> ');
    } catch {
      break; // stdin closed
    }
    const text = line.trim();
    if (text === '') continue;
    if (text === '/exit' || text === '/quit') break;
    if (text === '/reset') {
      history.splice(values.system !== undefined ? 1 : 0);
      process.stdout.write('(new conversation)\n');
      continue;
    }
    history.push({ role: 'user', content: text });
    controller = new AbortController();
    let reply = '';
    try {
      for await (const chunk of model.chat(history, { ...options, signal: controller.signal })) {
        reply += chunk.text;
        process.stdout.write(chunk.text);
        if (chunk.finishReason) {
          const s = chunk.stats!;
          process.stdout.write(`\n[${s.generatedTokens} tokens, ${s.generatedTokensPerSecond.toFixed(1)} tokens/s` +
            `${chunk.finishReason === 'stop' ? '' : `, ${chunk.finishReason}`}]\n`);
        }
      }
    } catch (err) {
      history.pop();
      throw err;
    } finally {
      controller = null;
    }
    history.push({ role: 'assistant', content: reply });
  }
  rl.close();
  model.dispose();
  return 0;
}
