// Benchmark (not a test): the server's prompt cache on a follow-up turn. Through the HTTP server
// and the `openai` client, a conversation of about --history tokens is sent once (cold: every
// token computed), then continued by a ~30-token message: its time to first token is compared
// with that of a fresh ~30-token conversation (cache_prompt: false). Target (issue 12): the
// follow-up's time to first token <= 1.5x the fresh prompt's (the history is not recomputed).
// Usage: node dist/bench/prompt-cache.js [--model DIR|FILE.gguf] [--history 4000] [--rounds 3] [--context N] [--json]
import { parseArgs } from 'node:util';
import OpenAI from 'openai';
import { startServer } from '../src/server/server.js';
import { fixturePath } from '../test/helpers.js';

const { values } = parseArgs({ options: {
  model: { type: 'string' }, history: { type: 'string' }, rounds: { type: 'string' }, context: { type: 'string' }, json: { type: 'boolean' },
} });
const modelPath = values.model ?? fixturePath('tiny-text');
const HISTORY = Number(values.history ?? 4000);
const ROUNDS = Number(values.rounds ?? 3);
const CONTEXT = Number(values.context ?? Math.max(8192, 2 * HISTORY));
for (const [name, v] of [['history', HISTORY], ['rounds', ROUNDS], ['context', CONTEXT]] as const) {
  if (!Number.isInteger(v) || v < 1) throw new Error(`--${name} must be a positive integer, got ${v}`);
}

const SENTENCES = [
  'The harbour town woke early, and the fishing boats slipped out before the sun had cleared the hills.',
  'Our plan for the garden is to move the roses to the south wall, where they get light all afternoon.',
  'I read that the old railway bridge will be repaired next spring, although nobody has said who pays.',
  'Can you remind me which of the three recipes used brown butter and which one needed fresh thyme?',
  'The meeting notes mention a budget review in March, a new supplier for paper, and two open positions.',
  'When the storm passed, the children ran down to the beach to look for glass worn smooth by the waves.',
];
/** About `tokens` tokens of ordinary prose (English runs near 1.3 tokens a word here). */
function prose(tokens: number, offset: number): string {
  const out: string[] = [];
  let estimate = 0;
  for (let i = offset; estimate < tokens; i++) {
    const s = SENTENCES[i % SENTENCES.length]!;
    out.push(s);
    estimate += Math.round(s.split(' ').length * 1.3);
  }
  return out.join(' ');
}

type Message = { role: 'user' | 'assistant'; content: string };
/** A conversation of about `tokens` tokens: alternating turns of ~400 tokens, ending with the assistant. */
function conversation(tokens: number): Message[] {
  const turns: Message[] = [];
  for (let t = 0; t * 400 < tokens; t++) turns.push({ role: t % 2 === 0 ? 'user' : 'assistant', content: prose(400, t) });
  if (turns.length % 2 === 1) turns.push({ role: 'assistant', content: 'Understood.' });
  return turns;
}
const FOLLOW_UPS = [
  'Thanks. Now please list the three most important points of everything above, one short line for each of them.',
  'Good. Which of the topics above would you look into first, and why? Please answer in two or three sentences only.',
  'One more thing: summarise the storm paragraph in a single sentence, and say which day of the week it seems to be.',
];
const FRESH = [
  'Please write two short sentences about a quiet harbour town in the early morning, before the boats go out to sea.',
  'Please give me three ideas for a small garden on a south-facing wall that gets light for the whole afternoon.',
  'Please explain in two sentences why old railway bridges need repairs, and who usually pays for that kind of work.',
];

interface Timed { ttftMs: number; promptTokens: number; cachedTokens: number; reply: string }

async function timed(openai: OpenAI, model: string, messages: Message[], cachePrompt = true): Promise<Timed> {
  const started = performance.now();
  const body = { model, messages, max_tokens: 8, temperature: 0, stream: true as const, stream_options: { include_usage: true }, ...(cachePrompt ? {} : { cache_prompt: false }) };
  const stream = await openai.chat.completions.create(body as OpenAI.ChatCompletionCreateParamsStreaming);
  let ttftMs = 0;
  let reply = '';
  let promptTokens = 0;
  let cachedTokens = 0;
  for await (const chunk of stream) {
    const text = chunk.choices[0]?.delta?.content;
    if (text) {
      if (!ttftMs) ttftMs = performance.now() - started;
      reply += text;
    }
    if (chunk.usage) {
      promptTokens = chunk.usage.prompt_tokens;
      cachedTokens = chunk.usage.prompt_tokens_details?.cached_tokens ?? 0;
    }
  }
  if (!ttftMs) ttftMs = performance.now() - started; // an empty reply: its end is its first token
  return { ttftMs, promptTokens, cachedTokens, reply };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const server = await startServer({ modelPath, host: '127.0.0.1', port: 0, parallel: 1, context: CONTEXT });
try {
  const model = server.engine.info.id;
  const openai = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'none', maxRetries: 0, timeout: 3_600_000 });
  const history = conversation(HISTORY);
  const cold = await timed(openai, model, [...history, { role: 'user', content: 'Please go on.' }]);
  const followUps: Timed[] = [];
  const fresh: Timed[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    // The reply of the cold turn is part of the history the client sends back.
    const turn = [...history, { role: 'user' as const, content: 'Please go on.' }, { role: 'assistant' as const, content: cold.reply }];
    followUps.push(await timed(openai, model, [...turn, { role: 'user', content: FOLLOW_UPS[r % FOLLOW_UPS.length]! }]));
    fresh.push(await timed(openai, model, [{ role: 'user', content: FRESH[r % FRESH.length]! }], false));
  }
  const row = {
    bench: 'prompt-cache', model, history_tokens: cold.promptTokens, rounds: ROUNDS,
    cold_ttft_ms: Math.round(cold.ttftMs),
    follow_up_prompt_tokens: followUps[0]!.promptTokens,
    follow_up_cached_tokens: median(followUps.map((f) => f.cachedTokens)),
    follow_up_ttft_ms: Math.round(median(followUps.map((f) => f.ttftMs))),
    fresh_prompt_tokens: fresh[0]!.promptTokens,
    fresh_ttft_ms: Math.round(median(fresh.map((f) => f.ttftMs))),
  };
  const ratio = row.follow_up_ttft_ms / Math.max(1, row.fresh_ttft_ms);
  const lines = [
    `| case | prompt tokens | cached | time to first token (median of ${ROUNDS}) |`,
    '|---|---:|---:|---:|',
    `| ${cold.promptTokens}-token conversation, cold | ${cold.promptTokens} | ${cold.cachedTokens} | ${row.cold_ttft_ms} ms |`,
    `| same conversation + a ~30-token message | ${row.follow_up_prompt_tokens} | ${row.follow_up_cached_tokens} | ${row.follow_up_ttft_ms} ms |`,
    `| fresh ~30-token conversation (cache_prompt: false) | ${row.fresh_prompt_tokens} | 0 | ${row.fresh_ttft_ms} ms |`,
    `| follow-up / fresh | | | ${ratio.toFixed(2)}x (target <= 1.5x) |`,
  ];
  process.stdout.write(lines.join('\n') + '\n');
  if (values.json) process.stdout.write(JSON.stringify({ ...row, follow_up_over_fresh: Math.round(ratio * 100) / 100 }) + '\n');
} finally {
  await server.close();
}
