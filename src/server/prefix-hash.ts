// Prefix-aware routing across replicas. Each replica's prompt cache holds the conversations it
// served, so a conversation's later requests are fastest on the replica that served its first.
// A router cannot read JSON bodies cheaply, so the server names the conversation in a header:
// X-Gemma3-Prefix-Hash, a hash of what every request of one conversation starts with (the system
// prompt and the first user message; for a raw prompt, its first 1024 characters). Every response
// carries it; clients send it back on the conversation's next requests (or compute it the same
// way), and the load balancer hashes it to pick the replica: HAProxy `balance hdr(X-Gemma3-Prefix-Hash)`
// with `hash-type consistent`, nginx `hash $http_x_gemma3_prefix_hash consistent`.
import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

export const PREFIX_HASH_HEADER = 'X-Gemma3-Prefix-Hash';
/** Characters of a raw prompt that name its conversation. */
const PROMPT_PREFIX_CHARS = 1024;

/**
 * The conversation's hash: the one the request carries, else one computed from its body (16 hex
 * digits of SHA-256 over the JSON of [system, first user message]), or null for a body with neither.
 */
export function prefixHash(req: IncomingMessage, body: unknown): string | null {
  const given = req.headers[PREFIX_HASH_HEADER.toLowerCase()];
  if (typeof given === 'string' && /^[0-9a-f]{16}$/.test(given)) return given;
  const key = conversationStart(body);
  return key === null ? null : createHash('sha256').update(JSON.stringify(key)).digest('hex').slice(0, 16);
}

/** What every request of one conversation starts with: [system content, first user content]. */
function conversationStart(body: unknown): unknown[] | null {
  if (typeof body !== 'object' || body === null) return null;
  const o = body as Record<string, unknown>;
  if (Array.isArray(o.messages)) {
    const messages = o.messages as { role?: unknown; content?: unknown }[];
    const system = messages.find((m) => m?.role === 'system')?.content ?? (typeof o.system === 'string' ? o.system : '');
    const user = messages.find((m) => m?.role === 'user')?.content;
    return user === undefined ? null : [system, user];
  }
  if (typeof o.prompt === 'string') return [typeof o.system === 'string' ? o.system : '', o.prompt.slice(0, PROMPT_PREFIX_CHARS)];
  return null;
}
