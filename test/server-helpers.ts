// Shared by the server tests: start a server on an ephemeral loopback port, an OpenAI client for
// it, raw HTTP helpers and a bounded wait.
import { readFileSync } from 'node:fs';
import OpenAI from 'openai';
import { startServer, type RunningServer, type ServerOptions } from '../src/server/server.js';
import { fixturePath } from './helpers.js';

export async function startTestServer(options: Partial<ServerOptions> = {}): Promise<RunningServer> {
  return startServer({ modelPath: fixturePath('tiny-text'), host: '127.0.0.1', port: 0, context: 256, ...options });
}

export function client(server: RunningServer, apiKey = 'no-key'): OpenAI {
  return new OpenAI({ baseURL: `${server.url}/v1`, apiKey, maxRetries: 0, timeout: 60_000 });
}

export async function postJson(server: RunningServer, path: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(server.url + path, {
    method: 'POST', headers: { 'Content-Type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

/** The `data:` payloads of an SSE body, in order ('[DONE]' included). */
export function sseData(text: string): string[] {
  return text.split('\n\n').filter((r) => r.trim() !== '').map((r) => {
    const data = r.split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6));
    return data.join('\n');
  });
}

export function ndjson(text: string): any[] {
  return text.split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l));
}

/** Polls `cond` every 20 ms until true; throws after `timeoutMs`. */
export async function waitFor(cond: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A fixture picture as a data: URL and as base64. */
export function testImage(name = 'square.png'): { bytes: Buffer; base64: string; dataUrl: string; path: string } {
  const path = fixturePath('goldens', 'images', name);
  const bytes = readFileSync(path);
  const base64 = bytes.toString('base64');
  return { bytes, base64, dataUrl: `data:image/png;base64,${base64}`, path };
}

/** The value of a metric line (first match) in the Prometheus text. */
export function metric(text: string, name: string): number {
  const line = text.split('\n').find((l) => l.startsWith(name + ' ') || l.startsWith(name + '{'));
  if (!line) throw new Error(`metric ${name} not found`);
  return Number(line.slice(line.lastIndexOf(' ') + 1));
}
