// Image input through the public API and the CLI on the tiny random Gemma 3 VLM (tiny-vlm),
// from the PNG files to the Hugging Face goldens: processor text and ids, logits, greedy
// generations, multi-turn reuse, and the typed errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GemmaError, collect, load, type ChatMessage, type Gemma3, type LogitsResult } from '../src/index.js';
import { decodeImage } from '../src/vision/decode.js';
import { REPO_ROOT, fixturePath, maxAbsDiff, readF32, readJson } from './helpers.js';

const GOLDENS = fixturePath('goldens', 'tiny-vlm');
const manifest = readJson(join(GOLDENS, 'manifest.json'));
const golden = (ref: { file: string }) => readF32(join(GOLDENS, ref.file));
const imagePath = (name: string) => join(GOLDENS, manifest.images.find((i: any) => i.name === name).file);
const VLM = fixturePath('tiny-vlm');
const model: Gemma3 = await load(VLM, { contextLength: 128 });

/** The manifest's messages with each image name replaced by its PNG path. */
function messagesOf(prompt: any): ChatMessage[] {
  return prompt.messages.map((m: any) => ({
    ...m,
    content: Array.isArray(m.content)
      ? m.content.map((p: any) => (p.type === 'image' ? { ...p, image: imagePath(p.image) } : p))
      : m.content,
  }));
}
const panAndScanOf = (prompt: any) => ({ panAndScan: prompt.processor_kwargs?.do_pan_and_scan === true });
const promptNamed = (name: string) => manifest.prompts.find((p: any) => p.name === name);

async function rejects(fn: () => unknown, code: string, pattern?: RegExp): Promise<void> {
  await assert.rejects(async () => fn(), (err: unknown) => {
    assert.ok(err instanceof GemmaError, `expected a GemmaError, got ${err}`);
    assert.equal(err.code, code, err.message);
    if (pattern) assert.match(err.message, pattern);
    return true;
  });
}

/** Logits within 1e-4 of the goldens: log-sum-exp, top-10 values (and ids where not tied) and argmax. */
function checkLogits(result: LogitsResult, prompt: any): void {
  assert.deepEqual(result.inputIds, prompt.input_ids);
  assert.equal(result.positions.length, prompt.length);
  const lse = golden(prompt.logsumexp);
  const topk = golden(prompt.topk_logits);
  let worst = 0;
  result.positions.forEach((p, t) => {
    worst = Math.max(worst, Math.abs(p.logsumexp - lse[t]!));
    assert.equal(p.top[0]![0], prompt.argmax[t], `argmax at ${t}`);
    for (let k = 0; k < 10; k++) {
      const [id, value] = p.top[k]!;
      worst = Math.max(worst, Math.abs(value - topk[t * 10 + k]!));
      const tied = [k - 1, k + 1].some((j) => j >= 0 && j < 10 && Math.abs(topk[t * 10 + j]! - topk[t * 10 + k]!) < 1e-4);
      if (!tied) assert.equal(id, prompt.topk_ids[t][k], `top-${k + 1} id at position ${t}`);
    }
  });
  assert.ok(worst < 1e-4, `logsumexp/top-10 max error ${worst}`);
}

for (const prompt of manifest.prompts as any[]) {
  test(`prompt '${prompt.name}': template text, expanded text, ids and pixels equal the reference processor's`, async () => {
    const prepared = await model.prepareChat(messagesOf(prompt), panAndScanOf(prompt));
    assert.equal(prepared.templateText, prompt.chat_template_text);
    assert.equal(prepared.text, prompt.expanded_text);
    assert.deepEqual(prepared.ids, prompt.input_ids);
    if (prompt.pixel_values) {
      assert.equal(prepared.images.length, prompt.pixel_values.shape[0]);
      const all = Float32Array.from(prepared.images.flatMap((x) => [...x]));
      assert.ok(maxAbsDiff(all, golden(prompt.pixel_values)) < 1e-6, 'pixel_values');
    } else {
      assert.equal(prepared.images.length, 0);
    }
  });

  test(`prompt '${prompt.name}': logitsForMessages() matches the reference logits at every position`, async () => {
    checkLogits(await model.logitsForMessages(messagesOf(prompt), 10, panAndScanOf(prompt)), prompt);
  });
}

for (const gen of manifest.generation as any[]) {
  test(`chat() greedy generation '${gen.name}' reproduces all ${gen.generated_ids.length} reference tokens`, async () => {
    const prompt = promptNamed(gen.from_prompt);
    const result = await collect(model.chat(messagesOf(prompt), { temperature: 0, maxTokens: 24, ...panAndScanOf(prompt) }));
    assert.deepEqual(result.tokenIds, gen.generated_ids);
    assert.equal(result.stats.promptTokens, gen.prompt_ids.length);
    assert.equal(result.text, model.tokenizer.decode(gen.generated_ids, { skipSpecialTokens: true }));
  });
}

