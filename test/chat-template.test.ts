// Chat template: the checkpoint's own Jinja template against the recorded renders of the real Gemma 3
// template (test/fixtures/chat-template), token ids of each render, image placeholder expansion, and
// loading / validation errors.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GemmaError } from '../src/errors.js';
import {
  ChatTemplate,
  expandImagePlaceholders,
  loadChatTemplate,
  renderedStartsWithBos,
} from '../src/chat/chat-template.js';
import type { ChatMessage } from '../src/chat/messages.js';
import { loadTokenizer } from '../src/tokenizer/tokenizer.js';
import { fixturePath, readJson } from './helpers.js';

interface Render {
  options: { bos_token: string; add_generation_prompt: boolean };
  rendered?: string;
  ids?: number[];
  error?: string;
}
interface Case {
  id: string;
  note: string;
  messages: ChatMessage[];
  expect_error: boolean;
  renders: Render[];
}
interface ImageExample {
  id: string;
  messages: ChatMessage[];
  options: { add_generation_prompt: boolean };
  rendered: string;
  num_images: number;
  prompt: string;
  prompt_sha256: string;
  ids: number[];
  num_tokens: number;
  num_image_soft_tokens: number;
  token_type_ids: number[];
}
interface Fixture {
  template_sha256: string;
  chat_template: string;
  cases: Case[];
  image_expansion: { image_seq_length: number; image_id: number; examples: ImageExample[] };
}

const fixture = readJson<Fixture>(fixturePath('chat-template', 'gemma3-chat-template-cases.json'));
const sha256 = (text: string): string => createHash('sha256').update(text, 'utf8').digest('hex');

/** The reference (@huggingface/jinja) renders `<bos>` for an empty list; we reject it on purpose. */
const REJECTED_BY_VALIDATION = new Set(['chat-026']);

function assertGemmaError(fn: () => unknown, code: string, ...fragments: string[]): GemmaError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof GemmaError, `expected a GemmaError, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  for (const fragment of fragments) assert.ok(caught.message.includes(fragment), `"${caught.message}" lacks "${fragment}"`);
  return caught;
}

async function assertRejects(promise: Promise<unknown>, code: string, ...fragments: string[]): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof GemmaError, `expected a GemmaError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    for (const fragment of fragments) assert.ok(err.message.includes(fragment), `"${err.message}" lacks "${fragment}"`);
    return true;
  });
}

describe('loadChatTemplate on the fixtures', () => {
  test('tiny-text: template from tokenizer_config.json is the real Gemma 3 template', async () => {
    const template = await loadChatTemplate(fixturePath('tiny-text'));
    assert.equal(sha256(template.source), fixture.template_sha256);
    assert.equal(template.source, fixture.chat_template);
    assert.ok(template.origin.endsWith('tokenizer_config.json (chat_template)'), template.origin);
    assert.equal(template.bosToken, '<bos>');
    assert.equal(template.specialTokens['eos_token'], '<end_of_turn>');
    assert.equal(template.specialTokens['boi_token'], '<start_of_image>');
    assert.equal(template.specialTokens['image_token'], '<image_soft_token>');
    assert.equal(template.specialTokens['add_bos_token'], undefined);
  });

  test('tiny-vlm: template from chat_template.json, the same text', async () => {
    const template = await loadChatTemplate(fixturePath('tiny-vlm'));
    assert.ok(template.origin.endsWith('chat_template.json'), template.origin);
    assert.equal(template.source, fixture.chat_template);
    assert.equal(template.bosToken, '<bos>');
  });
});

