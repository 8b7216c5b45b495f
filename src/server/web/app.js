// The chat page: conversations kept in the browser (store.js) and listed at the side
// (sidebar.js), each with its own system prompt and sampling settings; replies streamed from
// /v1/chat/completions (request.js) and rendered as Markdown with highlighted code; copy,
// regenerate and edit-and-resend on messages; images attached by picker, drop or paste.
//
// What the page shows is the history the next request sends: a turn that fails (or is stopped)
// before any reply is undone, and its message goes back into the box to send again.
import { Attachments } from './attachments.js';
import { bubble, contentOf, copyText, fillBody, messageElement, openEditor, statsText } from './message-view.js';
import { renderConversationList } from './sidebar.js';
import { DEFAULT_SETTINGS, requestBody, streamChat } from './request.js';
import * as store from './store.js';

const $ = (id) => document.getElementById(id);
const els = {
  model: $('model'), messages: $('messages'), empty: $('empty'), input: $('input'), composer: $('composer'),
  send: $('send'), stop: $('stop'), attach: $('attach'), file: $('file'), attachments: $('attachments'),
  apiKeyField: $('api-key-field'), apiKey: $('api-key'), newChat: $('new-chat'), status: $('status'), overlay: $('drop-overlay'),
  conversations: $('conversations'), exportJson: $('export-json'), exportMd: $('export-md'),
  settings: $('settings'), settingsToggle: $('settings-toggle'),
};
/** Each per-conversation setting and the id of its field. */
const SETTING_FIELDS = {
  system: 'system', temperature: 'temperature', topP: 'top-p', topK: 'top-k', minP: 'min-p', seed: 'seed',
  maxTokens: 'max-tokens', jsonMode: 'json-mode',
};

const state = {
  model: null,
  vision: false,
  contextLength: null,
  details: [],
  /** Every conversation, most recently changed first; a new one is listed before it is saved. */
  conversations: [],
  current: null,
  controller: null,
  /** The running turn (a promise), so that switching conversations can wait for it to settle. */
  inFlight: null,
};

const attachments = new Attachments({
  box: els.attachments, picker: els.file, button: els.attach, overlay: els.overlay,
  accepts: () => state.vision, refuse: (why) => setStatus(why, true),
});

// ---- small helpers ------------------------------------------------------------------------------

function recall(key) {
  try {
    return localStorage.getItem(`gemma3.${key}`);
  } catch {
    return null;
  }
}
function remember(key, value) {
  try {
    localStorage.setItem(`gemma3.${key}`, value);
  } catch {
    // Storage disabled: the page still works, it only forgets.
  }
}

function setStatus(text, isError = false) {
  els.status.textContent = text;
  els.status.classList.toggle('error', isError);
}

function headers() {
  const h = { 'Content-Type': 'application/json' };
  if (els.apiKey.value) h.Authorization = `Bearer ${els.apiKey.value}`;
  return h;
}

// ---- server info ------------------------------------------------------------------------------

async function connect() {
  try {
    const health = await (await fetch('/health')).json();
    state.model = health.model;
    state.vision = Boolean(health.vision);
    state.contextLength = health.context_length;
    els.apiKeyField.hidden = !health.auth;
    els.attach.disabled = !state.vision;
    els.attach.title = state.vision ? 'Attach images' : 'This model does not accept images';
    if (!state.vision) els.empty.querySelector('p').textContent = 'Ask anything. (This model reads text only.)';
    if (health.context_length) $('max-tokens').max = String(health.context_length);
    showModel();
    setStatus(health.auth && !els.apiKey.value ? 'This server needs an API key: enter it above.' : '');
    if (!health.auth || els.apiKey.value) void describeModel();
  } catch (err) {
    els.model.textContent = 'server unreachable';
    setStatus(`Cannot reach the server: ${err.message}`, true);
  }
}

/** Size and quantization from Ollama's /api/show, where the server has it; /health said enough otherwise. */
async function describeModel() {
  try {
    const res = await fetch('/api/show', { method: 'POST', headers: headers(), body: JSON.stringify({ model: state.model }) });
    if (!res.ok) return;
    const info = await res.json();
    state.details = [info.details?.parameter_size, info.details?.quantization_level].filter((d) => typeof d === 'string' && d);
    if (Array.isArray(info.capabilities)) state.vision = state.vision || info.capabilities.includes('vision');
    showModel();
  } catch {
    // An older server: no details.
  }
}

