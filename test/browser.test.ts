// The web chat page in a real browser (Playwright driving Debian's Chromium): it loads from the
// server alone, streams a reply rendered as Markdown, attaches an image (file picker, drag and
// drop, paste), stops a reply, starts a new chat. Screenshots go to test-output/browser/.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import type { RunningServer } from '../src/server/server.js';
import { REPO_ROOT, fixturePath } from './helpers.js';
import { startTestServer, testImage } from './server-helpers.js';

const CHROMIUM = '/usr/bin/chromium';
const skip = existsSync(CHROMIUM) ? false : `${CHROMIUM} is not installed (CI installs it with apt-get install chromium)`;
const OUT = join(REPO_ROOT, 'test-output', 'browser');

let server: RunningServer;
let browser: BrowserContext;
let profile: string;
let page: Page;

// Whether the library's vision path is there decides, now, if the image test counts or waits.

before(async () => {
  if (skip) return;
  mkdirSync(OUT, { recursive: true });
  profile = mkdtempSync(join(tmpdir(), 'gemma3-chromium-'));
  const { chromium } = await import('playwright-core');
  server = await startTestServer({ modelPath: fixturePath('tiny-vlm') });
  // A fresh profile directory (Playwright passes it as --user-data-dir).
  browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM, headless: true, timeout: 60_000, viewport: { width: 1100, height: 800 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  page = browser.pages()[0] ?? await browser.newPage();
  page.setDefaultTimeout(30_000);
  // Everything the page loads must come from the server itself.
  page.on('request', (req) => {
    const url = req.url();
    if (!url.startsWith(server.url) && !url.startsWith('data:') && !url.startsWith('blob:')) throw new Error(`the page requested ${url}`);
  });
});
after(async () => {
  await browser?.close();
  await server?.close();
  if (profile) rmSync(profile, { recursive: true, force: true });
});

async function openFresh(): Promise<void> {
  const external: string[] = [];
  page.on('requestfailed', (r) => external.push(r.url()));
  await page.goto(server.url + '/');
  await page.locator('#model').filter({ hasText: 'tiny-vlm' }).waitFor();
  // The page reopens the last conversation: each test starts its own.
  await page.locator('#new-chat').click();
  await page.locator('#temperature').fill('0');
  await page.locator('#max-tokens').fill('12');
  await page.locator('#max-tokens').dispatchEvent('change');
}

/** Sends `text` and waits for the finished assistant bubble; returns it. */
async function sendAndWait(text: string) {
  const before = await page.locator('.message.assistant').count();
  await page.locator('#input').fill(text);
  await page.locator('#input').press('Enter');
  const bubble = page.locator('.message.assistant').nth(before);
  await bubble.waitFor();
  await page.locator('.message.assistant.streaming').waitFor({ state: 'detached', timeout: 60_000 });
  return bubble;
}

test('the page streams a reply with tokens/s, rendered as Markdown', { skip }, async () => {
  await openFresh();
  assert.equal(await page.title(), 'Gemma 3 chat');
  const bubble = await sendAndWait('Hello there!');
  assert.ok((await bubble.locator('.body').innerText()).trim().length > 0, 'the reply has text');
  assert.match(await bubble.locator('.stats').innerText(), /\d+ tokens · [\d.]+ tokens\/s · first token [\d.]+ s/);
  assert.equal(await bubble.locator('.error').count(), 0);
  // The Markdown renderer, on the page: markup from the model is escaped, Markdown is rendered.
  const html = await page.evaluate(async () => {
    const md = await import('/markdown.js' as string);
    return md.renderMarkdown('# T\n\n**b** `x<y>` <img src=x onerror=alert(1)>\n\n- a\n- b');
  });
  assert.equal(html, '<h1>T</h1><p><strong>b</strong> <code>x&lt;y&gt;</code> &lt;img src=x onerror=alert(1)&gt;</p><ul><li>a</li><li>b</li></ul>');
  await page.screenshot({ path: join(OUT, 'chat-text.png'), fullPage: true });
});

test('attach an image with the file picker, send it, see the streamed reply', { skip }, async () => {
  await openFresh();
  await page.locator('#file').setInputFiles(testImage('square.png').path);
  await page.locator('.attachments .thumb img').waitFor();
  const bubble = await sendAndWait('What is in this picture?');
  const user = page.locator('.message.user').last();
  assert.equal(await user.locator('img.attached').count(), 1);
  assert.equal(await bubble.locator('.error').count(), 0, await bubble.innerText());
  assert.ok((await bubble.locator('.body').innerText()).trim().length > 0);
  assert.match(await bubble.locator('.stats').innerText(), /tokens\/s/);
  await page.screenshot({ path: join(OUT, 'chat-image.png'), fullPage: true });
});

test('images can be dropped and pasted too; thumbnails can be removed', { skip }, async () => {
  await openFresh();
  const b64 = testImage('square.png').base64;
  const count = await page.evaluate(async (data) => {
    const { DataTransfer, DragEvent, ClipboardEvent, File, document, atob } = globalThis as any; // browser globals
    const bytes = Uint8Array.from(atob(data) as string, (c) => c.charCodeAt(0));
    const file = () => new File([bytes], 'square.png', { type: 'image/png' });
    const drop = new DataTransfer();
    drop.items.add(file());
    document.dispatchEvent(new DragEvent('drop', { dataTransfer: drop, bubbles: true, cancelable: true }));
    const paste = new DataTransfer();
    paste.items.add(file());
    document.dispatchEvent(new ClipboardEvent('paste', { clipboardData: paste, bubbles: true, cancelable: true }));
    for (let i = 0; i < 100 && document.querySelectorAll('.attachments .thumb').length < 2; i++) await new Promise((r) => setTimeout(r, 20));
    return document.querySelectorAll('.attachments .thumb').length;
  }, b64);
  assert.equal(count, 2);
  await page.locator('.attachments .thumb button').first().click();
  assert.equal(await page.locator('.attachments .thumb').count(), 1);
});

test('the stop button ends a reply; new chat clears the conversation', { skip }, async () => {
  await openFresh();
  await page.locator('#max-tokens').fill('200');
  await page.locator('#max-tokens').dispatchEvent('change');
  await page.locator('#input').fill('Tell me a long story.');
  await page.locator('#input').press('Enter');
  await page.locator('#stop').waitFor({ state: 'visible' });
  await page.locator('.message.assistant .stats').filter({ hasText: /[1-9]\d* tokens/ }).waitFor();
  await page.locator('#stop').click();
  await page.locator('.message.assistant.streaming').waitFor({ state: 'detached' });
  assert.match(await page.locator('.message.assistant .stats').last().innerText(), /stopped/);
  await page.locator('#send').waitFor({ state: 'visible' });
  for (let i = 0; i < 50 && server.engine.active > 0; i++) await new Promise((r) => setTimeout(r, 20));
  assert.equal(server.engine.active, 0, 'the server stopped generating');
  await page.screenshot({ path: join(OUT, 'chat-stopped.png'), fullPage: true });
  await page.locator('#new-chat').click();
  assert.equal(await page.locator('.message').count(), 0);
  assert.ok(await page.locator('#empty').isVisible());
});