describe('fixture cases render exactly as the reference', () => {
  const templates: ChatTemplate[] = [];
  before(async () => {
    templates.push(await loadChatTemplate(fixturePath('tiny-text')), await loadChatTemplate(fixturePath('tiny-vlm')));
  });

  test('covers 32 cases, two renders each', () => {
    assert.equal(fixture.cases.length, 32);
    for (const c of fixture.cases) assert.equal(c.renders.length, 2, c.id);
  });

  for (const c of fixture.cases) {
    test(`${c.id}: ${c.note}`, () => {
      for (const template of templates) {
        for (const r of c.renders) {
          const addGenerationPrompt = r.options.add_generation_prompt;
          const render = () => template.render(c.messages, { addGenerationPrompt });
          if (REJECTED_BY_VALIDATION.has(c.id)) {
            assertGemmaError(render, 'INVALID_ARGUMENT', 'messages must be a non-empty array');
          } else if (r.rendered !== undefined) {
            assert.equal(render(), r.rendered, `${c.id} add_generation_prompt=${addGenerationPrompt}`);
          } else {
            assert.ok(r.error, `${c.id} has neither rendered nor error`);
            assertGemmaError(render, 'INVALID_ARGUMENT', r.error);
          }
        }
      }
    });
  }

  test('addGenerationPrompt defaults to true', () => {
    const c = fixture.cases.find((x) => x.id === 'chat-005')!;
    const withPrompt = c.renders.find((r) => r.options.add_generation_prompt)!;
    assert.equal(templates[0]!.render(c.messages), withPrompt.rendered);
  });

  test('raise_exception errors name the template and carry its message', () => {
    const err = assertGemmaError(
      () => templates[0]!.render([{ role: 'assistant', content: 'x' }]),
      'INVALID_ARGUMENT',
      'Conversation roles must alternate user/assistant/user/assistant/...',
      'tokenizer_config.json',
    );
    assert.match(err.message, /rejected these messages/);
  });

  test('a system content list starting with an image gets a hint', () => {
    const c = fixture.cases.find((x) => x.id === 'chat-031')!;
    assertGemmaError(() => templates[0]!.render(c.messages), 'INVALID_ARGUMENT', 'first item of a system message');
  });
});

describe('token ids of each render (tokenizer, addBos false)', () => {
  let encode: (text: string) => number[];
  before(async () => {
    const tokenizer = await loadTokenizer(fixturePath('tiny-text'));
    encode = (text) => tokenizer.encode(text, { addBos: false });
  });

  for (const c of fixture.cases) {
    if (!c.renders.some((r) => r.ids)) continue;
    test(`${c.id} ids`, () => {
      for (const r of c.renders) {
        if (!r.rendered || !r.ids) continue;
        const ids = encode(r.rendered);
        assert.deepEqual(ids, r.ids, `${c.id} add_generation_prompt=${r.options.add_generation_prompt}`);
        assert.equal(ids[0], 2, 'starts with exactly one BOS');
        assert.notEqual(ids[1], 2, 'no doubled BOS');
      }
    });
  }

  for (const ex of fixture.image_expansion.examples) {
    test(`${ex.id} expanded prompt ids and token types`, () => {
      const prompt = expandImagePlaceholders(ex.rendered, fixture.image_expansion.image_seq_length, {
        numImages: ex.num_images,
      });
      const ids = encode(prompt);
      assert.equal(ids.length, ex.num_tokens);
      assert.deepEqual(ids, ex.ids);
      const imageId = fixture.image_expansion.image_id;
      assert.deepEqual(ids.map((id) => (id === imageId ? 1 : 0)), ex.token_type_ids);
      assert.equal(ids.filter((id) => id === imageId).length, ex.num_image_soft_tokens);
    });
  }
});

describe('expandImagePlaceholders', () => {
  let template: ChatTemplate;
  before(async () => {
    template = await loadChatTemplate(fixturePath('tiny-text'));
  });

  for (const ex of fixture.image_expansion.examples) {
    test(`${ex.id}: ${ex.num_images} image(s)`, () => {
      const rendered = template.render(ex.messages, { addGenerationPrompt: ex.options.add_generation_prompt });
      assert.equal(rendered, ex.rendered);
      const prompt = expandImagePlaceholders(rendered, fixture.image_expansion.image_seq_length, {
        numImages: ex.num_images,
      });
      assert.equal(prompt, ex.prompt);
      assert.equal(sha256(prompt), ex.prompt_sha256);
    });
  }

  test('small N, custom tokens, no placeholders', () => {
    assert.equal(
      expandImagePlaceholders('a<start_of_image>b', 2),
      'a\n\n<start_of_image><image_soft_token><image_soft_token><end_of_image>\n\nb',
    );
    assert.equal(expandImagePlaceholders('[B]', 1, { boiToken: '[B]', eoiToken: '[E]', imageToken: '[I]' }), '\n\n[B][I][E]\n\n');
    assert.equal(expandImagePlaceholders('no images', 256, { numImages: 0 }), 'no images');
  });

  test('placeholder count must match the number of images', () => {
    assertGemmaError(
      () => expandImagePlaceholders('<start_of_image><start_of_image>', 4, { numImages: 1 }),
      'INVALID_ARGUMENT',
      '2 <start_of_image> placeholder(s) but 1 image(s)',
    );
  });

  test('imageTokensPerImage must be a positive integer', () => {
    for (const n of [0, -1, 1.5, Number.NaN]) {
      assertGemmaError(() => expandImagePlaceholders('<start_of_image>', n), 'INVALID_ARGUMENT', 'imageTokensPerImage');
    }
  });
});

