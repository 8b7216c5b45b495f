// Backend selection: native and TypeScript give the same tokens through the CLI; without the
// addon 'auto' falls back with one warning and 'native' fails with a clear error.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { loadNativeBinding } from '../src/backend/native-backend.js';
import { REPO_ROOT } from './helpers.js';

const CLI = join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js');
const ARGS = ['run', '--demo', '--temperature', '0', '--max-tokens', '8', '--ids', '2,14946,3324,496,990', '--json'];

function cli(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const nativeMissing = loadNativeBinding() instanceof Error ? 'native addon not built' : false;

test('--backend native and --backend js generate the same tokens', { skip: nativeMissing }, () => {
  const a = cli([...ARGS, '--backend', 'native', '--threads', '2']);
  const b = cli([...ARGS, '--backend', 'js']);
  assert.equal(a.code, 0, a.stderr);
  assert.equal(b.code, 0, b.stderr);
  assert.deepEqual(JSON.parse(a.stdout).generated_ids, JSON.parse(b.stdout).generated_ids);
});

test('without the addon, auto warns once and uses TypeScript; native fails clearly', () => {
  const auto = cli(ARGS, { GEMMA3_DISABLE_NATIVE: '1' });
  assert.equal(auto.code, 0, auto.stderr);
  assert.equal(auto.stderr.match(/native kernels unavailable/g)?.length, 1, auto.stderr);
  assert.equal(JSON.parse(auto.stdout).generated_ids.length, 8);
  const native = cli([...ARGS, '--backend', 'native'], { GEMMA3_DISABLE_NATIVE: '1' });
  assert.equal(native.code, 1);
  assert.match(native.stderr, /native addon could not be loaded/);
  const bad = cli([...ARGS, '--backend', 'gpu']);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /--backend must be/);
});
