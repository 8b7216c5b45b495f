// A small Markdown renderer for chat replies: headings, paragraphs, emphasis, inline code, fenced
// code blocks, lists (nested), block quotes, tables, links and rules. Everything is HTML-escaped
// first, so model output can never inject markup; links are limited to http(s) and mailto.
// Unfinished constructs (an open code fence while streaming) render sensibly. Code blocks are
// highlighted (highlight.js) and carry a copy button.

import { escapeHtml } from './escape.js';
import { highlight } from './highlight.js';

export { escapeHtml };

const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([^\s`]*)[^`]*$/;
const HEADING = /^ {0,3}(#{1,6})(?:\s+(.*?))?\s*#*\s*$/;
const RULE = /^ {0,3}([-*_])(?:\s*\1){2,}\s*$/;
const QUOTE = /^ {0,3}> ?/;
const ITEM = /^( {0,12})([-*+]|\d{1,9}[.)])(\s+|$)/;
const TABLE_SEP = /^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$/;

export function renderMarkdown(src) {
  return renderBlocks(String(src).replace(/\r\n?/g, '\n').split('\n'));
}

function renderBlocks(lines) {
  let html = '';
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (/^\s*$/.test(line)) {
      i++;
      continue;
    }
    let m = FENCE.exec(line);
    if (m) {
      const fence = m[1];
      const body = [];
      i++;
      while (i < lines.length && !lines[i].trim().startsWith(fence)) body.push(lines[i++]);
      i++; // the closing fence (absent while a reply is still streaming)
      html += codeBlock(body.join('\n'), m[2]);
      continue;
    }
    m = HEADING.exec(line);
    if (m) {
      const level = m[1].length;
      html += `<h${level}>${inline(m[2] || '')}</h${level}>`;
      i++;
      continue;
    }
    if (RULE.test(line)) {
      html += '<hr>';
      i++;
      continue;
    }
    if (QUOTE.test(line)) {
      const inner = [];
      while (i < lines.length && QUOTE.test(lines[i])) inner.push(lines[i++].replace(QUOTE, ''));
      html += `<blockquote>${renderBlocks(inner)}</blockquote>`;
      continue;
    }
    if (ITEM.test(line)) {
      const [out, next] = renderList(lines, i);
      html += out;
      i = next;
      continue;
    }
    if (line.includes('|') && i + 1 < lines.length && TABLE_SEP.test(lines[i + 1]) && lines[i + 1].includes('-')) {
      const [out, next] = renderTable(lines, i);
      html += out;
      i = next;
      continue;
    }
    const para = [];
    while (i < lines.length && !/^\s*$/.test(lines[i]) && !startsBlock(lines[i])) para.push(lines[i++].trim());
    if (para.length === 0) para.push(lines[i++].trim());
    html += `<p>${para.map(inline).join('<br>')}</p>`;
  }
  return html;
}

/** A fenced code block: highlighted, under a bar with its language and a copy button (app.js handles the click). */
function codeBlock(code, lang) {
  const cls = lang ? ` class="language-${escapeHtml(lang)}"` : '';
  return `<div class="code-block"><div class="code-bar"><span>${escapeHtml(lang || 'text')}</span>` +
    '<button type="button" class="copy-code" aria-label="Copy code">Copy</button></div>' +
    `<pre><code${cls}>${highlight(code, lang)}</code></pre></div>`;
}

function startsBlock(line) {
  return FENCE.test(line) || HEADING.test(line) || RULE.test(line) || QUOTE.test(line) || ITEM.test(line);
}