describe('render input validation and pass-through', () => {
  let template: ChatTemplate;
  before(async () => {
    template = await loadChatTemplate(fixturePath('tiny-text'));
  });

  const bad: [string, unknown, string][] = [
    ['not an array', { role: 'user', content: 'hi' }, 'messages must be a non-empty array'],
    ['empty array', [], 'messages must be a non-empty array'],
    ['null message', [null], 'messages[0] must be an object'],
    ['string message', ['hello'], 'messages[0] must be an object'],
    ['missing role', [{ content: 'hi' }], 'messages[0].role must be a non-empty string'],
    ['numeric role', [{ role: 1, content: 'hi' }], 'messages[0].role must be a non-empty string'],
    ['undefined content', [{ role: 'user' }], 'Invalid content type: messages[0].content must be a string or an array'],
    ['part without type', [{ role: 'user', content: [{ text: 'x' }] }], 'messages[0].content[0] must be an object'],
    ['string part', [{ role: 'user', content: ['x'] }], 'messages[0].content[0] must be an object'],
    ['text part without text', [{ role: 'user', content: [{ type: 'text' }] }], 'messages[0].content[0].text must be a string'],
  ];
  for (const [name, messages, fragment] of bad) {
    test(`rejects ${name}`, () => {
      assertGemmaError(() => template.render(messages as ChatMessage[]), 'INVALID_ARGUMENT', fragment);
    });
  }

  test('rejects a non-boolean addGenerationPrompt', () => {
    assertGemmaError(
      () => template.render([{ role: 'user', content: 'hi' }], { addGenerationPrompt: 'yes' as unknown as boolean }),
      'INVALID_ARGUMENT',
      'addGenerationPrompt must be a boolean',
    );
  });

  test('image parts with binary pixel data render as the placeholder, quickly', () => {
    const pixels = new Uint8Array(896 * 896 * 3);
    const start = performance.now();
    const text = template.render([
      { role: 'user', content: [{ type: 'image', image: { width: 896, height: 896, data: pixels } }, { type: 'text', text: 'What is it?' }] },
    ]);
    assert.ok(performance.now() - start < 500, 'pixel data must not be copied into the template');
    assert.equal(text, '<bos><start_of_turn>user\n<start_of_image>What is it?<end_of_turn>\n<start_of_turn>model\n');
  });

  test('Hugging Face / OpenAI parts are passed to the template as-is', () => {
    const messages: ChatMessage[] = [
      { role: 'user', content: [{ type: 'image_url', image_url: { url: 'data:image/png;base64,AAAA' } }, { type: 'text', text: 'Hi' }] },
    ];
    // The Gemma 3 template drops unknown item types ...
    assert.equal(template.render(messages, { addGenerationPrompt: false }), '<bos><start_of_turn>user\nHi<end_of_turn>\n');
    // ... but a checkpoint's own template can read them.
    const custom = new ChatTemplate(
      "{% for m in messages %}{% for p in m['content'] %}{{ p['type'] }}:{{ p['image_url']['url'] if p['type'] == 'image_url' else p['text'] }};{% endfor %}{% endfor %}",
    );
    assert.equal(custom.render(messages), 'image_url:data:image/png;base64,AAAA;text:Hi;');
  });

  test('special tokens are template variables; bos_token defaults to <bos>', () => {
    const t = new ChatTemplate('{{ bos_token }}|{{ eos_token }}|{{ messages[0].content }}', {
      specialTokens: { eos_token: '<eos>' },
    });
    assert.equal(t.render([{ role: 'user', content: 'x' }]), '<bos>|<eos>|x');
  });

  test('a template that does not parse is BAD_FORMAT', () => {
    assertGemmaError(() => new ChatTemplate('{% for m in messages %}', { origin: 'here.jinja' }), 'BAD_FORMAT', 'here.jinja');
  });

  test('renderedStartsWithBos', () => {
    assert.equal(renderedStartsWithBos('<bos><start_of_turn>user\n'), true);
    assert.equal(renderedStartsWithBos('<start_of_turn>user\n<bos>'), false);
    assert.equal(renderedStartsWithBos('<s>[INST]', '<s>'), true);
    assert.equal(renderedStartsWithBos('anything', ''), false);
  });
});