function showModel() {
  const parts = [state.model, ...state.details];
  if (state.contextLength) parts.push(`context ${state.contextLength} tokens`);
  parts.push(state.vision ? 'vision' : 'text only');
  els.model.textContent = parts.join(' · ');
}

// ---- settings of the open conversation ------------------------------------------------------

function defaultSettings() {
  try {
    return { ...DEFAULT_SETTINGS, ...JSON.parse(recall('defaults') || '{}') };
  } catch {
    return { ...DEFAULT_SETTINGS };
  }
}

function showSettings(settings) {
  for (const [key, id] of Object.entries(SETTING_FIELDS)) {
    const field = $(id);
    if (field.type === 'checkbox') field.checked = Boolean(settings[key]);
    else field.value = settings[key] ?? '';
  }
}

for (const [key, id] of Object.entries(SETTING_FIELDS)) {
  const field = $(id);
  const update = () => {
    const conv = state.current;
    conv.settings[key] = field.type === 'checkbox' ? field.checked : field.value;
    remember('defaults', JSON.stringify(conv.settings)); // a new conversation starts from the last settings used
    void persist(conv);
  };
  field.addEventListener('input', update);
  field.addEventListener('change', update);
}

// A narrow window shows the panel over the chat: it starts closed there, and has its own close button.
const NARROW = '(max-width: 820px)';
function showSettingsPanel(open, keep = true) {
  els.settings.hidden = !open;
  els.settingsToggle.setAttribute('aria-expanded', String(open));
  if (keep) remember('settingsOpen', open ? '1' : '0');
}
els.settingsToggle.addEventListener('click', () => showSettingsPanel(els.settings.hidden));
$('settings-close').addEventListener('click', () => {
  showSettingsPanel(false, !matchMedia(NARROW).matches);
  els.settingsToggle.focus();
});

els.apiKey.addEventListener('change', () => {
  remember('apiKey', els.apiKey.value);
  void connect();
});

// ---- conversations ----------------------------------------------------------------------------

/** Writes not yet committed (a test reloading the page waits for them). */
const writing = new Set();

async function persist(conv) {
  if (conv.messages.length === 0) return; // an empty conversation is kept once it has a message
  const write = store.saveConversation(conv);
  writing.add(write);
  try {
    await write;
  } catch (err) {
    setStatus(`This conversation could not be saved in the browser: ${err.message}`, true);
  } finally {
    writing.delete(write);
  }
}

function renderList() {
  renderConversationList(els.conversations, state.conversations, state.current?.id, {
    open: (id) => void openConversation(id),
    rename: (id, title) => void renameConversation(id, title),
    remove: (id) => void removeConversation(id),
  });
}

function select(conv) {
  const previous = state.current;
  if (previous && previous !== conv && previous.messages.length === 0) {
    state.conversations = state.conversations.filter((c) => c !== previous); // never saved: nothing to keep
  }
  state.current = conv;
  remember('current', conv.id);
  showSettings(conv.settings);
  renderMessages();
  renderList();
}

async function stopReply() {
  state.controller?.abort();
  await state.inFlight;
}

async function openConversation(id) {
  await stopReply();
  const conv = state.conversations.find((c) => c.id === id);
  if (conv) select(conv);
  setStatus('');
}

async function newChat() {
  await stopReply();
  if (state.current?.messages.length === 0) {
    els.input.focus();
    return;
  }
  const conv = store.newConversation(defaultSettings());
  state.conversations.unshift(conv);
  select(conv);
  setStatus('');
  els.input.focus();
}

async function renameConversation(id, title) {
  const conv = state.conversations.find((c) => c.id === id);
  if (!conv) return;
  conv.title = title;
  conv.titleEdited = true;
  await persist(conv);
  renderList();
}

