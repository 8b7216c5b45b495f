// The gemma3 command as a user meets it: help on every command, --version, flag errors in the
// flag's own name before any model loads, the demo's short replies and warning, a cut GGUF named
// incomplete with its sizes, --messages roles, and /image mistakes in chat that keep the rest.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fixturePath, readJson, REPO_ROOT } from './helpers.js';

const CLI = join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js');
const VLM = fixturePath('tiny-vlm');
const COMMANDS = ['run', 'chat', 'serve', 'tokenize', 'logits', 'convert', 'pull', 'list', 'rm', 'show'];

function cli(args: string[], input?: string) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 120_000, ...(input !== undefined ? { input } : {}) });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The packaged demo GGUF (scripts/build-demo.mjs writes it at `prepare`; idempotent). */
function demoGguf(): string {
  const r = spawnSync(process.execPath, [join(REPO_ROOT, 'scripts', 'build-demo.mjs')], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return join(REPO_ROOT, 'dist', 'demo', 'gemma3-demo.gguf');
}

test('gemma3 --help lists every command; each command has its own --help', () => {
  const top = cli(['--help']);
  assert.equal(top.code, 0);
  for (const c of COMMANDS) assert.match(top.stdout, new RegExp(`^  ${c} `, 'm'), `${c} in gemma3 --help`);
  assert.match(top.stdout, /--version/);
  for (const c of COMMANDS) {
    for (const args of [[c, '--help'], [c, '-h'], ['help', c]]) {
      const r = cli(args);
      assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
      assert.ok(r.stdout.startsWith(`gemma3 ${c} `), `${args.join(' ')} starts with its usage line: ${r.stdout.slice(0, 80)}`);
      assert.equal(r.stderr, '');
    }
  }
  // Each help names that command's own flags.
  assert.match(cli(['run', '--help']).stdout, /--messages FILE\.json[\s\S]*--max-tokens N[\s\S]*--model PATH/);
  assert.match(cli(['serve', '--help']).stdout, /--alias NAME[\s\S]*--api-key KEY/);
  assert.match(cli(['tokenize', '--help']).stdout, /--jsonl/);
  const unknown = cli(['run', '--bogus']);
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /Unknown option '--bogus'[\s\S]*gemma3 run --help/);
});

test('gemma3 --version prints the package version', () => {
  const { version } = readJson<{ version: string }>(join(REPO_ROOT, 'package.json'));
  for (const flag of ['--version', '-v', 'version']) {
    const r = cli([flag]);
    assert.equal(r.code, 0);
    assert.equal(r.stdout, `${version}\n`);
  }
});