describe('loadChatTemplate sources and errors', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'gemma3-chat-template-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  const folder = async (name: string, files: Record<string, string>): Promise<string> => {
    const path = join(dir, name);
    await mkdir(path);
    for (const [file, text] of Object.entries(files)) await writeFile(join(path, file), text);
    return path;
  };
  const one: ChatMessage[] = [{ role: 'user', content: 'x' }];

  test('chat_template.jinja wins over chat_template.json and tokenizer_config.json', async () => {
    const path = await folder('jinja', {
      'chat_template.jinja': 'J{{ bos_token }}{{ eos_token }}',
      'chat_template.json': JSON.stringify({ chat_template: 'JSON' }),
      'tokenizer_config.json': JSON.stringify({ chat_template: 'CONFIG', bos_token: { content: '<B>' }, eos_token: '<E>' }),
    });
    const t = await loadChatTemplate(path);
    assert.equal(t.render(one), 'J<B><E>');
    assert.ok(t.origin.endsWith('chat_template.jinja'));
  });

  test('chat_template.json wins over tokenizer_config.json', async () => {
    const path = await folder('json', {
      'chat_template.json': JSON.stringify({ chat_template: 'JSON' }),
      'tokenizer_config.json': JSON.stringify({ chat_template: 'CONFIG' }),
    });
    assert.equal((await loadChatTemplate(path)).render(one), 'JSON');
  });

  test('tokenizer_config.json list form uses "default"', async () => {
    const path = await folder('list', {
      'tokenizer_config.json': JSON.stringify({
        chat_template: [
          { name: 'tool_use', template: 'TOOLS' },
          { name: 'default', template: 'DEFAULT' },
        ],
      }),
    });
    assert.equal((await loadChatTemplate(path)).render(one), 'DEFAULT');
  });

  test('list form without "default" is UNSUPPORTED_MODEL', async () => {
    const path = await folder('list-no-default', {
      'tokenizer_config.json': JSON.stringify({ chat_template: [{ name: 'tool_use', template: 'TOOLS' }] }),
    });
    await assertRejects(loadChatTemplate(path), 'UNSUPPORTED_MODEL', 'tool_use', 'default');
  });

  test('no template anywhere is UNSUPPORTED_MODEL naming the folder', async () => {
    const path = await folder('none', { 'tokenizer_config.json': JSON.stringify({ bos_token: '<bos>' }) });
    await assertRejects(loadChatTemplate(path), 'UNSUPPORTED_MODEL', path, 'no chat template was found');
    const empty = await folder('empty', {});
    await assertRejects(loadChatTemplate(empty), 'UNSUPPORTED_MODEL', empty, 'no chat template was found');
  });

  test('invalid JSON is BAD_FORMAT naming the file', async () => {
    const path = await folder('bad-json', { 'chat_template.json': '{ nope' });
    await assertRejects(loadChatTemplate(path), 'BAD_FORMAT', join(path, 'chat_template.json'));
    const noField = await folder('no-field', { 'chat_template.json': JSON.stringify({ template: 'x' }) });
    await assertRejects(loadChatTemplate(noField), 'BAD_FORMAT', '"chat_template"');
  });

  test('a missing folder is FILE_NOT_FOUND', async () => {
    await assertRejects(loadChatTemplate(join(dir, 'does-not-exist')), 'FILE_NOT_FOUND', 'does-not-exist');
  });
});
