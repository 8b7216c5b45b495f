// The server's KV cache type: startServer's load.kvType (the CLI's --kv-type) reaches the
// worker's load(), /health reports it, greedy replies equal the f32 server's on the tiny fixture,
// and an unknown type fails the start with a message naming the option.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { KvType } from '../src/backend/backend.js';
import { client, startTestServer } from './server-helpers.js';

async function greedyReply(kvType: KvType | undefined): Promise<{ health: any; text: string }> {
  const server = await startTestServer({ load: kvType ? { kvType } : {} });
  try {
    const health: any = await (await fetch(`${server.url}/health`)).json();
    const r = await client(server).completions.create({ model: 'tiny-text', prompt: 'The capital of France is', max_tokens: 12, temperature: 0 });
    return { health, text: r.choices[0]!.text };
  } finally {
    await server.close();
  }
}

test('the server loads with the KV type asked for and replies as the f32 server does (greedy)', async () => {
  const f32 = await greedyReply(undefined);
  const f16 = await greedyReply('f16');
  assert.equal(f32.health.kv_type, 'f32');
  assert.equal(f16.health.kv_type, 'f16');
  assert.ok(f32.text.length > 0);
  assert.equal(f16.text, f32.text);
});

test('an unknown KV type fails the server start, naming the option', async () => {
  await assert.rejects(startTestServer({ load: { kvType: 'f8' as KvType } }), /kvType must be 'f32', 'f16', 'bf16', got "f8"/);
});
