// gemma3 pull / list / show / rm and --model NAME [--pull], through the real CLI binary
// (dist/src/cli/main.js) with HF_ENDPOINT pointed at the local fake hub and a temporary cache.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { convertCheckpoint } from '../src/convert/convert.js';
import { loadConfig } from '../src/model/config.js';
import { countParameters } from '../src/model/parameters.js';
import { FakeHub } from './fake-hub.js';
import { REPO_ROOT, fixturePath } from './helpers.js';
import { tempDir } from './st-writer.js';

const tmp = tempDir('cli-pull');
after(() => tmp.cleanup());
const TEXT = fixturePath('tiny-text');
const read = (dir: string, f: string) => readFileSync(join(dir, f));

const GGUF_DIR = join(tmp.dir, 'gguf-src');
mkdirSync(GGUF_DIR);
convertCheckpoint(fixturePath('tiny-vlm'), join(GGUF_DIR, 'q8.gguf'), { type: 'q8_0', mmprojOut: join(GGUF_DIR, 'mmproj.gguf') });

const hub = new FakeHub({
  'google/gemma-3-tiny-it': {
    files: Object.fromEntries(['config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json', 'model.safetensors']
      .map((f) => [f, read(TEXT, f)])),
  },
  'ggml-org/gemma-3-tiny-it-GGUF': {
    files: { 'gemma-3-tiny-it-Q8_0.gguf': read(GGUF_DIR, 'q8.gguf'), 'mmproj-gemma-3-tiny-it-f16.gguf': read(GGUF_DIR, 'mmproj.gguf') },
  },
  'google/gemma-3-tiny-gated': { gated: true, files: { 'config.json': read(TEXT, 'config.json'), 'model.safetensors': Buffer.alloc(20_000) } },
});
await hub.start();
after(() => hub.close());

const CACHE = join(tmp.dir, 'cache');
const CLI = join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js');

