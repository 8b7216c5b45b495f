// gemma3's hub client against a local fake of the Hugging Face hub (fake-hub.ts): what a pull
// fetches (only the engine's files), the cache laid out as Python's huggingface_hub lays it out
// (and a folder laid out by hand that way is found), resuming a cut transfer, a corrupted byte,
// offline mode, gated repositories, bad tokens, unknown repositories and quantisations, a repo
// that is not Gemma 3, and a full disk. The served files are the tiny fixtures, so what is
// pulled loads.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync, realpathSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { convertCheckpoint } from '../src/convert/convert.js';
import { GemmaError, type GemmaErrorCode } from '../src/errors.js';
import { findCachedModel, hubSettings, parseModelReference, pullModel, type HubSettings, type PullEvent } from '../src/hub/index.js';
import { load } from '../src/index.js';
import { FakeHub, shardSafetensors } from './fake-hub.js';
import { fixturePath } from './helpers.js';
import { tempDir } from './st-writer.js';

const tmp = tempDir('hub');
after(() => tmp.cleanup());

const TEXT = fixturePath('tiny-text');
const VLM = fixturePath('tiny-vlm');
const read = (dir: string, f: string) => readFileSync(join(dir, f));
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** tiny-text as a sharded checkpoint, with files the engine does not use beside it. */
const sharded = shardSafetensors(read(TEXT, 'model.safetensors'), 2);
const CHECKPOINT_FILES: Record<string, Buffer> = {
  'config.json': read(TEXT, 'config.json'), 'generation_config.json': read(TEXT, 'generation_config.json'),
  'tokenizer.json': read(TEXT, 'tokenizer.json'), 'tokenizer_config.json': read(TEXT, 'tokenizer_config.json'),
  'model.safetensors.index.json': sharded.index, ...sharded.shards,
};
const UNUSED_FILES: Record<string, Buffer> = {
  '.gitattributes': Buffer.from('*.safetensors filter=lfs diff=lfs merge=lfs -text\n'), 'README.md': Buffer.from('# tiny\n'),
  'model-old-00001-of-00001.safetensors': Buffer.alloc(20_000, 7), 'original/consolidated.pth': Buffer.alloc(30_000, 3),
};

/** tiny-vlm converted to GGUF twice (Q4_0, Q8_0) with its vision projector. */
const GGUF_DIR = join(tmp.dir, 'gguf-src');
mkdirSync(GGUF_DIR);
convertCheckpoint(VLM, join(GGUF_DIR, 'q4.gguf'), { type: 'q4_0', mmprojOut: join(GGUF_DIR, 'mmproj.gguf') });
convertCheckpoint(VLM, join(GGUF_DIR, 'q8.gguf'), { type: 'q8_0' });
const Q4 = 'gemma-3-tiny-it-Q4_0.gguf';
const Q8 = 'gemma-3-tiny-it-Q8_0.gguf';
const MMPROJ = 'mmproj-gemma-3-tiny-it-f16.gguf';
const GGUF_FILES: Record<string, Buffer> = {
  [Q4]: read(GGUF_DIR, 'q4.gguf'), [Q8]: read(GGUF_DIR, 'q8.gguf'), [MMPROJ]: read(GGUF_DIR, 'mmproj.gguf'),
  'README.md': Buffer.from('# GGUF\n'),
};

/** The Q4_0 file declaring another architecture (same length, so the header stays valid). */
const LLAMA_GGUF = Buffer.from(GGUF_FILES[Q4]!);
LLAMA_GGUF.write('llama3', LLAMA_GGUF.indexOf('gemma3', LLAMA_GGUF.indexOf('general.architecture')));

