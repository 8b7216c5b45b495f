// The conversation list: open one, rename it in place (Enter keeps, Escape cancels), delete it.

/**
 * Renders `conversations` into `list`, marking `currentId`.
 * @param {{ open: (id: string) => void, rename: (id: string, title: string) => void, remove: (id: string) => void }} on
 */
export function renderConversationList(list, conversations, currentId, on) {
  list.replaceChildren(...conversations.map((c) => {
    const item = document.createElement('li');
    item.className = 'conversation';
    item.dataset.id = c.id;
    if (c.id === currentId) item.setAttribute('aria-current', 'true');
    const open = button('conv-open', c.title, `Open ${c.title}`);
    open.title = c.title;
    open.addEventListener('click', () => on.open(c.id));
    const rename = button('conv-rename', '✎', `Rename ${c.title}`);
    rename.addEventListener('click', () => startRename(open, c, on));
    const remove = button('conv-delete', '×', `Delete ${c.title}`);
    remove.addEventListener('click', () => on.remove(c.id));
    item.append(open, rename, remove);
    return item;
  }));
}

function startRename(open, conversation, on) {
  const input = document.createElement('input');
  input.className = 'conv-title-input';
  input.value = conversation.title;
  input.setAttribute('aria-label', 'Conversation title');
  let done = false;
  const finish = (keep) => {
    if (done) return;
    done = true;
    const title = input.value.trim();
    if (keep && title && title !== conversation.title) on.rename(conversation.id, title);
    else input.replaceWith(open);
  };
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') {
      e.preventDefault();
      finish(true);
    } else if (e.key === 'Escape') {
      e.preventDefault();
      finish(false);
    }
  });
  input.addEventListener('blur', () => finish(true));
  open.replaceWith(input);
  input.focus();
  input.select();
}

function button(className, text, label) {
  const b = document.createElement('button');
  b.type = 'button';
  b.className = className;
  b.textContent = text;
  b.setAttribute('aria-label', label);
  return b;
}
