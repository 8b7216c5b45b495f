// The chat page: talks to /v1/chat/completions with streaming, renders replies as Markdown,
// attaches images (file picker, drag and drop, paste) as data: URLs, and shows tokens/s.
import { escapeHtml, renderMarkdown } from './markdown.js';

const $ = (id) => document.getElementById(id);
const els = {
  model: $('model'), messages: $('messages'), empty: $('empty'), input: $('input'), composer: $('composer'),
  send: $('send'), stop: $('stop'), attach: $('attach'), file: $('file'), attachments: $('attachments'),
  temperature: $('temperature'), temperatureValue: $('temperature-value'), maxTokens: $('max-tokens'),
  apiKeyField: $('api-key-field'), apiKey: $('api-key'), newChat: $('new-chat'), status: $('status'), overlay: $('drop-overlay'),
};

const state = {
  model: null,
  vision: false,
  /** The conversation as sent to the API. */
  history: [],
  /** Images waiting to be sent: { name, dataUrl }. */
  pending: [],
  controller: null,
};

// ---- settings (kept in localStorage) -------------------------------------------------------

function loadSettings() {
  const t = localStorage.getItem('gemma3.temperature');
  const m = localStorage.getItem('gemma3.maxTokens');
  if (t !== null) els.temperature.value = t;
  if (m !== null) els.maxTokens.value = m;
  els.apiKey.value = localStorage.getItem('gemma3.apiKey') || '';
  showTemperature();
}
function showTemperature() {
  els.temperatureValue.textContent = Number(els.temperature.value).toFixed(2);
}
els.temperature.addEventListener('input', () => {
  showTemperature();
  localStorage.setItem('gemma3.temperature', els.temperature.value);
});
els.maxTokens.addEventListener('change', () => localStorage.setItem('gemma3.maxTokens', els.maxTokens.value));
els.apiKey.addEventListener('change', () => {
  localStorage.setItem('gemma3.apiKey', els.apiKey.value);
  void connect();
});

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
    els.apiKeyField.hidden = !health.auth;
    els.model.textContent = `${health.model}${health.vision ? ' · vision' : ''} · context ${health.context_length}`;
    els.maxTokens.max = String(health.context_length);
    els.attach.disabled = !state.vision;
    els.attach.title = state.vision ? 'Attach images' : 'This model does not accept images';
    if (!state.vision) els.empty.querySelector('p').textContent = 'Ask anything. (This model reads text only.)';
    setStatus(health.auth && !els.apiKey.value ? 'This server needs an API key: enter it above.' : '');
  } catch (err) {
    els.model.textContent = 'server unreachable';
    setStatus(`Cannot reach the server: ${err.message}`);
  }
}

function setStatus(text) {
  els.status.textContent = text;
}

// ---- attachments --------------------------------------------------------------------------------