const hub = new FakeHub({
  'evil/path-mirror': { files: {}, treeExtra: [{ type: 'file', path: '../../../escape-Q4_0.gguf', oid: 'a'.repeat(40), size: 10 }] },
  'evil/etag-mirror': { files: {}, treeExtra: [{ type: 'file', path: 'x-Q4_0.gguf', oid: 'a'.repeat(40), size: 10, lfs: { oid: '../../../../x', size: 10, pointerSize: 1 } }] },
  'someone/llama-tiny-GGUF': { files: { 'llama-tiny-Q4_0.gguf': LLAMA_GGUF } },
  'google/gemma-3-tiny-it': { files: { ...CHECKPOINT_FILES, ...UNUSED_FILES } },
  'ggml-org/gemma-3-tiny-it-GGUF': { files: GGUF_FILES },
  'google/gemma-3-tiny-gated': { gated: true, files: { 'config.json': read(TEXT, 'config.json'), 'model.safetensors': Buffer.alloc(50_000, 1) } },
  'someone/llama-tiny': { files: { 'config.json': Buffer.from('{"model_type": "llama"}'), 'model.safetensors': Buffer.alloc(40_000, 2) } },
  'someone/pytorch-only': { files: { 'config.json': read(TEXT, 'config.json'), 'pytorch_model.bin': Buffer.alloc(40_000, 2) } },
});
await hub.start();
after(() => hub.close());

let cacheCount = 0;
function settings(extra: Partial<HubSettings> = {}): HubSettings {
  return { cacheDir: join(tmp.dir, `cache-${cacheCount++}`), endpoint: hub.url, token: undefined, tokenSource: undefined, offline: false, ...extra };
}

async function rejects(p: Promise<unknown>, code: GemmaErrorCode, ...fragments: string[]): Promise<GemmaError> {
  let caught: GemmaError | undefined;
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof GemmaError, `expected a GemmaError, got ${err instanceof Error ? err.stack : String(err)}`);
    assert.equal(err.code, code, err.message);
    for (const f of fragments) assert.ok(err.message.includes(f), `message ${JSON.stringify(err.message)} should mention ${JSON.stringify(f)}`);
    caught = err;
    return true;
  });
  return caught!;
}

/** Only requests made during `fn`. */
async function logged<T>(fn: () => Promise<T>): Promise<{ result: T; downloads: string[]; requests: number }> {
  const start = hub.log.length;
  const startDownloads = hub.downloads().length;
  const result = await fn();
  return { result, downloads: hub.downloads().slice(startDownloads), requests: hub.log.length - start };
}

