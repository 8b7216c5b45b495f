// The web page's modules that need no browser, run in Node: the highlighter, code blocks in the
// Markdown renderer, the request body built from a conversation's settings, and the exports.
// (test/web-page.test.ts drives the page itself in Chromium.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { REPO_ROOT } from './helpers.js';

const web = (name: string): Promise<any> => import(pathToFileURL(join(REPO_ROOT, 'src', 'server', 'web', name)).href);

test('the highlighter marks keywords, strings, comments, numbers and calls, and escapes everything', async () => {
  const { highlight, languageOf } = await web('highlight.js');
  assert.equal(highlight('const x = "a<b>"; // done & dusted\nfoo(0x1F)', 'ts'),
    '<span class="hl-kw">const</span> x = <span class="hl-str">&quot;a&lt;b&gt;&quot;</span>; ' +
    '<span class="hl-com">// done &amp; dusted</span>\n<span class="hl-fn">foo</span>(<span class="hl-num">0x1F</span>)');
  assert.equal(highlight('def f():\n    return None  # "not a string"', 'python'),
    '<span class="hl-kw">def</span> <span class="hl-fn">f</span>():\n    <span class="hl-kw">return</span> ' +
    '<span class="hl-lit">None</span>  <span class="hl-com"># &quot;not a string&quot;</span>');
  assert.equal(highlight('{"a": [1.5e3, true, "x:y"]}', 'json'),
    '{<span class="hl-key">&quot;a&quot;</span>: [<span class="hl-num">1.5e3</span>, <span class="hl-lit">true</span>, <span class="hl-str">&quot;x:y&quot;</span>]}');
  assert.equal(highlight('SELECT name FROM t', 'sql'), '<span class="hl-kw">SELECT</span> name <span class="hl-kw">FROM</span> t');
  // A string left open (a reply still streaming) ends at the line's end; the next line is code again.
  assert.equal(highlight('let s = "open\nlet t', 'js'),
    '<span class="hl-kw">let</span> s = <span class="hl-str">&quot;open</span>\n<span class="hl-kw">let</span> t');
  // Unknown or missing languages are only escaped.
  assert.equal(highlight('<b>if</b>', 'brainfuck'), '&lt;b&gt;if&lt;/b&gt;');
  assert.equal(highlight('if x', ''), 'if x');
  assert.equal(languageOf('PY'), 'python');
  assert.equal(languageOf('constructor'), null);
});

test('a fenced code block renders with its language, a copy button and highlighted, escaped code', async () => {
  const { renderMarkdown } = await web('markdown.js');
  assert.equal(renderMarkdown('Try:\n\n```js\nlet a = "<x>";\n```'),
    '<p>Try:</p><div class="code-block"><div class="code-bar"><span>js</span>' +
    '<button type="button" class="copy-code" aria-label="Copy code">Copy</button></div>' +
    '<pre><code class="language-js"><span class="hl-kw">let</span> a = <span class="hl-str">&quot;&lt;x&gt;&quot;</span>;</code></pre></div>');
  // A fence naming markup in its info string cannot inject it.
  assert.match(renderMarkdown('```"><img>\nx\n```'), /<span>&quot;&gt;&lt;img&gt;<\/span>/);
});

test('the request body carries the set sampling fields, the system prompt first and JSON mode', async () => {
  const { requestBody, DEFAULT_SETTINGS } = await web('request.js');
  const messages = [
    { role: 'user', content: 'Hi', stats: '3 tokens' },
    { role: 'assistant', content: '', tool_calls: [{ id: 'c1', type: 'function', function: { name: 'f', arguments: '{}' } }], format: 'json' },
  ];
  assert.deepEqual(requestBody('m', DEFAULT_SETTINGS, messages.slice(0, 1)), {
    model: 'm', messages: [{ role: 'user', content: 'Hi' }], stream: true, stream_options: { include_usage: true }, max_tokens: 512,
  });
  const settings = {
    system: 'Be brief.', temperature: '0.7', topP: '0.9', topK: '40', minP: '0.05', seed: '-3', maxTokens: '64', jsonMode: true,
  };
  assert.deepEqual(requestBody('m', settings, messages), {
    model: 'm', stream: true, stream_options: { include_usage: true },
    messages: [
      { role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hi' },
      { role: 'assistant', content: '', tool_calls: [{ id: 'c1', type: 'function', function: { name: 'f', arguments: '{}' } }] },
    ],
    temperature: 0.7, top_p: 0.9, top_k: 40, min_p: 0.05, seed: -3, max_tokens: 64, response_format: { type: 'json_object' },
  });
  // Blank (or whitespace) fields are left to the server's defaults; a system prompt of spaces is no prompt.
  const body = requestBody('m', { ...settings, system: '  ', temperature: ' ', seed: '', jsonMode: false }, messages.slice(0, 1));
  assert.deepEqual(Object.keys(body), ['model', 'messages', 'stream', 'stream_options', 'top_p', 'top_k', 'min_p', 'max_tokens']);
  assert.equal(body.messages.length, 1);
});

test('exports: JSON keeps the messages as the API takes them, Markdown reads as a transcript', async () => {
  const store = await web('store.js');
  const conv = store.newConversation({ system: 'Be brief.', temperature: '0' });
  assert.equal(conv.title, 'New chat');
  conv.messages.push(
    { role: 'user', content: [{ type: 'image_url', image_url: { url: 'data:image/png;base64,AAAA' } }, { type: 'text', text: 'What is   this?\nA cat?' }] },
    { role: 'assistant', content: 'A **cat**.', stats: '4 tokens' },
    { role: 'assistant', content: '', tool_calls: [{ id: 'c1', type: 'function', function: { name: 'lookup', arguments: '{"q":"cat"}' } }] },
  );
  conv.title = store.titleFrom(conv.messages);
  assert.equal(conv.title, 'What is this? A cat?');
  assert.equal(store.titleFrom([{ role: 'user', content: 'x'.repeat(80) }]), 'x'.repeat(47) + '…');
  const json = JSON.parse(store.exportJson(conv));
  assert.equal(json.title, 'What is this? A cat?');
  assert.deepEqual(json.settings, { system: 'Be brief.', temperature: '0' });
  assert.deepEqual(json.messages, conv.messages.map(({ stats: _stats, ...m }: any) => m));
  assert.equal(new Date(json.created).getTime(), conv.createdAt);
  assert.equal(store.exportMarkdown(conv),
    '# What is this? A cat?\n\n## System\n\nBe brief.\n\n## User\n\n*[image 1]*\n\nWhat is   this?\nA cat?\n\n' +
    '## Assistant\n\nA **cat**.\n\n## Assistant\n\nTool call `lookup`:\n\n```json\n{\n  "q": "cat"\n}\n```\n\n');
  assert.equal(store.fileNameFor(conv, 'md'), 'What-is-this-A-cat.md');
  assert.equal(store.fileNameFor({ title: '???' }, 'json'), 'chat.json');
  assert.equal(store.prettyArguments('not json'), 'not json');
});