function readAsDataUrl(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

async function addFiles(files) {
  const images = [...files].filter((f) => f.type.startsWith('image/'));
  if (images.length === 0) return;
  if (!state.vision) {
    setStatus('This model does not accept images.');
    return;
  }
  for (const file of images) state.pending.push({ name: file.name || 'pasted image', dataUrl: await readAsDataUrl(file) });
  renderPending();
}

function renderPending() {
  els.attachments.replaceChildren(...state.pending.map((img, i) => {
    const box = document.createElement('div');
    box.className = 'thumb';
    const pic = document.createElement('img');
    pic.src = img.dataUrl;
    pic.alt = img.name;
    const remove = document.createElement('button');
    remove.type = 'button';
    remove.textContent = '×';
    remove.title = `Remove ${img.name}`;
    remove.addEventListener('click', () => {
      state.pending.splice(i, 1);
      renderPending();
    });
    box.append(pic, remove);
    return box;
  }));
}

els.attach.addEventListener('click', () => els.file.click());
els.file.addEventListener('change', async () => {
  await addFiles(els.file.files);
  els.file.value = '';
});
document.addEventListener('paste', (e) => {
  const files = [...(e.clipboardData?.items ?? [])].filter((it) => it.kind === 'file').map((it) => it.getAsFile()).filter(Boolean);
  if (files.length) {
    e.preventDefault();
    void addFiles(files);
  }
});
let dragDepth = 0;
document.addEventListener('dragenter', (e) => {
  if (![...(e.dataTransfer?.types ?? [])].includes('Files')) return;
  dragDepth++;
  els.overlay.hidden = false;
});
document.addEventListener('dragleave', () => {
  dragDepth = Math.max(0, dragDepth - 1);
  if (dragDepth === 0) els.overlay.hidden = true;
});
document.addEventListener('dragover', (e) => e.preventDefault());
document.addEventListener('drop', (e) => {
  e.preventDefault();
  dragDepth = 0;
  els.overlay.hidden = true;
  if (e.dataTransfer?.files?.length) void addFiles(e.dataTransfer.files);
});

// ---- messages -------------------------------------------------------------------------------------

function addBubble(role) {
  els.empty.hidden = true;
  const row = document.createElement('div');
  row.className = `message ${role}`;
  const body = document.createElement('div');
  body.className = 'body';
  const stats = document.createElement('div');
  stats.className = 'stats';
  row.append(body, stats);
  els.messages.append(row);
  return { row, body, stats };
}

function showUser(text, images) {
  const { body } = addBubble('user');
  for (const src of images) {
    const pic = document.createElement('img');
    pic.src = src;
    pic.alt = 'attached image';
    pic.className = 'attached';
    body.append(pic);
  }
  if (text) {
    const p = document.createElement('div');
    p.innerHTML = renderMarkdown(text);
    body.append(p);
  }
  scrollDown();
}

function scrollDown() {
  els.messages.scrollTop = els.messages.scrollHeight;
}

function setBusy(busy) {
  els.send.hidden = busy;
  els.stop.hidden = !busy;
  els.input.disabled = false;
}

async function send() {
  if (state.controller) return;
  const text = els.input.value.trim();
  const images = state.pending.map((p) => p.dataUrl);
  if (!text && images.length === 0) return;
  els.input.value = '';
  autosize();
  state.pending = [];
  renderPending();
  const content = images.length
    ? [...images.map((url) => ({ type: 'image_url', image_url: { url } })), ...(text ? [{ type: 'text', text }] : [])]
    : text;
  state.history.push({ role: 'user', content });
  showUser(text, images);
  await reply();
}

/** Streams the assistant's reply to the conversation so far. */
async function reply() {
  const bubble = addBubble('assistant');
  bubble.row.classList.add('streaming');
  const controller = new AbortController();
  state.controller = controller;
  setBusy(true);
  let text = '';
  let chunks = 0;
  let usage = null;
  let finish = null;
  const started = performance.now();
  let firstAt = 0;
  let scheduled = false;
  const paint = () => {
    scheduled = false;
    bubble.body.innerHTML = renderMarkdown(text) || '<span class="cursor"></span>';
    const elapsed = firstAt ? (performance.now() - firstAt) / 1000 : 0;
    const tokens = usage?.completion_tokens ?? chunks;
    const rate = elapsed > 0 && tokens > 1 ? ((tokens - 1) / elapsed).toFixed(1) : '…';
    bubble.stats.textContent = `${tokens} tokens · ${rate} tokens/s` +
      (firstAt ? ` · first token ${((firstAt - started) / 1000).toFixed(2)} s` : '') +
      (finish === 'length' ? ' · stopped at max tokens' : '') + (finish === 'stopped' ? ' · stopped' : '');
    scrollDown();
  };
  const schedule = () => {
    if (!scheduled) {
      scheduled = true;
      requestAnimationFrame(paint);
    }
  };
  paint();
  try {
    const body = {
      model: state.model,
      messages: state.history,
      stream: true,
      stream_options: { include_usage: true },
      temperature: Number(els.temperature.value),
      max_tokens: Math.max(1, Math.floor(Number(els.maxTokens.value) || 512)),
    };
    const res = await fetch('/v1/chat/completions', { method: 'POST', headers: headers(), body: JSON.stringify(body), signal: controller.signal });
    if (!res.ok) {
      const err = await res.json().catch(() => ({}));
      throw new Error(err?.error?.message || `HTTP ${res.status}`);
    }
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
        const msg = JSON.parse(data);
        if (msg.error) throw new Error(msg.error.message);
        if (msg.usage) usage = msg.usage;
        const choice = msg.choices?.[0];
        if (choice?.delta?.content) {
          if (!firstAt) firstAt = performance.now();
          text += choice.delta.content;
          chunks++;
        }
        if (choice?.finish_reason) finish = choice.finish_reason;
        schedule();
      }
    }
  } catch (err) {
    if (err.name === 'AbortError') finish = 'stopped';
    else {
      const note = document.createElement('div');
      note.className = 'error';
      note.textContent = err.message;
      bubble.row.append(note);
      bubble.row.classList.add('failed');
    }
  } finally {
    state.controller = null;
    setBusy(false);
    bubble.row.classList.remove('streaming');
    paint();
    if (text) state.history.push({ role: 'assistant', content: text });
    else if (!finish) state.history.pop(); // nothing came back: let the user edit and resend
    els.input.focus();
  }
}

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
els.newChat.addEventListener('click', () => {
  state.controller?.abort();
  state.history = [];
  state.pending = [];
  renderPending();
  els.messages.replaceChildren(els.empty);
  els.empty.hidden = false;
  setStatus('');
  els.input.focus();
});

loadSettings();
void connect();
els.input.focus();
// For tests and debugging: what the page is doing.
window.gemmaChat = { state, escapeHtml };