describe('pull of a checkpoint folder', () => {
  const s = settings();
  const repo = 'google/gemma-3-tiny-it';
  const repoDir = join(s.cacheDir, 'models--google--gemma-3-tiny-it');

  test('fetches only the files the engine uses: configs, tokenizer, the index and exactly the shards it lists', async () => {
    const events: PullEvent[] = [];
    const { result, downloads } = await logged(() => pullModel(repo, { settings: s, onEvent: (e) => events.push(e) }));
    assert.deepEqual(downloads.sort(), Object.keys(CHECKPOINT_FILES).sort());
    // The probe requests of the client never touched the unused files either.
    for (const f of Object.keys(UNUSED_FILES)) assert.ok(!hub.resolved().includes(f), `${f} was requested`);
    assert.equal(result.kind, 'safetensors');
    assert.equal(result.commit, hub.commitOf(repo));
    assert.equal(result.path, join(repoDir, 'snapshots', hub.commitOf(repo)));
    const total = Object.values(CHECKPOINT_FILES).reduce((n, b) => n + b.length, 0);
    assert.equal(result.fetched, total);
    assert.ok(events.some((e) => e.type === 'progress' && e.completed === e.total), 'progress events reach the total');
  });

  test('the cache is laid out as huggingface_hub writes it', () => {
    const commit = hub.commitOf(repo);
    assert.equal(readFileSync(join(repoDir, 'refs', 'main'), 'utf8'), commit); // no newline, as Python writes it
    assert.deepEqual(readdirSync(join(repoDir, 'snapshots')), [commit]);
    for (const [name, content] of Object.entries(CHECKPOINT_FILES)) {
      const pointer = join(repoDir, 'snapshots', commit, name);
      assert.ok(lstatSync(pointer).isSymbolicLink(), `${name} is a symlink`);
      // LFS files (>= 10 kB here) are stored under their sha256, small files under their git blob id.
      const oid = createHash('sha1').update(`blob ${content.length}\0`).update(content).digest('hex');
      const etag = content.length >= 10_000 ? sha256(content) : oid;
      assert.equal(readlinkSync(pointer), `../../blobs/${etag}`);
      assert.ok(readFileSync(pointer).equals(content), `${name} is byte-identical`);
    }
    assert.deepEqual(readdirSync(join(repoDir, 'blobs')).filter((f) => f.endsWith('.incomplete')), []);
  });

  test('a second pull fetches nothing, and the pulled folder loads', async () => {
    const { result, downloads } = await logged(() => pullModel(repo, { settings: s }));
    assert.deepEqual(downloads, []);
    assert.equal(result.fetched, 0);
    const model = await load(result.path, { backend: 'js', contextLength: 64 });
    try {
      assert.equal(model.config.text.numLayers, JSON.parse(CHECKPOINT_FILES['config.json']!.toString()).num_hidden_layers);
      assert.equal(model.logits([2, 105, 2364], 3).positions.length, 3);
    } finally {
      model.dispose();
    }
  });

  test('HF_HUB_OFFLINE=1 finds it in the cache without a request; a model not cached is a clear error', async () => {
    const offline = { ...s, offline: true };
    const { result, requests } = await logged(() => pullModel(repo, { settings: offline }));
    assert.equal(requests, 0);
    assert.equal(result.path, join(repoDir, 'snapshots', hub.commitOf(repo)));
    await rejects(pullModel('ggml-org/gemma-3-tiny-it-GGUF:Q4_0', { settings: offline }), 'FILE_NOT_FOUND', 'HF_HUB_OFFLINE', 'not in the cache');
  });
});