async function removeConversation(id) {
  const conv = state.conversations.find((c) => c.id === id);
  if (!conv || !confirm(`Delete the conversation “${conv.title}”?`)) return;
  if (conv === state.current) await stopReply();
  state.conversations = state.conversations.filter((c) => c !== conv);
  try {
    await store.deleteConversation(id);
  } catch (err) {
    setStatus(`Could not delete it from the browser's storage: ${err.message}`, true);
  }
  if (conv === state.current) {
    state.current = null;
    if (state.conversations.length) select(state.conversations[0]);
    else await newChat();
  } else renderList();
}

function download(text, name, type) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
els.exportJson.addEventListener('click', () =>
  download(store.exportJson(state.current), store.fileNameFor(state.current, 'json'), 'application/json'));
els.exportMd.addEventListener('click', () =>
  download(store.exportMarkdown(state.current), store.fileNameFor(state.current, 'md'), 'text/markdown'));

// ---- messages -------------------------------------------------------------------------------------

function renderMessages() {
  const conv = state.current;
  els.messages.replaceChildren(els.empty);
  els.empty.hidden = conv.messages.length > 0;
  const on = (index) => ({ edit: (row) => startEdit(row, index), regenerate: () => void regenerate() });
  conv.messages.forEach((m, i) => els.messages.append(messageElement(m, i, i === conv.messages.length - 1, on(i))));
  els.exportJson.disabled = els.exportMd.disabled = conv.messages.length === 0;
  scrollDown();
}

function scrollDown() {
  els.messages.scrollTop = els.messages.scrollHeight;
}

function setBusy(busy) {
  els.send.hidden = busy;
  els.stop.hidden = !busy;
  document.body.classList.toggle('busy', busy);
}

/**
 * Streams a reply to `conv`'s messages. If it fails or is stopped before anything came back, the
 * conversation goes back to `snapshot` and `undo` gives the user's draft back.
 */
function respond(conv, snapshot, undo, failure) {
  const turn = runTurn(conv, snapshot, undo, failure).finally(() => {
    if (state.inFlight === turn) state.inFlight = null;
  });
  state.inFlight = turn;
  return turn;
}

async function runTurn(conv, snapshot, undo, failure) {
  const view = bubble('assistant');
  view.row.classList.add('streaming');
  els.empty.hidden = true;
  els.messages.append(view.row);
  const controller = new AbortController();
  state.controller = controller;
  setBusy(true);
  const started = performance.now();
  const jsonMode = Boolean(conv.settings.jsonMode);
  let latest = null;
  let scheduled = false;
  const paint = () => {
    scheduled = false;
    const calls = (latest?.toolCalls ?? []).filter(Boolean);
    if (latest?.text || calls.length) fillBody(view.body, { content: latest.text, tool_calls: calls, ...(jsonMode ? { format: 'json' } : {}) });
    else view.body.innerHTML = '<span class="cursor"></span>';
    view.stats.textContent = statsText(latest, started, performance.now());
    scrollDown();
  };
  paint();
  let error = null;
  try {
    latest = await streamChat(requestBody(state.model, conv.settings, conv.messages), {
      headers: headers(), signal: controller.signal,
      onUpdate: (reply) => {
        latest = reply;
        if (!scheduled) {
          scheduled = true;
          requestAnimationFrame(paint);
        }
      },
    });
  } catch (err) {
    error = err;
  }
  state.controller = null;
  setBusy(false);
  const stopped = error?.name === 'AbortError';
  const toolCalls = (latest?.toolCalls ?? []).filter(Boolean);
  if (!error || latest?.text || toolCalls.length) {
    const note = stopped ? 'stopped' : error ? `interrupted: ${error.message}` : '';
    conv.messages.push({
      role: 'assistant', content: latest?.text ?? '', stats: statsText(latest, started, performance.now(), note),
      ...(toolCalls.length ? { tool_calls: toolCalls } : {}), ...(jsonMode ? { format: 'json' } : {}),
    });
    conv.updatedAt = Date.now();
    if (error && !stopped) setStatus(`The reply was cut short: ${error.message}`, true);
    // For screen readers: the message list is not a live region (a re-render would read it all).
    $('announce').textContent = toolCalls.length ? 'The reply is a tool call.' : 'The reply is complete.';
    await persist(conv);
  } else {
    conv.messages = snapshot;
    if (!conv.titleEdited) conv.title = store.titleFrom(conv.messages);
    setStatus(stopped ? 'Stopped before the reply began.' : `${error.message} — ${failure}.`, !stopped);
  }
  if (conv === state.current) {
    renderMessages();
    if (conv.messages === snapshot) undo?.();
  }
  renderList();
}