test('bad flag values are errors in the flag\'s name, reported before the model loads', () => {
  // A model path that does not exist: had the model been looked for, that would be the error.
  const missing = ['--model', join(REPO_ROOT, 'no-such-model')];
  const cases: [string[], RegExp][] = [
    [['--max-tokens', '-5'], /--max-tokens must be a positive integer, got -5/],
    [['--max-tokens=-5'], /--max-tokens must be a positive integer, got -5/],
    [['--max-tokens', '0'], /--max-tokens must be a positive integer, got 0/],
    [['--max-tokens', 'many'], /--max-tokens must be an integer, got "many"/],
    [['--temperature', '-1'], /--temperature must be a finite number >= 0/],
    [['--top-p', '2'], /--top-p must be a number in \(0, 1\]/],
    [['--top-k', '-3'], /--top-k must be an integer >= 0/],
    [['--min-p', '1.5'], /--min-p must be a number in \[0, 1\]/],
    [['--repetition-penalty', '0'], /--repetition-penalty must be a finite number > 0/],
    [['--context', '1'], /--context must be an integer >= 2, got 1/],
    [['--context', '-4096'], /--context must be an integer >= 2, got -4096/],
    [['--threads', '0'], /--threads must be an integer in \[1, 64\], got 0/],
    [['--stop', ''], /--stop needs a non-empty string/],
  ];
  for (const [flags, message] of cases) {
    const r = cli(['run', ...missing, ...flags, 'Hi']);
    assert.equal(r.code, 1, `${flags.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message, flags.join(' '));
    assert.doesNotMatch(r.stderr, /no-such-model|maxTokens|topP|contextLength|ambiguous/, flags.join(' '));
  }
  const serve = cli(['serve', ...missing, '--context', '0']);
  assert.equal(serve.code, 1);
  assert.match(serve.stderr, /--context must be an integer >= 2, got 0/);
});

test('--context above the model\'s limit names the flag and the limit', () => {
  const limit = readJson<{ max_position_embeddings: number }>(fixturePath('tiny-text', 'config.json')).max_position_embeddings;
  for (const command of [['run', '--demo', 'Hi'], ['serve', '--demo', '--port', '0']]) {
    const r = cli([...command, '--context', '99999999']);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`--context must be an integer in \\[2, ${limit}\\], got 99999999`), command[0]);
    assert.doesNotMatch(r.stderr, /contextLength/);
  }
});

test('the demo says its weights are random and stops after a short reply by default', () => {
  const r = cli(['run', '--demo', 'Hi']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /random weights/);
  const stats = /(\d+) generated .*finish: (\w+)/.exec(r.stderr);
  assert.ok(stats, r.stderr);
  const generated = Number(stats[1]);
  assert.ok(stats[2] === 'length' ? generated === 48 : generated < 48, `demo reply of ${generated} tokens (${stats[2]})`);
  const longer = cli(['run', '--demo', '--max-tokens', '60', '--temperature', '0', '--ids', '2,14946', '--json']);
  assert.equal(longer.code, 0, longer.stderr);
  assert.equal(JSON.parse(longer.stdout).generated_ids.length, 60, '--max-tokens still overrides the demo default');
});

test('a cut GGUF is reported as incomplete, with the size it should have and the size it has', () => {
  const source = demoGguf();
  const full = statSync(source).size;
  const dir = mkdtempSync(join(tmpdir(), 'gemma3-cli-'));
  try {
    const cut = join(dir, 'model.gguf');
    copyFileSync(source, cut);
    const size = Math.floor(full * 0.8); // inside the tensor data, as an interrupted download leaves it
    truncateSync(cut, size);
    const r = cli(['run', '--model', cut, 'Hi']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`the file is incomplete .*need ${full} bytes but the file has ${size} \\(${full - size} missing\\)`));
    truncateSync(cut, 6_000_000); // inside the vocabulary in the header
    const header = cli(['run', '--model', cut, 'Hi']);
    assert.equal(header.code, 1);
    assert.match(header.stderr, /truncated .*incomplete.*file ends .* at byte 6000000/);
    assert.doesNotMatch(header.stderr, /absurd/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a --messages file with a wrong role names the role and its position', () => {
  const dir = mkdtempSync(join(tmpdir(), 'gemma3-cli-'));
  try {
    const write = (name: string, messages: unknown) => {
      const file = join(dir, name);
      writeFileSync(file, JSON.stringify(messages));
      return file;
    };
    const cases: [string, unknown, RegExp][] = [
      ['bot.json', [{ role: 'bot', content: 'hi' }], /message 0 has role "bot"; the roles are "system" \(first message only\), "user" and "assistant"/],
      ['twice.json', [{ role: 'user', content: 'a' }, { role: 'user', content: 'b' }], /message 1 has role "user" where an assistant message belongs/],
      ['late-system.json', [{ role: 'user', content: 'a' }, { role: 'assistant', content: 'b' }, { role: 'system', content: 'c' }],
        /message 2 has role "system"; only the first message may be a system message/],
      ['assistant-first.json', [{ role: 'system', content: 's' }, { role: 'assistant', content: 'b' }], /message 1 has role "assistant" where a user message belongs/],
      ['no-role.json', [{ content: 'a' }], /message 0 has no role/],
    ];
    for (const [name, messages, message] of cases) {
      const r = cli(['run', '--demo', '--messages', write(name, messages)]);
      assert.equal(r.code, 1, name);
      assert.match(r.stderr, message, name);
      assert.match(r.stderr, new RegExp(name.replace('.', '\\.')), name);
      assert.doesNotMatch(r.stderr, /chat template/, name);
    }
    const good = cli(['run', '--demo', '--max-tokens', '2', '--messages',
      write('good.json', [{ role: 'system', content: 's' }, { role: 'user', content: 'a' }, { role: 'model', content: 'b' }, { role: 'user', content: 'c' }])]);
    assert.equal(good.code, 0, good.stderr);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('chat: a bad /image keeps the picture already attached and the question is answered with it', () => {
  const dir = mkdtempSync(join(tmpdir(), 'gemma3-cli-'));
  try {
    const notAnImage = join(dir, 'notes.png');
    writeFileSync(notAnImage, 'these are notes, not a picture\n');
    const good = fixturePath('goldens', 'images', 'square.png');
    const flags = ['chat', '--model', VLM, '--temperature', '0', '--max-tokens', '6'];
    const reference = cli(flags, `/image ${good}\nWhat is this?\n/exit\n`);
    assert.equal(reference.code, 0, reference.stderr);
    const withMistakes = cli(flags, `/image ${good}\n/image ${notAnImage}\n/image ${join(dir, 'missing.png')}\nWhat is this?\n/exit\n`);
    assert.equal(withMistakes.code, 0, withMistakes.stderr);
    assert.match(withMistakes.stdout, /notes\.png/);
    assert.match(withMistakes.stdout, /image file not found: .*missing\.png/);
    // The same prompt (picture and question) and the same greedy reply as without the mistakes.
    // The reply sits between the last prompt ("> ") and its statistics line.
    const replyOf = (out: string): [string, string, string] | null => {
      const stats = /\n\[(\d+) prompt tokens/.exec(out);
      if (!stats) return null;
      const start = out.lastIndexOf('> ', stats.index) + 2;
      return [out, out.slice(start, stats.index), stats[1]!];
    };
    const expected = replyOf(reference.stdout);
    const got = replyOf(withMistakes.stdout);
    assert.ok(expected && got, `${reference.stdout}\n---\n${withMistakes.stdout}`);
    assert.equal(got[2], expected[2], 'prompt tokens (the picture was sent)');
    assert.equal(got[1], expected[1], 'reply');
    const textOnly = cli(flags, 'What is this?\n/exit\n');
    assert.ok(Number(/\[(\d+) prompt tokens/.exec(textOnly.stdout)![1]) < Number(expected[2]), 'a picture adds prompt tokens');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the README\'s CLI reference is the --help text of every command, as printed', () => {
  const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
  for (const args of [['--help'], ...COMMANDS.map((c) => [c, '--help'])]) {
    const help = cli(args).stdout;
    assert.ok(readme.includes('```\n' + help + '```'), `README.md holds the output of gemma3 ${args.join(' ')} (regenerate that block)`);
  }
});
