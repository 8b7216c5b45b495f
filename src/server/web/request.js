// One chat request: the body /v1/chat/completions receives for a conversation and its settings,
// and the streamed reply read from its server-sent events (text and tool-call fragments).

/** Settings a new conversation starts with; a blank sampling field means "the model's default". */
export const DEFAULT_SETTINGS = {
  system: '', temperature: '', topP: '', topK: '', minP: '', seed: '', maxTokens: '512', jsonMode: false,
};

// Each setting, the request field it fills and how its text is read; blank fields are not sent.
const SAMPLING_FIELDS = [
  ['temperature', 'temperature', Number],
  ['topP', 'top_p', Number],
  ['topK', 'top_k', (v) => Math.floor(Number(v))],
  ['minP', 'min_p', Number],
  ['seed', 'seed', (v) => Math.floor(Number(v))],
  ['maxTokens', 'max_tokens', (v) => Math.floor(Number(v))],
];

/** The request body for the conversation's messages so far. */
export function requestBody(model, settings, messages) {
  const sent = messages.map((m) => ({
    role: m.role,
    content: m.content,
    ...(m.tool_calls?.length ? { tool_calls: m.tool_calls } : {}),
  }));
  if (settings.system?.trim()) sent.unshift({ role: 'system', content: settings.system });
  const body = { model, messages: sent, stream: true, stream_options: { include_usage: true } };
  for (const [key, field, parse] of SAMPLING_FIELDS) {
    const text = String(settings[key] ?? '').trim();
    if (text === '') continue;
    const value = parse(text);
    if (Number.isFinite(value)) body[field] = value;
  }
  if (settings.jsonMode) body.response_format = { type: 'json_object' };
  return body;
}

/**
 * Posts `body` and reads the stream, calling `onUpdate(reply)` as it grows. Resolves to the reply
 * { text, toolCalls, finish, usage, firstTokenAt }; rejects with the server's error message.
 */
export async function streamChat(body, { headers, signal, onUpdate }) {
  const res = await fetch('/v1/chat/completions', { method: 'POST', headers, body: JSON.stringify(body), signal });
  if (!res.ok) {
    const err = await res.json().catch(() => ({}));
    throw new Error(err?.error?.message || `HTTP ${res.status} ${res.statusText}`);
  }
  const reply = { text: '', toolCalls: [], finish: null, usage: null, chunks: 0, firstTokenAt: 0 };
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf('\n\n')) >= 0) {
      const record = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const data = record.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trimStart()).join('\n');
      if (!data || data === '[DONE]') continue;
      applyChunk(reply, JSON.parse(data));
      onUpdate?.(reply);
    }
  }
  return reply;
}

function applyChunk(reply, msg) {
  if (msg.error) throw new Error(msg.error.message);
  if (msg.usage) reply.usage = msg.usage;
  const choice = msg.choices?.[0];
  if (!choice) return;
  const delta = choice.delta ?? choice.message ?? {};
  if (delta.content) {
    reply.firstTokenAt ||= performance.now();
    reply.text += delta.content;
    reply.chunks++;
  }
  if (delta.tool_calls?.length) reply.chunks++;
  for (const part of delta.tool_calls ?? []) {
    reply.firstTokenAt ||= performance.now();
    // OpenAI streams a call as fragments keyed by index: the id and name first, then pieces of the arguments.
    const index = part.index ?? reply.toolCalls.length;
    const call = (reply.toolCalls[index] ??= { id: '', type: 'function', function: { name: '', arguments: '' } });
    if (part.id) call.id = part.id;
    if (part.function?.name) call.function.name += part.function.name;
    if (part.function?.arguments) call.function.arguments += part.function.arguments;
  }
  if (choice.finish_reason) reply.finish = choice.finish_reason;
}