async function send() {
  if (state.inFlight) return;
  const text = els.input.value.trim();
  const images = attachments.pending.map((p) => p.dataUrl);
  if (!text && images.length === 0) return;
  const conv = state.current;
  const snapshot = conv.messages.slice();
  attachments.take();
  els.input.value = '';
  autosize();
  conv.messages.push({ role: 'user', content: contentOf(text, images) });
  if (!conv.titleEdited) conv.title = store.titleFrom(conv.messages);
  setStatus('');
  renderMessages();
  renderList();
  await respond(conv, snapshot, () => {
    els.input.value = text;
    autosize();
    attachments.set(images);
    els.input.focus();
  }, 'not sent: your message is back in the box');
  if (conv.messages !== snapshot) els.input.focus();
}

/** A new reply to the conversation so far: replaces the last reply, or answers a last user message. */
async function regenerate() {
  if (state.inFlight) return;
  const conv = state.current;
  const snapshot = conv.messages;
  const asked = snapshot.at(-1)?.role === 'assistant' ? snapshot.slice(0, -1) : snapshot.slice();
  if (asked.length === 0) return;
  conv.messages = asked;
  setStatus('');
  renderMessages();
  await respond(conv, snapshot, null, 'no new reply: the previous one is kept');
}

/** Replaces the user message at `index` with `text`, drops everything after it and asks again. */
async function editAndResend(index, text) {
  if (state.inFlight) return;
  const conv = state.current;
  const snapshot = conv.messages.slice();
  const images = store.imagesOf(conv.messages[index].content);
  if (!text && images.length === 0) return;
  conv.messages = [...conv.messages.slice(0, index), { role: 'user', content: contentOf(text, images) }];
  if (!conv.titleEdited) conv.title = store.titleFrom(conv.messages);
  setStatus('');
  renderMessages();
  renderList();
  await respond(conv, snapshot, () => {
    const row = els.messages.querySelector(`.message[data-index="${index}"]`);
    if (row) startEdit(row, index, text);
  }, 'not sent: the conversation is as it was and your edit is still open');
}

function startEdit(row, index, draft) {
  if (state.controller) return; // not while a reply streams (a failed edit reopens after its stream ended)
  const text = draft ?? store.textOf(state.current.messages[index].content);
  openEditor(row, text, (edited) => void editAndResend(index, edited), () => renderMessages());
}

// Copy buttons of code blocks (markdown.js draws them; the page's CSP allows no inline handlers).
els.messages.addEventListener('click', (e) => {
  const button = e.target.closest?.('.copy-code');
  if (!button) return;
  const code = button.closest('.code-block')?.querySelector('code');
  if (code) void copyText(code.textContent, button);
});

// ---- composer ---------------------------------------------------------------------------------------

els.composer.addEventListener('submit', (e) => {
  e.preventDefault();
  void send();
});
els.input.addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    void send();
  }
});
function autosize() {
  els.input.style.height = 'auto';
  els.input.style.height = `${Math.min(els.input.scrollHeight, 200)}px`;
}
els.input.addEventListener('input', autosize);
els.stop.addEventListener('click', () => state.controller?.abort());
els.newChat.addEventListener('click', () => void newChat());

async function start() {
  els.apiKey.value = recall('apiKey') || '';
  showSettingsPanel(recall('settingsOpen') !== '0' && !matchMedia(NARROW).matches, false);
  try {
    state.conversations = await store.loadConversations();
  } catch (err) {
    setStatus(`Conversations cannot be kept in this browser: ${err.message}`, true);
  }
  const last = state.conversations.find((c) => c.id === recall('current')) ?? state.conversations[0];
  if (last) select(last);
  else {
    const conv = store.newConversation(defaultSettings());
    state.conversations.unshift(conv);
    select(conv);
  }
  await connect();
  els.input.focus();
}

// For tests and debugging: what the page is doing.
window.gemmaChat = { state, ready: start(), saved: () => Promise.allSettled([...writing]) };