describe('pull of a GGUF repository', () => {
  const repo = 'ggml-org/gemma-3-tiny-it-GGUF';

  test('a quantisation tag picks its file (case-insensitive) and the mmproj, nothing else; it loads with vision', async () => {
    const s = settings();
    const { result, downloads } = await logged(() => pullModel(`${repo}:q8_0`, { settings: s }));
    assert.deepEqual(downloads.sort(), [MMPROJ, Q8].sort());
    assert.equal(result.kind, 'gguf');
    assert.equal(result.reference, `${repo}:Q8_0`);
    assert.ok(result.path.endsWith(`/${Q8}`));
    assert.ok(readFileSync(result.path).equals(GGUF_FILES[Q8]!));
    const model = await load(result.path, { backend: 'js', contextLength: 64 });
    try {
      assert.ok(model.config.vision, 'the mmproj beside the model was found');
    } finally {
      model.dispose();
    }
  });

  test('without a tag the documented default is taken (Q4_K_M, else Q4_0, ...): Q4_0 here', async () => {
    const { result, downloads } = await logged(() => pullModel(repo, { settings: settings() }));
    assert.deepEqual(downloads.sort(), [MMPROJ, Q4].sort());
    assert.equal(result.reference, `${repo}:Q4_0`);
  });

  test('an unknown quantisation lists the available ones; nothing is downloaded', async () => {
    const { downloads } = await logged(() => rejects(pullModel(`${repo}:Q5_K_M`, { settings: settings() }), 'FILE_NOT_FOUND', 'Q5_K_M', 'available: Q4_0, Q8_0'));
    assert.deepEqual(downloads, []);
  });

  test('a transfer cut mid-file resumes with a Range request and ends byte-identical', async () => {
    const s = settings();
    hub.cutOnce.set(Q4, 300_000);
    const events: PullEvent[] = [];
    const { result } = await logged(() => pullModel(`${repo}:Q4_0`, { settings: s, onEvent: (e) => events.push(e) }));
    const retry = events.find((e) => e.type === 'retry');
    assert.ok(retry && retry.type === 'retry', 'a retry was reported');
    assert.ok(retry.offset >= 300_000 - 65_536 && retry.offset <= 300_000, `resumed at ${retry.offset}`);
    const sha = hub.sha256Of(repo, Q4);
    assert.ok(hub.log.some((r) => r.path === `/cdn/${sha}` && r.range === `bytes=${retry.offset}-${GGUF_FILES[Q4]!.length - 1}`),
      'the resumed request asks for the rest of the file');
    assert.ok(readFileSync(result.path).equals(GGUF_FILES[Q4]!));
  });

  test('a partial file left by an earlier run is resumed, not fetched again', async () => {
    const s = settings();
    const sha = hub.sha256Of(repo, Q8);
    const blobs = join(s.cacheDir, 'models--ggml-org--gemma-3-tiny-it-GGUF', 'blobs');
    mkdirSync(blobs, { recursive: true });
    const kept = 1 << 20;
    writeFileSync(join(blobs, `${sha}.incomplete`), GGUF_FILES[Q8]!.subarray(0, kept));
    const events: PullEvent[] = [];
    const { result } = await logged(() => pullModel(`${repo}:Q8_0`, { settings: s, onEvent: (e) => events.push(e) }));
    const done = events.find((e) => e.type === 'done' && e.file.path === Q8);
    assert.ok(done && done.type === 'done');
    assert.equal(done.resumedFrom, kept);
    assert.equal(done.fetched, GGUF_FILES[Q8]!.length - kept);
    assert.ok(hub.log.some((r) => r.path === `/cdn/${sha}` && r.range === `bytes=${kept}-${GGUF_FILES[Q8]!.length - 1}`));
    assert.ok(readFileSync(result.path).equals(GGUF_FILES[Q8]!));
  });

  test('a corrupted byte is caught by the sha256 check and the file fetched again', async () => {
    const s = settings();
    hub.corrupt.set(Q4, 'once');
    const events: PullEvent[] = [];
    const { result, downloads } = await logged(() => pullModel(`${repo}:Q4_0`, { settings: s, onEvent: (e) => events.push(e) }));
    assert.equal(downloads.filter((d) => d === Q4).length, 2);
    assert.ok(events.some((e) => e.type === 'retry' && e.reason.includes('checksum mismatch')));
    assert.ok(readFileSync(result.path).equals(GGUF_FILES[Q4]!));
  });

  test('a file corrupted every time is an error, and nothing of it is left looking complete', async () => {
    const s = settings();
    hub.corrupt.set(Q4, 'always');
    try {
      await rejects(pullModel(`${repo}:Q4_0`, { settings: s }), 'BAD_FORMAT', Q4, 'corrupted');
    } finally {
      hub.corrupt.delete(Q4);
    }
    const dir = join(s.cacheDir, 'models--ggml-org--gemma-3-tiny-it-GGUF');
    const sha = hub.sha256Of(repo, Q4);
    assert.ok(!existsSync(join(dir, 'blobs', sha)));
    assert.ok(!existsSync(join(dir, 'blobs', `${sha}.incomplete`)));
    assert.ok(!existsSync(join(dir, 'snapshots', hub.commitOf(repo), Q4)));
    assert.equal(findCachedModel(parseModelReference(`${repo}:Q4_0`), s.cacheDir), null);
  });

  test('a full disk (ENOSPC) is a clear error and the partial file never becomes the blob', async () => {
    const s = settings();
    const sha = hub.sha256Of(repo, Q8);
    const dir = join(s.cacheDir, 'models--ggml-org--gemma-3-tiny-it-GGUF');
    mkdirSync(join(dir, 'blobs'), { recursive: true });
    symlinkSync('/dev/full', join(dir, 'blobs', `${sha}.incomplete`)); // every write fails with ENOSPC
    await rejects(pullModel(`${repo}:Q8_0`, { settings: s }), 'DOWNLOAD_FAILED', 'could not write', 'ENOSPC', 'resume');
    assert.ok(!existsSync(join(dir, 'blobs', sha)));
    assert.ok(!existsSync(join(dir, 'snapshots', hub.commitOf(repo), Q8)));
  });
});