/** The CLI with the hub environment pointed at the fake (asynchronous: the fake hub runs in this process). */
function cli(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('HF_') && k !== 'GEMMA3_MODEL'));
  const child = spawn(process.execPath, [CLI, ...args], {
    env: { ...base, HF_HUB_CACHE: CACHE, HF_HOME: join(tmp.dir, 'hf-home'), HF_ENDPOINT: hub.url, ...env },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
  return new Promise((ok) => child.on('close', (code) => {
    clearTimeout(timer);
    ok({ code, stdout, stderr });
  }));
}

function noStack(stderr: string): void {
  assert.ok(!/\n\s+at /.test(stderr), `no stack trace expected:\n${stderr}`);
}

describe('gemma3 pull, list, show, rm', () => {
  const commit = hub.commitOf('google/gemma-3-tiny-it');
  const snapshot = join(CACHE, 'models--google--gemma-3-tiny-it', 'snapshots', commit);

  test('a model name not in the cache says how to get it', async () => {
    const r = await cli(['tokenize', '--model', 'google/gemma-3-tiny-it', 'hello']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /google\/gemma-3-tiny-it is not in the Hugging Face cache .*gemma3 pull google\/gemma-3-tiny-it \(or add --pull\)/);
    noStack(r.stderr);
  });

  test('pull of a checkpoint folder prints plain progress lines off a terminal and the path on stdout', async () => {
    const r = await cli(['pull', 'google/gemma-3-tiny-it']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `google/gemma-3-tiny-it\t${snapshot}\n`);
    assert.match(r.stderr, /pulling google\/gemma-3-tiny-it at [0-9a-f]{12} \(safetensors\)/);
    assert.match(r.stderr, /downloading model\.safetensors \(34\.4 MB\)/);
    assert.match(r.stderr, /model\.safetensors: 34\.4 MB done.*sha256 verified/);
    assert.ok(!r.stderr.includes('\r'), 'no carriage returns off a terminal');
    assert.ok(readFileSync(join(snapshot, 'model.safetensors')).equals(read(TEXT, 'model.safetensors')));
  });

  test('pull of a GGUF quantisation, then the names resolve with --model and run', async () => {
    const r = await cli(['pull', 'ggml-org/gemma-3-tiny-it-GGUF:q8_0']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^ggml-org\/gemma-3-tiny-it-GGUF:Q8_0\t.*\/gemma-3-tiny-it-Q8_0\.gguf\n$/);
    const run = await cli(['run', '--model', 'google/gemma-3-tiny-it', '--max-tokens', '4', '--temperature', '0', '--json', 'Hi']);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(JSON.parse(run.stdout).generated_ids.length, 4);
    const gguf = await cli(['tokenize', '--model', 'ggml-org/gemma-3-tiny-it-GGUF:Q8_0', '--json', 'hello world']);
    assert.equal(gguf.code, 0, gguf.stderr);
    assert.deepEqual(JSON.parse(gguf.stdout).ids.slice(0, 1), [2]);
  });

  test('list shows both, with revision, files, size and kind', async () => {
    const r = await cli(['list']);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.match(lines[0]!, /^NAME\s+REVISION\s+FILES\s+SIZE\s+KIND$/);
    assert.ok(lines.some((l) => /^google\/gemma-3-tiny-it\s+[0-9a-f]{12} \(main\)\s+5\s+68\.\d MB\s+safetensors$/.test(l)), r.stdout);
    assert.ok(lines.some((l) => /^ggml-org\/gemma-3-tiny-it-GGUF:Q8_0\s+[0-9a-f]{12} \(main\)\s+2\s+[\d.]+ MB\s+gguf$/.test(l)), r.stdout);
    const json = JSON.parse((await cli(['list', '--json'])).stdout) as { name: string; revision: string; complete: boolean; size: number }[];
    const folder = json.find((m) => m.name === 'google/gemma-3-tiny-it')!;
    assert.equal(folder.revision, commit);
    assert.equal(folder.complete, true);
    const expected = ['config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json', 'model.safetensors']
      .reduce((n, f) => n + read(TEXT, f).length, 0);
    assert.equal(folder.size, expected);
  });

  test('show reads the architecture, parameters, context, quantization, vision and template without loading weights', async () => {
    const r = await cli(['show', 'google/gemma-3-tiny-it']);
    assert.equal(r.code, 0, r.stderr);
    const config = loadConfig(TEXT);
    const field = (name: string) => new RegExp(`^  ${name}\\s+(.*)$`, 'm').exec(r.stdout)?.[1];
    assert.equal(field('architecture'), 'gemma3_text');
    assert.match(field('parameters')!, new RegExp(`\\(${countParameters(config)}\\)$`));
    assert.equal(field('context length'), String(config.text.maxPositionEmbeddings));
    assert.equal(field('quantization'), 'BF16');
    assert.equal(field('vision'), 'no');
    assert.match(field('template')!, /tokenizer_config\.json/);
    const g = JSON.parse((await cli(['show', 'ggml-org/gemma-3-tiny-it-GGUF:Q8_0', '--json'])).stdout);
    assert.equal(g.format, 'gguf');
    assert.equal(g.quantization, 'Q8_0');
    assert.equal(g.vision, true);
    assert.equal(g.architecture, 'gemma3');
    const t = await cli(['show', 'google/gemma-3-tiny-it', '--template']);
    assert.match(t.stdout, /start_of_turn/);
  });

  test('HF_HUB_OFFLINE=1: a cached model is found with no request; an uncached one is refused', async () => {
    const before = hub.log.length;
    const r = await cli(['pull', 'google/gemma-3-tiny-it'], { HF_HUB_OFFLINE: '1' });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(hub.log.length, before);
    const miss = await cli(['pull', 'google/gemma-3-tiny-gated'], { HF_HUB_OFFLINE: '1' });
    assert.equal(miss.code, 1);
    assert.match(miss.stderr, /not in the cache .*HF_HUB_OFFLINE/);
  });

  test('a gated model: the license message, no stack trace; a bad name: a clear error', async () => {
    const r = await cli(['pull', 'google/gemma-3-tiny-gated']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /gated model: accept the license on .*google\/gemma-3-tiny-gated.*HF_TOKEN/);
    noStack(r.stderr);
    const t = await cli(['pull', 'google/gemma-3-tiny-gated'], { HF_TOKEN: 'hf_granted' });
    assert.equal(t.code, 0, t.stderr);
    const bad = await cli(['pull', '../../etc/passwd']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /must be a Hugging Face repository OWNER\/NAME/);
    const none = await cli(['pull']);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /gemma3 pull takes one model/);
  });

  test('serve --model NAME serves the model under its hub name', async () => {
    const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('HF_')));
    const child = spawn(process.execPath, [CLI, 'serve', '--model', 'google/gemma-3-tiny-it', '--port', '0', '--parallel', '1', '--context', '64'],
      { env: { ...base, HF_HUB_CACHE: CACHE, HF_HOME: join(tmp.dir, 'hf-home'), HF_HUB_OFFLINE: '1' } });
    try {
      const url = await new Promise<string>((ok, fail) => {
        let out = '';
        child.stdout.on('data', (d) => {
          out += d;
          const m = /serving .* at (http:\/\/\S+)/.exec(out);
          if (m) ok(m[1]!);
        });
        child.once('exit', (code) => fail(new Error(`serve exited with ${code}`)));
      });
      const models = await (await fetch(`${url}/v1/models`)).json() as { data: { id: string }[] };
      assert.deepEqual(models.data.map((m) => m.id), ['google/gemma-3-tiny-it']);
      const r = await fetch(`${url}/api/generate`, { method: 'POST', body: JSON.stringify({
        model: 'google/gemma-3-tiny-it', prompt: 'Hi', stream: false, options: { num_predict: 2, temperature: 0 },
      }) });
      assert.equal(r.status, 200);
      assert.equal(((await r.json()) as { eval_count: number }).eval_count, 2);
    } finally {
      child.kill('SIGTERM');
      await new Promise((ok) => child.once('exit', ok));
    }
  });

  test('rm removes one quantisation (and the repository with its last one), then a whole repository', async () => {
    const r = await cli(['rm', 'ggml-org/gemma-3-tiny-it-GGUF:Q8_0']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^removed ggml-org\/gemma-3-tiny-it-GGUF:Q8_0 \([\d.]+ MB freed\)/);
    assert.ok(!existsSync(join(CACHE, 'models--ggml-org--gemma-3-tiny-it-GGUF')));
    const again = await cli(['rm', 'ggml-org/gemma-3-tiny-it-GGUF:Q8_0']);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /not in the cache/);
    assert.equal((await cli(['rm', 'google/gemma-3-tiny-it'])).code, 0);
    assert.ok(!existsSync(join(CACHE, 'models--google--gemma-3-tiny-it')));
    assert.ok(!(await cli(['list'])).stdout.includes('google/gemma-3-tiny-it'));
  });

  test('--pull downloads a missing model before running', async () => {
    const r = await cli(['tokenize', '--model', 'google/gemma-3-tiny-it', '--pull', '--json', 'hello']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /pulled google\/gemma-3-tiny-it/);
    assert.equal(JSON.parse(r.stdout).ids[0], 2);
  });
});