/** A list starting at lines[start]; items are the lines with the same kind of marker at that indent. */
function renderList(lines, start) {
  const first = ITEM.exec(lines[start]);
  const indent = first[1].length;
  const ordered = /\d/.test(first[2]);
  const startNum = ordered ? parseInt(first[2], 10) : 1;
  const items = [];
  let i = start;
  let loose = false;
  while (i < lines.length) {
    const m = ITEM.exec(lines[i]);
    if (!m || m[1].length !== indent || /\d/.test(m[2]) !== ordered) break;
    const contentIndent = m[0].length;
    const body = [lines[i].slice(contentIndent)];
    i++;
    while (i < lines.length) {
      const l = lines[i];
      if (/^\s*$/.test(l)) {
        // A blank line continues the item only if indented content follows.
        const nextLine = lines[i + 1];
        if (nextLine !== undefined && leading(nextLine) > indent && !/^\s*$/.test(nextLine)) {
          body.push('');
          loose = loose || !ITEM.test(nextLine);
          i++;
          continue;
        }
        const mm = nextLine !== undefined ? ITEM.exec(nextLine) : null;
        if (mm && mm[1].length === indent && /\d/.test(mm[2]) === ordered) loose = true;
        break;
      }
      const lead = leading(l);
      if (lead > indent) body.push(l.slice(Math.min(lead, contentIndent)));
      else if (!startsBlock(l) && !ITEM.test(l)) body.push(l.trim()); // lazy continuation
      else break;
      i++;
    }
    items.push(body);
    if (i < lines.length && /^\s*$/.test(lines[i])) {
      const nextLine = lines[i + 1];
      const mm = nextLine !== undefined ? ITEM.exec(nextLine) : null;
      if (mm && mm[1].length === indent && /\d/.test(mm[2]) === ordered) i++;
    }
  }
  const tag = ordered ? 'ol' : 'ul';
  const attrs = ordered && startNum !== 1 ? ` start="${startNum}"` : '';
  const lis = items.map((body) => {
    let inner = renderBlocks(body);
    if (!loose) inner = inner.replace(/^<p>([\s\S]*?)<\/p>/, '$1');
    return `<li>${inner}</li>`;
  });
  return [`<${tag}${attrs}>${lis.join('')}</${tag}>`, i];
}

function renderTable(lines, start) {
  const cells = (l) => l.trim().replace(/^\|/, '').replace(/\|$/, '').split('|').map((c) => c.trim());
  const head = cells(lines[start]);
  const aligns = cells(lines[start + 1]).map((c) => (c.startsWith(':') && c.endsWith(':') ? 'center' : c.endsWith(':') ? 'right' : c.startsWith(':') ? 'left' : ''));
  const cell = (tag, text, j) => `<${tag}${aligns[j] ? ` class="align-${aligns[j]}"` : ''}>${inline(text)}</${tag}>`;
  let html = `<table><thead><tr>${head.map((c, j) => cell('th', c, j)).join('')}</tr></thead><tbody>`;
  let i = start + 2;
  while (i < lines.length && lines[i].includes('|') && !/^\s*$/.test(lines[i])) {
    const row = cells(lines[i++]);
    html += `<tr>${head.map((_, j) => cell('td', row[j] ?? '', j)).join('')}</tr>`;
  }
  return [html + '</tbody></table>', i];
}

function leading(line) {
  return line.length - line.trimStart().length;
}

/** Inline spans. Code spans and links are set aside as placeholders before emphasis is applied. */
export function inline(text) {
  const held = [];
  const hold = (html) => `\u0000${held.push(html) - 1}\u0000`;
  let s = text.replace(/\u0000/g, '');
  s = s.replace(/(`+)([\s\S]*?[^`])\1(?!`)/g, (_, _ticks, code) => hold(`<code>${escapeHtml(code.replace(/^ (.*) $/, '$1'))}</code>`));
  s = s.replace(/\[([^\]\n]+)\]\(\s*([^)\s]+)(?:\s+"[^"]*")?\s*\)/g, (all, label, url) => {
    if (!/^(https?:|mailto:)/i.test(url)) return all;
    return hold(`<a href="${escapeHtml(url)}" target="_blank" rel="noopener noreferrer">${emphasis(escapeHtml(label))}</a>`);
  });
  s = s.replace(/(^|[\s(])(https?:\/\/[^\s<)]+[^\s<).,;:!?'"])/g, (_, pre, url) =>
    pre + hold(`<a href="${escapeHtml(url)}" target="_blank" rel="noopener noreferrer">${escapeHtml(url)}</a>`));
  s = emphasis(escapeHtml(s));
  s = s.replace(/ {2,}$|\\$/g, '');
  return s.replace(/\u0000(\d+)\u0000/g, (_, n) => held[Number(n)]);
}

function emphasis(s) {
  return s
    .replace(/\*\*(?=\S)([\s\S]*?\S)\*\*/g, '<strong>$1</strong>')
    .replace(/(^|[^\w])__(?=\S)([\s\S]*?\S)__(?!\w)/g, '$1<strong>$2</strong>')
    .replace(/(^|[^*\w])\*(?=[^\s*])([^*]*?[^\s*])\*(?!\w)/g, '$1<em>$2</em>')
    .replace(/(^|[^\w])_(?=[^\s_])([^_]*?[^\s_])_(?!\w)/g, '$1<em>$2</em>')
    .replace(/~~(?=\S)([\s\S]*?\S)~~/g, '<del>$1</del>');
}
