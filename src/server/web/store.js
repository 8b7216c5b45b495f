// Conversations kept in the browser, in IndexedDB (localStorage's ~5 MB would not hold attached
// images). The whole list is read once at start; every change writes the one conversation back.
// A conversation: { id, title, titleEdited, createdAt, updatedAt, settings, messages }, where a
// message is { role: 'user' | 'assistant', content, tool_calls?, stats? } and content is what
// the API takes (a string, or text and image_url parts).

const DB_NAME = 'gemma3-chat';
const STORE = 'conversations';

function request(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

let dbPromise = null;
function db() {
  dbPromise ??= new Promise((resolve, reject) => {
    const open = indexedDB.open(DB_NAME, 1);
    open.onupgradeneeded = () => open.result.createObjectStore(STORE, { keyPath: 'id' });
    open.onsuccess = () => resolve(open.result);
    open.onerror = () => reject(open.error);
  });
  return dbPromise;
}

async function withStore(mode, fn) {
  const tx = (await db()).transaction(STORE, mode);
  const result = await request(fn(tx.objectStore(STORE)));
  await new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error ?? new Error('the write was aborted'));
  });
  return result;
}

/** All conversations, most recently changed first. */
export async function loadConversations() {
  const all = await withStore('readonly', (s) => s.getAll());
  return all.sort((a, b) => b.updatedAt - a.updatedAt);
}

export function saveConversation(conversation) {
  // A structured clone of plain data: the stored copy never shares objects with the page's.
  return withStore('readwrite', (s) => s.put(JSON.parse(JSON.stringify(conversation))));
}

export function deleteConversation(id) {
  return withStore('readwrite', (s) => s.delete(id));
}

export function newConversation(settings) {
  const now = Date.now();
  const id = crypto.randomUUID ? crypto.randomUUID() : `${now.toString(36)}-${Math.random().toString(36).slice(2)}`;
  return { id, title: 'New chat', titleEdited: false, createdAt: now, updatedAt: now, settings: { ...settings }, messages: [] };
}

/** The title a conversation gets from its first user message, until the user renames it. */
export function titleFrom(messages) {
  const first = messages.find((m) => m.role === 'user');
  const text = first ? textOf(first.content).replace(/\s+/g, ' ').trim() : '';
  if (!text) return first ? 'Image' : 'New chat';
  return text.length > 48 ? `${text.slice(0, 47)}…` : text;
}

/** The text of a message's content (images left out). */
export function textOf(content) {
  if (typeof content === 'string') return content;
  return (content ?? []).filter((p) => p.type === 'text').map((p) => p.text).join('\n');
}

/** The data: URLs of a message's images. */
export function imagesOf(content) {
  if (typeof content === 'string') return [];
  return (content ?? []).filter((p) => p.type === 'image_url').map((p) => p.image_url.url);
}

// ---- export ------------------------------------------------------------------------------------

export function exportJson(conversation) {
  const { id, title, createdAt, updatedAt, settings, messages } = conversation;
  return JSON.stringify({
    title, id, created: new Date(createdAt).toISOString(), updated: new Date(updatedAt).toISOString(), settings,
    messages: messages.map(({ role, content, tool_calls }) => ({ role, content, ...(tool_calls ? { tool_calls } : {}) })),
  }, null, 2) + '\n';
}

export function exportMarkdown(conversation) {
  const { settings } = conversation;
  let md = `# ${conversation.title}\n\n`;
  if (settings.system) md += `## System\n\n${settings.system}\n\n`;
  for (const m of conversation.messages) {
    md += `## ${m.role === 'user' ? 'User' : 'Assistant'}\n\n`;
    const images = imagesOf(m.content);
    if (images.length) md += images.map((_, i) => `*[image ${i + 1}]*`).join(' ') + '\n\n';
    const text = textOf(m.content);
    if (text) md += `${text}\n\n`;
    for (const call of m.tool_calls ?? []) {
      md += `Tool call \`${call.function?.name}\`:\n\n\`\`\`json\n${prettyArguments(call.function?.arguments)}\n\`\`\`\n\n`;
    }
  }
  return md;
}

/** A tool call's arguments (a JSON string) indented for reading; left as they are if not JSON. */
export function prettyArguments(args) {
  if (typeof args !== 'string') return JSON.stringify(args ?? {}, null, 2);
  try {
    return JSON.stringify(JSON.parse(args), null, 2);
  } catch {
    return args;
  }
}

/** A file name for an export: the title's letters and digits. */
export function fileNameFor(conversation, extension) {
  const base = conversation.title.normalize('NFKD').replace(/[^\w\- ]+/g, '').trim().replace(/\s+/g, '-').slice(0, 60) || 'chat';
  return `${base}.${extension}`;
}
