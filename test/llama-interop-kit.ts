// What the node-llama-cpp interop tests share (test/llama-interop*.test.ts): the chat prompt they
// generate from, node-llama-cpp's runtime (or why it cannot run here), both engines' greedy
// continuations of it, and a seeded PRNG for their random checkpoints.
import { collect, type Gemma3 } from '../src/index.js';
import { fixturePath } from './helpers.js';

export const TEXT = fixturePath('tiny-text');
/** <bos><start_of_turn>user\nHello world, how are you?<end_of_turn>\n<start_of_turn>model\n */
export const PROMPT = [2, 105, 2364, 107, 9259, 1902, 236764, 1217, 659, 611, 236881, 106, 107, 105, 4368, 107];
export const STEPS = 16;

export type Llama = Awaited<ReturnType<typeof import('node-llama-cpp').getLlama>>;
type Token = import('node-llama-cpp').Token;

/** node-llama-cpp's runtime, or why it cannot run on this machine (the only reason to skip). */
export async function startLlama(): Promise<{ llama: Llama } | { reason: string }> {
  try {
    const { getLlama, LlamaLogLevel } = await import('node-llama-cpp');
    return { llama: await getLlama({ gpu: false, logLevel: LlamaLogLevel.error, build: 'never' }) };
  } catch (e) {
    return { reason: `node-llama-cpp cannot run on this machine: ${(e as Error).message.split('\n')[0]}` };
  }
}

/** A small seeded PRNG, so a checkpoint (and the expected agreement) is reproducible. */
export { mulberry32 as rng } from './fuzz-mutate.js';

/** llama.cpp's greedy continuation of PROMPT: temperature 0 is its plain argmax sampler (llama_sampler_init_greedy). */
export async function llamaGreedy(llama: Llama, file: string): Promise<number[]> {
  // One thread: on a busy machine ggml's spinning worker threads are slower than one.
  const model = await llama.loadModel({ modelPath: file });
  try {
    const context = await model.createContext({ contextSize: 64, threads: 1 });
    const out: number[] = [];
    for await (const token of context.getSequence().evaluate(PROMPT as Token[], { temperature: 0 })) {
      out.push(token);
      if (out.length === STEPS) break;
    }
    await context.dispose();
    return out;
  } finally {
    await model.dispose();
  }
}

/** Our greedy continuation of PROMPT (no stop tokens, STEPS of them). */
export async function ourGreedy(model: Gemma3): Promise<number[]> {
  return (await collect(model.complete({ ids: PROMPT }, { temperature: 0, maxTokens: STEPS, stopTokenIds: [] }))).tokenIds;
}