test('every image form gives the same prompt: path, file: URL, Buffer, ArrayBuffer, data: URL, raw RGBA, RgbImage, url/path keys', async () => {
  const file = imagePath('rgba_small');
  const bytes = readFileSync(file);
  const rgb = await decodeImage(file);
  const rgba = new Uint8Array(rgb.width * rgb.height * 4);
  for (let i = 0; i < rgb.width * rgb.height; i++) rgba.set([...rgb.data.subarray(i * 3, i * 3 + 3), 7], i * 4);
  const forms: object[] = [
    { image: new URL(`file://${file}`).href }, { image: bytes }, { image: new Uint8Array(bytes) },
    { image: bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length) },
    { image: `data:image/png;base64,${bytes.toString('base64')}` },
    { image: { data: rgba, width: rgb.width, height: rgb.height, channels: 4 } }, { image: rgb }, { url: file }, { path: file },
  ];
  const reference = await model.prepareChat([{ role: 'user', content: [{ type: 'image', image: file }, { type: 'text', text: 'Hi' }] }]);
  for (const form of forms) {
    const prepared = await model.prepareChat([{ role: 'user', content: [{ type: 'image', ...form }, { type: 'text', text: 'Hi' }] }]);
    assert.deepEqual(prepared.ids, reference.ids);
    assert.equal(maxAbsDiff(prepared.images[0]!, reference.images[0]!), 0);
  }
});

test('a follow-up turn after an image turn, and an image in a later turn, give the same tokens as a fresh model', async () => {
  const first: ChatMessage[] = messagesOf(promptNamed('square'));
  const opts = { temperature: 0, maxTokens: 8 };
  const a = await collect(model.chat(first, opts));
  const second: ChatMessage[] = [...first, { role: 'assistant', content: a.text }, { role: 'user', content: 'And the colours?' }];
  const b = await collect(model.chat(second, opts));
  assert.ok(b.stats.promptTokensComputed < b.stats.promptTokens, 'the text before the first image came from the cache');
  const third: ChatMessage[] = [...second, { role: 'assistant', content: b.text }, {
    role: 'user', content: [{ type: 'text', text: 'Now this one:' }, { type: 'image', image: imagePath('wide') }],
  }];
  const c = await collect(model.chat(third, { ...opts, panAndScan: true }));
  const fresh = await load(VLM, { contextLength: 128 });
  try {
    assert.deepEqual(b.tokenIds, (await collect(fresh.chat(second, opts))).tokenIds);
    const fresh2 = await load(VLM, { contextLength: 128 });
    assert.deepEqual(c.tokenIds, (await collect(fresh2.chat(third, { ...opts, panAndScan: true }))).tokenIds);
    fresh2.dispose();
  } finally {
    fresh.dispose();
  }
  const prepared = await model.prepareChat(third, { panAndScan: true });
  assert.equal(prepared.numCrops.join(), '0,3', 'the wide image gets 3 crops');
  assert.equal(prepared.images.length, 5);
});

test('a text-only conversation on the VLM is unchanged (chat, logitsForMessages, logits of chatIds)', async () => {
  const prompt = promptNamed('text_only');
  assert.deepEqual(model.chatIds(messagesOf(prompt)), prompt.input_ids);
  checkLogits(model.logits(prompt.input_ids, 10), prompt);
  checkLogits(await model.logitsForMessages(messagesOf(prompt)), prompt);
  assert.equal(model.hasVision, true);
});

// ---------------------------------------------------------------------------------------------------
// Errors

const withImage = (image: unknown, text = 'What is this?'): ChatMessage[] =>
  [{ role: 'user', content: [{ type: 'image', image: image as any }, { type: 'text', text }] }];

test('corrupt, truncated, unsupported and zero-sized images are typed errors', async () => {
  const png = readFileSync(imagePath('square'));
  const corrupt = Buffer.from(png);
  corrupt.fill(0x5a, 60, png.length - 20);
  await rejects(() => model.chat(withImage(corrupt)).next(), 'BAD_FORMAT', /corrupt|truncated/);
  await rejects(() => model.chat(withImage(png.subarray(0, Math.floor(png.length / 2)))).next(), 'BAD_FORMAT', /truncated|corrupt/);
  const bmp = Buffer.concat([Buffer.from('BM'), Buffer.alloc(64)]);
  await rejects(() => model.chat(withImage(bmp)).next(), 'BAD_FORMAT', /BMP/);
  await rejects(() => model.chat(withImage(Buffer.from('just some text, not an image'))).next(), 'BAD_FORMAT', /text/);
  await rejects(() => model.chat(withImage({ data: new Uint8Array(0), width: 0, height: 0 })).next(), 'INVALID_ARGUMENT', /zero-sized/);
  await rejects(() => model.logitsForMessages(withImage(new Uint8Array(0))), 'BAD_FORMAT', /empty/);
  await rejects(() => model.chat(withImage(join(REPO_ROOT, 'no-such-image.png'))).next(), 'FILE_NOT_FOUND', /no-such-image/);
  await rejects(() => model.chat(withImage('https://example.com/cat.png')).next(), 'INVALID_ARGUMENT', /remote images are disabled/);
  await rejects(() => model.chat(withImage(42)).next(), 'INVALID_ARGUMENT', /image must be/);
  await rejects(() => model.chat([{ role: 'user', content: [{ type: 'image' }] }]).next(), 'INVALID_ARGUMENT', /has no image/);
  // After all those failures the model still works.
  const gen = manifest.generation[0];
  assert.deepEqual((await collect(model.chat(messagesOf(promptNamed('square')), { temperature: 0, maxTokens: 24 }))).tokenIds, gen.generated_ids);
});

