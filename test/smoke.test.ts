import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GemmaError } from '../src/errors.js';
test('GemmaError carries a code', () => {
  const e = new GemmaError('BAD_FORMAT', 'x');
  assert.equal(e.code, 'BAD_FORMAT');
});
