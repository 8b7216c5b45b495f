// How a message looks: its bubble (body, stats, action buttons), images and Markdown text, a
// JSON-mode reply as a JSON block, tool calls as name and arguments, the stats line, and the
// in-place editor of a user message. No conversation state here: app.js passes the handlers.
import { escapeHtml } from './escape.js';
import { highlight } from './highlight.js';
import { renderMarkdown } from './markdown.js';
import { imagesOf, prettyArguments, textOf } from './store.js';

/** Copies `text` and says so on `button` for a moment. */
export async function copyText(text, button) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    // No clipboard API outside a secure context (http to a LAN address): the old way.
    const area = document.createElement('textarea');
    area.value = text;
    document.body.append(area);
    area.select();
    document.execCommand('copy');
    area.remove();
  }
  button.dataset.label ??= button.textContent;
  button.textContent = 'Copied';
  setTimeout(() => (button.textContent = button.dataset.label), 1500);
}

export function bubble(role) {
  const row = document.createElement('div');
  row.className = `message ${role}`;
  const body = document.createElement('div');
  body.className = 'body';
  const stats = document.createElement('div');
  stats.className = 'stats';
  const actions = document.createElement('div');
  actions.className = 'actions';
  row.append(body, stats, actions);
  return { row, body, stats, actions };
}

export function actionButton(actions, className, text, label, onClick) {
  const b = document.createElement('button');
  b.type = 'button';
  b.className = className;
  b.textContent = text;
  b.setAttribute('aria-label', label);
  b.title = label;
  b.addEventListener('click', onClick);
  actions.append(b);
  return b;
}

/** The body of a message: images, then the text as Markdown (a JSON-mode reply as a JSON block). */
export function fillBody(body, message) {
  body.replaceChildren();
  for (const src of imagesOf(message.content)) {
    const pic = document.createElement('img');
    pic.src = src;
    pic.alt = 'attached image';
    pic.className = 'attached';
    body.append(pic);
  }
  const text = textOf(message.content);
  const div = document.createElement('div');
  div.innerHTML = message.format === 'json' ? renderMarkdown(`\`\`\`json\n${prettyArguments(text)}\n\`\`\``) : renderMarkdown(text);
  if (text) body.append(div);
  if (message.tool_calls?.length) body.append(toolCallsElement(message.tool_calls));
  if (!text && !message.tool_calls?.length && imagesOf(message.content).length === 0) {
    body.innerHTML = '<span class="muted">(empty reply)</span>';
  }
}

/** Tool calls as their function name and arguments, indented and highlighted. */
export function toolCallsElement(calls) {
  const box = document.createElement('div');
  box.className = 'tool-calls';
  for (const call of calls) {
    const item = document.createElement('div');
    item.className = 'tool-call';
    const id = call.id ? ` <span class="muted">${escapeHtml(call.id)}</span>` : '';
    item.innerHTML = `<div class="tool-head">Tool call <code class="tool-name">${escapeHtml(call.function?.name || '?')}</code>${id}</div>` +
      `<pre><code class="language-json">${highlight(prettyArguments(call.function?.arguments), 'json')}</code></pre>`;
    box.append(item);
  }
  return box;
}

/**
 * A message's bubble with its buttons: copy; edit on a user message; on the last message,
 * regenerate (a reply) or get a reply (a user message left without one).
 * @param {{ edit: (row: HTMLElement) => void, regenerate: () => void }} on
 */
export function messageElement(message, index, isLast, on) {
  const { row, body, stats, actions } = bubble(message.role);
  row.dataset.index = String(index);
  fillBody(body, message);
  stats.textContent = message.stats ?? '';
  const copied = textOf(message.content) || (message.tool_calls ? JSON.stringify(message.tool_calls, null, 2) : '');
  const copy = actionButton(actions, 'copy', 'Copy', 'Copy message', () => void copyText(copied, copy));
  if (message.role === 'user') actionButton(actions, 'edit', 'Edit', 'Edit and resend', () => on.edit(row));
  if (isLast) {
    const label = message.role === 'assistant' ? 'Regenerate' : 'Reply';
    actionButton(actions, 'regenerate', label, message.role === 'assistant' ? 'Regenerate this reply' : 'Get a reply', () => on.regenerate());
  }
  return row;
}

/** A user message's content: the text alone, or the images then the text as parts. */
export function contentOf(text, images) {
  return images.length
    ? [...images.map((url) => ({ type: 'image_url', image_url: { url } })), ...(text ? [{ type: 'text', text }] : [])]
    : text;
}

/** `N tokens · R tokens/s · first token T s`, and why the reply ended where that is news. */
export function statsText(reply, started, finishedAt, note) {
  const tokens = reply?.usage?.completion_tokens ?? reply?.chunks ?? 0;
  const first = reply?.firstTokenAt ?? 0;
  const elapsed = first ? (finishedAt - first) / 1000 : 0;
  const rate = elapsed > 0 && tokens > 1 ? ((tokens - 1) / elapsed).toFixed(1) : '…';
  return `${tokens} ${tokens === 1 ? 'token' : 'tokens'} · ${rate} tokens/s` +
    (first ? ` · first token ${((first - started) / 1000).toFixed(2)} s` : '') +
    (reply?.finish === 'length' ? ' · stopped at max tokens' : '') +
    (reply?.finish === 'tool_calls' ? ' · tool calls' : '') +
    (note ? ` · ${note}` : '');
}


/**
 * Turns a user message's bubble into an editor holding `text`: Enter (or Send) calls
 * `onSubmit(newText)`, Escape (or Cancel) calls `onCancel()`.
 */
export function openEditor(row, text, onSubmit, onCancel) {
  if (row.querySelector('.editor')) return;
  const body = row.querySelector('.body');
  const actions = row.querySelector('.actions');
  const editor = document.createElement('div');
  editor.className = 'editor';
  const area = document.createElement('textarea');
  area.value = text;
  area.rows = Math.min(10, Math.max(2, area.value.split('\n').length));
  area.setAttribute('aria-label', 'Edit message (Enter to send, Escape to cancel)');
  const buttons = document.createElement('div');
  buttons.className = 'editor-buttons';
  const cancel = () => onCancel();
  const submit = () => onSubmit(area.value.trim());
  const sendButton = actionButton(buttons, 'edit-send', 'Send', 'Send the edited message', submit);
  actionButton(buttons, 'edit-cancel', 'Cancel', 'Cancel editing', cancel);
  sendButton.classList.add('primary');
  area.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      submit();
    } else if (e.key === 'Escape') {
      e.preventDefault();
      cancel();
    }
  });
  editor.append(area, buttons);
  body.querySelectorAll(':scope > div').forEach((d) => (d.hidden = true)); // the text; images stay
  body.append(editor);
  actions.hidden = true;
  area.focus();
}

