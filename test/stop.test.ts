import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GemmaError } from '../src/errors.js';
import { StopMatcher } from '../src/generate/stop.js';

/** Streams `pieces` through a fresh matcher; returns what was shown and whether it stopped. */
function run(stops: string[], pieces: string[]): { text: string; stopped: boolean; emits: string[] } {
  const m = new StopMatcher(stops);
  const emits: string[] = [];
  let stopped = false;
  for (const p of pieces) {
    const r = m.push(p);
    emits.push(r.emit);
    if (r.stopped) {
      stopped = true;
      break;
    }
  }
  const rest = m.flush();
  if (rest) emits.push(rest);
  return { text: emits.join(''), stopped, emits };
}

/** Every way of cutting `text` into pieces of length 1..3 (deterministic sample) plus 1-char and whole. */
function splits(text: string): string[][] {
  const out: string[][] = [[text], [...text]];
  let seed = 17;
  for (let k = 0; k < 30; k++) {
    const pieces: string[] = [];
    let i = 0;
    while (i < text.length) {
      seed = (seed * 1103515245 + 12345) >>> 0;
      const len = 1 + (seed % 4);
      pieces.push(text.slice(i, i + len));
      i += len;
    }
    out.push(pieces);
  }
  return out;
}

test('no stop strings: text passes straight through', () => {
  const r = run([], ['Hello', ', ', 'world']);
  assert.deepEqual(r.emits, ['Hello', ', ', 'world']);
  assert.equal(r.stopped, false);
});

test('no stop in the text: everything is emitted, partial prefixes released at flush', () => {
  const r = run(['</s>'], ['Hello <', '/b> done <', '/']);
  assert.equal(r.stopped, false);
  assert.equal(r.text, 'Hello </b> done </');
  // "<" and "</" were held back while they could still start "</s>".
  assert.deepEqual(r.emits, ['Hello ', '</b> done ', '', '</']);
});

test('stop string split across many pushes', () => {
  const r = run(['<end>'], ['The answer', ' is 42.', '<', 'e', 'n', 'd', '>', 'ignored']);
  assert.equal(r.stopped, true);
  assert.equal(r.text, 'The answer is 42.');
  assert.deepEqual(r.emits, ['The answer', ' is 42.', '', '', '', '', '']);
});

test('stop string inside one push: only the text before it is emitted', () => {
  const m = new StopMatcher(['STOP']);
  assert.deepEqual(m.push('abc STOP def'), { emit: 'abc ', stopped: true });
  assert.equal(m.stopped, true);
  assert.deepEqual(m.push('more'), { emit: '', stopped: true });
  assert.equal(m.flush(), '');
});

test('overlapping prefixes: stop "abc" in "aab abc"', () => {
  for (const pieces of splits('aab abc')) {
    const r = run(['abc'], pieces);
    assert.equal(r.text, 'aab ', JSON.stringify(pieces));
    assert.equal(r.stopped, true);
  }
  // "aabc": the first "a" is released only when "aa" shows it cannot start the stop.
  const m = new StopMatcher(['abc']);
  assert.deepEqual(m.push('a'), { emit: '', stopped: false });
  assert.deepEqual(m.push('a'), { emit: 'a', stopped: false });
  assert.deepEqual(m.push('b'), { emit: '', stopped: false });
  assert.deepEqual(m.push('c'), { emit: '', stopped: true });
  // Self-overlapping stop "aab" in "aaab".
  for (const pieces of splits('xaaab tail')) assert.equal(run(['aab'], pieces).text, 'xa');
});

test('multiple stop strings: the first to complete wins, independent of chunking', () => {
  const cases: [string[], string, string, boolean][] = [
    [['\n\n', 'User:'], 'Sure.\nUser: hi', 'Sure.\n', true],
    [['\n\n', 'User:'], 'Sure.\n\nUser: hi', 'Sure.', true],
    [['abcd', 'bc'], 'xabcd', 'xa', true], // "bc" completes before "abcd"
    [['abcd', 'bcd'], 'xabcd', 'x', true], // same end: the longer (earlier start) wins
    [['foo', 'bar'], 'nothing here fo ba', 'nothing here fo ba', false],
    [['<end_of_turn>', '<eos>'], 'Hi there<eos><end_of_turn>', 'Hi there', true],
    [['ab'], 'abab', '', true],
  ];
  for (const [stops, text, want, stopped] of cases) {
    for (const pieces of splits(text)) {
      const r = run(stops, pieces);
      assert.equal(r.text, want, `${JSON.stringify(stops)} ${JSON.stringify(pieces)}`);
      assert.equal(r.stopped, stopped);
    }
  }
});

test('non-ASCII stop strings and text', () => {
  for (const pieces of splits('日本語です。終わり残り')) {
    assert.equal(run(['終わり'], pieces).text, '日本語です。');
  }
  for (const pieces of splits('ok 🙂🙂 end')) assert.equal(run(['🙂 e'], pieces).text, 'ok 🙂');
});

test('empty stop strings and non-strings are rejected with INVALID_ARGUMENT', () => {
  const invalid = (e: unknown): boolean => e instanceof GemmaError && e.code === 'INVALID_ARGUMENT' && e.message.includes('stop');
  assert.throws(() => new StopMatcher(['ok', '']), invalid);
  assert.throws(() => new StopMatcher([42 as unknown as string]), invalid);
  assert.throws(() => new StopMatcher('abc' as unknown as string[]), invalid);
  // Duplicates are harmless.
  assert.equal(run(['x', 'x'], ['abxcd']).text, 'ab');
});