test('an image over maxImagePixels is refused before decoding', async () => {
  const small = await load(VLM, { contextLength: 64, maxImagePixels: 10_000 });
  try {
    await rejects(() => small.chat(withImage(imagePath('square'))).next(), 'INVALID_ARGUMENT', /120x120 = 14400 pixels, over the limit of 10000/);
    const ok = await small.logitsForMessages(withImage(imagePath('rgba_small'))); // 37x23 is under the limit
    assert.ok(ok.positions.length > 0);
  } finally {
    small.dispose();
  }
  await rejects(() => load(VLM, { maxImagePixels: -1 }), 'INVALID_ARGUMENT', /maxImagePixels/);
  await rejects(() => load(VLM, { panAndScan: 'yes' as any }), 'INVALID_ARGUMENT', /panAndScan/);
});

test('more images than the context holds is CONTEXT_FULL, before the vision tower runs', async () => {
  const small = await load(VLM, { contextLength: 40 });
  const encoder = (small as any).vision.encoder;
  const original = encoder.encodeImage.bind(encoder);
  let calls = 0;
  encoder.encodeImage = (pixels: Float32Array) => {
    calls++;
    return original(pixels);
  };
  try {
    const many: ChatMessage[] = [{ role: 'user', content: [...Array(6)].map(() => ({ type: 'image', image: imagePath('square') })) }];
    await rejects(() => small.chat(many).next(), 'CONTEXT_FULL', /context holds 40/);
    await rejects(() => small.logitsForMessages(many), 'CONTEXT_FULL');
    // Pan & scan: the crops only become known after decoding, still before the tower.
    const tall = messagesOf(promptNamed('tall_pan_and_scan'));
    await small.prepareChat(tall); // fits without crops
    await rejects(() => small.chat(tall, { panAndScan: true }).next(), 'CONTEXT_FULL', /63 tokens/);
    assert.equal(calls, 0, 'the vision tower never ran');
    await collect(small.chat(tall, { maxTokens: 2 }));
    assert.equal(calls, 1);
  } finally {
    small.dispose();
  }
});

test('a text-only checkpoint given an image says it has no vision tower', async () => {
  const text = await load(fixturePath('tiny-text'), { contextLength: 64 });
  try {
    assert.equal(text.hasVision, false);
    await rejects(() => text.chat(withImage(imagePath('square'))).next(), 'INVALID_ARGUMENT', /no vision tower/);
    await rejects(() => text.logitsForMessages(withImage(imagePath('square'))), 'INVALID_ARGUMENT', /no vision tower/);
    await rejects(() => text.prepareChat(withImage(imagePath('square'))), 'INVALID_ARGUMENT', /no vision tower/);
    const ok = await text.prepareChat([{ role: 'user', content: 'Hi' }]);
    assert.deepEqual(ok.ids, text.chatIds([{ role: 'user', content: 'Hi' }]));
  } finally {
    text.dispose();
  }
});

test('image and placeholder counts must match; bad panAndScan values are rejected', async () => {
  const inSystem: ChatMessage[] = [
    { role: 'system', content: [{ type: 'text', text: 'Be brief.' }, { type: 'image', image: imagePath('square') }] },
    { role: 'user', content: 'Hi' },
  ];
  await rejects(() => model.chat(inSystem).next(), 'INVALID_ARGUMENT', /1 image\(s\)/);
  await rejects(() => model.chat(withImage(imagePath('square'), 'a literal <start_of_image> here')).next(), 'INVALID_ARGUMENT', /placeholder/);
  await rejects(() => model.chat(withImage(imagePath('square')), { panAndScan: 1 as any }), 'INVALID_ARGUMENT', /panAndScan/);
});

// ---------------------------------------------------------------------------------------------------
// CLI

function cli(args: string[], input?: string): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js'), ...args], {
    cwd: REPO_ROOT, encoding: 'utf8', input: input ?? '', timeout: 120_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A temporary folder with copies of the test images and a messages.json that names them relatively. */
