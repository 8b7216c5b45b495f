// The server's prompt chunk per step shrinks with depth so a step deep in a 32K prompt takes
// about as long as one at its start (other streams wait one step per token).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parseConfig } from '../src/model/config.js';
import { MIN_PREFILL_CHUNK, prefillTokensAt, prefillWork } from '../src/server/prefill-cost.js';
import { fixturePath } from './helpers.js';

const config4b = parseConfig(JSON.parse(readFileSync(fixturePath('configs/gemma-3-4b-it/config.json'), 'utf8'))).text;

test('on the 4B, the chunk is the full budget at the start and shrinks with depth, keeping the work of a step', () => {
  const budget = 256;
  assert.equal(prefillTokensAt(config4b, 0, budget), budget);
  assert.ok(prefillTokensAt(config4b, 1000, budget) >= 200, 'within the sliding window a token costs a little more');
  const sizes = [4096, 8192, 32768, 131072].map((depth) => prefillTokensAt(config4b, depth, budget));
  for (let i = 1; i < sizes.length; i++) assert.ok(sizes[i]! <= sizes[i - 1]!, `not shrinking: ${sizes}`);
  // 32K: the global layers' attention roughly equals the weight products: about half the tokens.
  assert.ok(sizes[2]! >= 90 && sizes[2]! <= 170, `chunk at 32K: ${sizes[2]}`);
  assert.ok(sizes[3]! >= MIN_PREFILL_CHUNK && sizes[3]! < sizes[2]!, `chunk at 128K: ${sizes[3]}`);
  for (const depth of [4096, 32768, 131072]) {
    const n = prefillTokensAt(config4b, depth, budget);
    const allowed = prefillWork(config4b, 0, budget);
    assert.ok(prefillWork(config4b, depth, n) <= allowed || n === MIN_PREFILL_CHUNK, `over the step's work at ${depth}`);
    if (n > MIN_PREFILL_CHUNK) assert.ok(prefillWork(config4b, depth, n + 1) > allowed, `one token more would still fit at ${depth}`);
  }
});

test('a budget below the minimum chunk is kept as it is', () => {
  assert.equal(prefillTokensAt(config4b, 100_000, 5), 5);
});