describe('refusals', () => {
  const gated = 'google/gemma-3-tiny-gated';

  test('a gated model without a token: accept the license on the model page and set HF_TOKEN', async () => {
    const s = settings();
    await rejects(pullModel(gated, { settings: s }), 'ACCESS_DENIED', 'gated', 'accept the license', `${hub.url}/${gated}`, 'HF_TOKEN');
    assert.equal(findCachedModel(parseModelReference(gated), s.cacheDir), null);
  });

  test('a gated model with a token not granted access (403), a granted token, an invalid token, a malformed token', async () => {
    await rejects(pullModel(gated, { settings: settings({ token: 'hf_not_granted', tokenSource: 'HF_TOKEN' }) }), 'ACCESS_DENIED',
      'no access yet', `${hub.url}/${gated}`);
    const ok = await pullModel(gated, { settings: settings({ token: 'hf_granted', tokenSource: 'HF_TOKEN' }) });
    assert.equal(ok.kind, 'safetensors');
    assert.ok(hub.log.some((r) => r.auth === 'Bearer hf_granted'));
    await rejects(pullModel(gated, { settings: settings({ token: 'hf_revoked', tokenSource: '/x/token' }) }), 'ACCESS_DENIED',
      'rejected the token from /x/token as invalid');
    await rejects(pullModel(gated, { settings: settings({ token: 'abc', tokenSource: 'HF_TOKEN' }) }), 'ACCESS_DENIED', "does not start with 'hf_'");
  });

  test('an unknown repository (404), a repository that is not Gemma 3, a repository without weights we read', async () => {
    await rejects(pullModel('google/no-such-model', { settings: settings() }), 'FILE_NOT_FOUND', 'no such model repository');
    const { downloads } = await logged(() => rejects(pullModel('someone/llama-tiny', { settings: settings() }), 'UNSUPPORTED_MODEL',
      'not a Gemma 3 model', '"llama"'));
    assert.deepEqual(downloads, ['config.json'], 'the weights are not fetched');
    await rejects(pullModel('someone/pytorch-only', { settings: settings() }), 'UNSUPPORTED_MODEL', 'no Gemma 3 files');
    // A GGUF of another architecture: its first 64 KiB are read (one Range request), the rest never.
    const start = hub.log.length;
    await rejects(pullModel('someone/llama-tiny-GGUF', { settings: settings() }), 'UNSUPPORTED_MODEL', 'general.architecture "llama3"');
    const reads = hub.log.slice(start).filter((r) => r.path.startsWith('/cdn/'));
    assert.deepEqual(reads.map((r) => r.range), ['bytes=0-0', 'bytes=0-65535']);
    await rejects(pullModel('someone/pytorch-only:Q4_0', { settings: settings() }), 'FILE_NOT_FOUND', 'no GGUF files');
    await rejects(pullModel('google/gemma-3-tiny-it', { settings: settings(), revision: 'no-such-branch' }), 'FILE_NOT_FOUND');
  });

  test('a listing whose paths or ids would leave the cache (a hostile mirror) is refused, nothing written', async () => {
    const s = settings();
    await rejects(pullModel('evil/path-mirror', { settings: s }), 'DOWNLOAD_FAILED', 'would leave the cache', '../../../escape-Q4_0.gguf');
    await rejects(pullModel('evil/etag-mirror', { settings: s }), 'DOWNLOAD_FAILED', 'not a sha1 or sha256');
    assert.ok(!existsSync(join(s.cacheDir, 'escape-Q4_0.gguf')) && !existsSync(join(tmp.dir, 'escape-Q4_0.gguf')));
    assert.ok(!existsSync(join(s.cacheDir, '..', 'x')));
  });

  test('references that could escape the cache are refused before any request', () => {
    for (const bad of ['../etc/passwd', '/abs/path', 'a/b/c', 'owner/..', '../x', 'a--b/c', 'owner/name:../../x', 'owner/name:Q4 K', '', 'name-only']) {
      assert.throws(() => parseModelReference(bad), (e: unknown) => e instanceof GemmaError && e.code === 'INVALID_ARGUMENT', bad);
    }
    assert.deepEqual(parseModelReference('hf.co/ggml-org/gemma-3-4b-it-GGUF:q4_k_m'), { repo: 'ggml-org/gemma-3-4b-it-GGUF', quant: 'q4_k_m' });
    assert.deepEqual(parseModelReference('google/gemma-3-4b-it:latest'), { repo: 'google/gemma-3-4b-it', quant: undefined });
  });
});