function messagesDir(prompt: any): { dir: string; file: string } {
  const dir = mkdtempSync(join(tmpdir(), 'gemma3-vision-cli-'));
  for (const image of manifest.images) copyFileSync(imagePath(image.name), join(dir, `${image.name}.png`));
  const messages = prompt.messages.map((m: any) => ({
    ...m, content: m.content.map((p: any) => (p.type === 'image' ? { ...p, image: `${p.image}.png` } : p)),
  }));
  const file = join(dir, 'messages.json');
  writeFileSync(file, JSON.stringify(messages));
  return { dir, file };
}

test('CLI: gemma3 logits --messages --json equals logitsForMessages(), pan & scan included', async () => {
  for (const name of ['two_images', 'tall_pan_and_scan']) {
    const prompt = promptNamed(name);
    const { dir, file } = messagesDir(prompt);
    try {
      const args = ['logits', '--model', VLM, '--messages', file, '--json', ...(panAndScanOf(prompt).panAndScan ? ['--pan-and-scan'] : [])];
      const r = cli(args);
      assert.equal(r.status, 0, r.stderr);
      const out = JSON.parse(r.stdout);
      const lib = await model.logitsForMessages(messagesOf(prompt), 10, panAndScanOf(prompt));
      assert.deepEqual(out, { input_ids: lib.inputIds, positions: lib.positions });
      checkLogits({ inputIds: out.input_ids, positions: out.positions }, prompt);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
});

test('CLI: gemma3 run --messages and --image reproduce the reference generations', async () => {
  const square = manifest.generation.find((g: any) => g.name === 'gen_square');
  const { dir, file } = messagesDir(promptNamed('square'));
  try {
    const r = cli(['run', '--model', VLM, '--messages', file, '--temperature', '0', '--max-tokens', '24', '--json']);
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.deepEqual(out.generated_ids, square.generated_ids);
    const lib = await collect(model.chat(messagesOf(promptNamed('square')), { temperature: 0, maxTokens: 24 }));
    assert.deepEqual(out, { generated_ids: lib.tokenIds, text: lib.text, finish_reason: lib.finishReason });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const tall = manifest.generation.find((g: any) => g.name === 'gen_tall_pan_and_scan');
  const r = cli(['run', '--model', VLM, '--image', imagePath('tall_odd'), '--pan-and-scan', '--system', 'You are a helpful assistant.',
    '--temperature', '0', '--max-tokens', '24', '--json', 'What is shown here?']);
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout).generated_ids, tall.generated_ids);
});

test('CLI: gemma3 chat attaches images with --image and /image', async () => {
  const opts = { temperature: 0, maxTokens: 6 };
  const first: ChatMessage[] = [{ role: 'user', content: [{ type: 'image', image: imagePath('square') }, { type: 'text', text: 'Describe it.' }] }];
  const a = await collect(model.chat(first, opts));
  const second: ChatMessage[] = [...first, { role: 'assistant', content: a.text },
    { role: 'user', content: [{ type: 'image', image: imagePath('wide') }, { type: 'text', text: 'And this?' }] }];
  const b = await collect(model.chat(second, opts));
  const r = cli(['chat', '--model', VLM, '--image', imagePath('square'), '--temperature', '0', '--max-tokens', '6'],
    `Describe it.\n/image ${imagePath('wide')}\nAnd this?\n/image /no/such/file.png\n/exit\n`);
  assert.equal(r.status, 0, r.stderr);
  assert.ok(r.stdout.includes(a.text + '\n['), `first reply ${JSON.stringify(a.text)} in ${JSON.stringify(r.stdout)}`);
  assert.ok(r.stdout.includes(b.text + '\n['), `second reply ${JSON.stringify(b.text)} in ${JSON.stringify(r.stdout)}`);
  assert.match(r.stdout, /image file not found: \/no\/such\/file\.png/);
});

test('CLI: image errors are clear messages with a non-zero exit', () => {
  const textOnly = cli(['run', '--demo', '--image', imagePath('square'), 'What is this?']);
  assert.equal(textOnly.status, 1);
  assert.match(textOnly.stderr, /no vision tower/);
  const missing = cli(['run', '--model', VLM, '--image', join(REPO_ROOT, 'nope.png'), 'hi']);
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /image file not found: .*nope\.png/);
  const both = cli(['logits', '--model', VLM, '--ids', '2,105', '--messages', 'x.json']);
  assert.equal(both.status, 1);
  assert.match(both.stderr, /exactly one of --ids/);
  const noFile = cli(['logits', '--model', VLM, '--messages', join(REPO_ROOT, 'missing-messages.json')]);
  assert.equal(noFile.status, 1);
  assert.match(noFile.stderr, /missing-messages\.json/);
});
