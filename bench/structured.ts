// Cost of constrained decoding on a real model: decode tokens/s with a JSON schema vs without,
// xgrammar's one-time setup and compile time for a typical schema, and the per-step mask time
// (computing the next-token bitmask and applying it to a logits row).
//
//   node dist/bench/structured.js MODEL [TOKENS=128] [RUNS=3]
//
// MODEL: a checkpoint folder or a .gguf file. Greedy decoding; the unconstrained runs ignore the
// stop ids so they always decode TOKENS tokens; the constrained runs decode until the JSON is
// complete (the schema allows long replies) or TOKENS.
import { collect, load } from '../src/index.js';
import { GrammarEngine } from '../src/grammar/grammar.js';
import { grammarSpecOf } from '../src/grammar/options.js';

const [modelPath, tokensArg, runsArg] = process.argv.slice(2);
if (!modelPath) {
  console.error('usage: node dist/bench/structured.js MODEL [TOKENS=128] [RUNS=3]');
  process.exit(2);
}
const TOKENS = Number(tokensArg ?? 128);
const RUNS = Number(runsArg ?? 3);

/** A typical extraction schema: an invoice with line items (long enough to decode many tokens). */
const SCHEMA = {
  type: 'object',
  properties: {
    invoice_number: { type: 'string', pattern: '^INV-[0-9]{6}$' },
    date: { type: 'string', format: 'date' },
    customer: { type: 'object', properties: { name: { type: 'string', maxLength: 40 }, country: { enum: ['US', 'DE', 'FR', 'JP', 'GB'] } }, required: ['name', 'country'] },
    items: {
      type: 'array', minItems: 1, maxItems: 30,
      items: { type: 'object', properties: { description: { type: 'string', maxLength: 40 }, quantity: { type: 'integer', minimum: 1, maximum: 999 }, unit_price: { type: 'number', minimum: 0 } }, required: ['description', 'quantity', 'unit_price'] },
    },
    paid: { type: 'boolean' },
  },
  required: ['invoice_number', 'date', 'customer', 'items', 'paid'],
};
const MESSAGES = [{ role: 'user' as const, content: 'Write a made-up invoice with twenty line items of office supplies, as JSON.' }];

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const model = await load(modelPath);
const vocab = model.config.text.vocabSize;
const engine = GrammarEngine.for(model.tokenizer, vocab);

// 1. One-time setup (vocabulary → xgrammar TokenizerInfo) and the compile of the schema, cold and cached.
let t = performance.now();
await engine.compile({ kind: 'json_schema', schema: '{"type":"boolean"}' });
const setupMs = performance.now() - t;
const spec = grammarSpecOf({ responseFormat: { type: 'json_schema', schema: SCHEMA } })!;
t = performance.now();
await engine.compile(spec);
const compileMs = performance.now() - t;
t = performance.now();
await engine.compile(spec);
const cachedMs = performance.now() - t;

// 2. Decode speed with and without the schema (greedy, same prompt).
const free: number[] = [];
const constrained: number[] = [];
let constrainedIds: number[] = [];
let constrainedTokens = 0;
let finish = '';
for (let r = 0; r < RUNS; r++) {
  const a = await collect(model.chat(MESSAGES, { temperature: 0, maxTokens: TOKENS, stopTokenIds: [] }));
  free.push(a.stats.generatedTokensPerSecond);
  const b = await collect(model.chat(MESSAGES, { temperature: 0, maxTokens: TOKENS, responseFormat: { type: 'json_schema', schema: SCHEMA } }));
  constrained.push(b.stats.generatedTokensPerSecond);
  constrainedIds = b.tokenIds;
  constrainedTokens = b.stats.generatedTokens;
  finish = b.finishReason;
}

// 3. The mask alone: replay the constrained reply's tokens through a fresh matcher.
const constraint = await engine.constraint(spec, model.defaults.eosTokenIds);
const row = new Float32Array(vocab);
const prepareMs: number[] = [];
const applyMs: number[] = [];
for (const id of constrainedIds) {
  t = performance.now();
  await constraint.prepare();
  prepareMs.push(performance.now() - t);
  row.fill(0);
  t = performance.now();
  constraint.apply(row, Math.min(262144, vocab));
  applyMs.push(performance.now() - t);
  constraint.accept(id);
}
constraint.dispose();

const freeRate = median(free);
const jsonRate = median(constrained);
const stepMs = 1000 / freeRate;
const maskMs = median(prepareMs) + median(applyMs);
const rows: [string, string][] = [
  ['model', modelPath],
  ['backend', model.backend],
  ['xgrammar setup (vocabulary, once per model)', `${setupMs.toFixed(0)} ms`],
  ['compile: invoice schema (cold)', `${compileMs.toFixed(0)} ms`],
  ['compile: same schema again (cache)', `${cachedMs.toFixed(2)} ms`],
  [`decode, no schema (median of ${RUNS}, ${TOKENS} tokens)`, `${freeRate.toFixed(2)} tok/s`],
  [`decode, JSON schema (median of ${RUNS}, ${constrainedTokens} tokens, ${finish})`, `${jsonRate.toFixed(2)} tok/s`],
  ['schema / no schema', `${(100 * jsonRate / freeRate).toFixed(1)} %  (target >= 95 %)`],
  ['mask per step: bitmask (median / max)', `${median(prepareMs).toFixed(3)} / ${Math.max(...prepareMs).toFixed(3)} ms`],
  ['mask per step: apply to logits (median / max)', `${median(applyMs).toFixed(3)} / ${Math.max(...applyMs).toFixed(3)} ms`],
  ['mask / decode step', `${(100 * maskMs / stepMs).toFixed(2)} %  (target < 5 %)`],
];
const width = Math.max(...rows.map(([k]) => k.length));
for (const [k, v] of rows) console.log(`${k.padEnd(width)}  ${v}`);
model.dispose();