describe('the environment and a cache written by Python', () => {
  test('HF_HUB_CACHE, HF_HOME, XDG_CACHE_HOME, HF_ENDPOINT, HF_TOKEN and the token file, HF_HUB_OFFLINE', () => {
    const home = join(tmp.dir, 'hf-home');
    mkdirSync(home);
    writeFileSync(join(home, 'token'), 'hf_fromfile\n');
    const a = hubSettings({ HF_HOME: home, HF_ENDPOINT: 'https://mirror.example/', HF_HUB_OFFLINE: '1' });
    assert.deepEqual(a, { cacheDir: join(home, 'hub'), endpoint: 'https://mirror.example', token: 'hf_fromfile', tokenSource: join(home, 'token'), offline: true });
    const b = hubSettings({ HF_HOME: home, HF_HUB_CACHE: '/c', HF_TOKEN: 'hf_env', HF_HUB_OFFLINE: '0' });
    assert.deepEqual([b.cacheDir, b.endpoint, b.token, b.tokenSource, b.offline], ['/c', 'https://huggingface.co', 'hf_env', 'HF_TOKEN', false]);
    assert.equal(hubSettings({ XDG_CACHE_HOME: '/xdg', HF_TOKEN_PATH: '/nonexistent' }).cacheDir, '/xdg/huggingface/hub');
  });

  test('a folder laid out by hand the way huggingface_hub writes it is found, and loads', async () => {
    // What `hf download google/gemma-3-hand` leaves: blobs named by sha256 (LFS) or git blob id,
    // relative links in snapshots/<commit>/, refs/main holding the commit.
    const cache = join(tmp.dir, 'python-cache');
    const dir = join(cache, 'models--google--gemma-3-hand');
    const commit = 'a'.repeat(40);
    mkdirSync(join(dir, 'blobs'), { recursive: true });
    mkdirSync(join(dir, 'snapshots', commit), { recursive: true });
    mkdirSync(join(dir, 'refs'));
    writeFileSync(join(dir, 'refs', 'main'), commit);
    for (const f of ['config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json', 'model.safetensors']) {
      const content = read(TEXT, f);
      const etag = f === 'model.safetensors' || f === 'tokenizer.json' ? sha256(content)
        : createHash('sha1').update(`blob ${content.length}\0`).update(content).digest('hex');
      copyFileSync(realpathSync(join(TEXT, f)), join(dir, 'blobs', etag));
      symlinkSync(`../../blobs/${etag}`, join(dir, 'snapshots', commit, f));
    }
    const found = findCachedModel(parseModelReference('google/gemma-3-hand'), cache);
    assert.ok(found);
    assert.equal(found.path, join(dir, 'snapshots', commit));
    assert.equal(found.kind, 'safetensors');
    // Offline pull of it is the same answer, without a request.
    const { result, requests } = await logged(() => pullModel('google/gemma-3-hand', { settings: { ...settings(), cacheDir: cache, offline: true } }));
    assert.equal(requests, 0);
    assert.equal(result.path, found.path);
    const model = await load(found.path, { backend: 'js', contextLength: 32 });
    model.dispose();
  });
});
