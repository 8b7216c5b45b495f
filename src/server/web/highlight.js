// A small syntax highlighter for code blocks in replies: comments, strings, numbers, keywords and
// literals for the languages models write most. One regular expression per language finds the
// tokens; the text between them is only escaped. The output is HTML-escaped throughout.
import { escapeHtml } from './escape.js';

const C_LIKE = { line: '//', block: ['/*', '*/'], strings: ['"', "'"] };
const words = (s) => s.split(' ');

const LANGUAGES = {
  javascript: { ...C_LIKE, strings: ['"', "'", '`'], keywords: words('async await break case catch class const continue debugger default delete do else export extends finally for from function if import in instanceof let new of return static super switch this throw try typeof var void while yield as interface type enum implements private public protected readonly declare namespace abstract keyof'), literals: words('true false null undefined NaN Infinity') },
  python: { line: '#', strings: ['"""', "'''", '"', "'"], keywords: words('and as assert async await break class continue def del elif else except finally for from global if import in is lambda nonlocal not or pass raise return try while with yield match case self'), literals: words('True False None') },
  bash: { line: '#', strings: ['"', "'"], keywords: words('if then else elif fi for while until do done case esac in function return exit export local readonly echo cd set unset source sudo'), literals: words('true false') },
  c: { ...C_LIKE, keywords: words('auto break case char const continue default do double else enum extern float for goto if inline int long register return short signed sizeof static struct switch typedef union unsigned void volatile while bool class namespace template typename public private protected virtual override new delete using std auto constexpr nullptr include define'), literals: words('true false NULL nullptr') },
  rust: { ...C_LIKE, strings: ['"'], keywords: words('as async await break const continue crate dyn else enum extern fn for if impl in let loop match mod move mut pub ref return self Self static struct super trait type unsafe use where while'), literals: words('true false None Some Ok Err') },
  go: { ...C_LIKE, strings: ['"', '`', "'"], keywords: words('break case chan const continue default defer else fallthrough for func go goto if import interface map package range return select struct switch type var'), literals: words('true false nil iota') },
  java: { ...C_LIKE, keywords: words('abstract assert boolean break byte case catch char class const continue default do double else enum extends final finally float for if implements import instanceof int interface long new package private protected public return short static super switch synchronized this throw throws try void volatile while var record'), literals: words('true false null') },
  sql: { line: '--', block: ['/*', '*/'], strings: ["'", '"'], caseless: true, keywords: words('select from where and or not insert into values update set delete create table drop alter index join left right inner outer on group by order having limit offset as distinct union all primary key foreign references null is in like between case when then else end'), literals: words('true false') },
  css: { block: ['/*', '*/'], strings: ['"', "'"], keywords: words('important media import from to'), literals: [] },
  json: { strings: ['"'], keywords: [], literals: words('true false null') },
};
const ALIASES = {
  js: 'javascript', jsx: 'javascript', mjs: 'javascript', ts: 'javascript', tsx: 'javascript', typescript: 'javascript',
  py: 'python', sh: 'bash', shell: 'bash', zsh: 'bash', console: 'bash', cpp: 'c', 'c++': 'c', h: 'c', hpp: 'c', cc: 'c',
  cs: 'java', csharp: 'java', kotlin: 'java', rs: 'rust', golang: 'go', postgres: 'sql', scss: 'css',
};

const quote = (s) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

function tokenizer(spec) {
  const parts = [];
  if (spec.block) parts.push(`(?<comment>${quote(spec.block[0])}[\\s\\S]*?(?:${quote(spec.block[1])}|$))`);
  if (spec.line) parts.push(`(?<lineComment>${quote(spec.line)}.*)`);
  // A string spans lines only if its quotes may (backticks, triple quotes); an unclosed one ends at the line's end.
  const strings = spec.strings.map((q) => {
    const oneLine = q.length === 1 && q !== '`';
    return `${quote(q)}(?:\\\\[\\s\\S]|(?!${quote(q)})[^\\\\${oneLine ? '\\n' : ''}])*(?:${quote(q)}|${oneLine ? '(?=\\n)|' : ''}$)`;
  });
  parts.push(`(?<string>${strings.join('|')})`);
  parts.push('(?<number>\\b(?:0[xX][\\da-fA-F_]+|0[bB][01_]+|\\d[\\d_]*(?:\\.\\d[\\d_]*)?(?:[eE][+-]?\\d+)?)\\b)');
  parts.push('(?<word>[A-Za-z_$][\\w$]*)');
  return new RegExp(parts.join('|'), 'g');
}

const compiled = new Map();
const COLON = /\s*:/y;

/** Whether a colon follows `at` (a JSON string there is an object key). */
function followedByColon(code, at) {
  COLON.lastIndex = at;
  return COLON.test(code);
}

/** The language a fence's info string names, or null when we have no table for it. */
export function languageOf(name) {
  const key = String(name || '').toLowerCase();
  const lang = ALIASES[key] ?? key;
  return Object.hasOwn(LANGUAGES, lang) ? lang : null;
}

/** `code` as HTML with <span class="hl-…"> around tokens; plain escaped text for unknown languages. */
export function highlight(code, name) {
  const lang = languageOf(name);
  if (!lang) return escapeHtml(code);
  const spec = LANGUAGES[lang];
  if (!compiled.has(lang)) {
    compiled.set(lang, {
      re: tokenizer(spec),
      keywords: new Set(spec.keywords),
      literals: new Set(spec.literals),
    });
  }
  const { re, keywords, literals } = compiled.get(lang);
  re.lastIndex = 0;
  let html = '';
  let at = 0;
  for (let m; (m = re.exec(code)) !== null;) {
    if (m[0] === '') {
      re.lastIndex++;
      continue;
    }
    const g = m.groups;
    let cls = null;
    if (g.comment !== undefined || g.lineComment !== undefined) cls = 'com';
    else if (g.string !== undefined) cls = lang === 'json' && followedByColon(code, re.lastIndex) ? 'key' : 'str';
    else if (g.number !== undefined) cls = 'num';
    else {
      const word = spec.caseless ? m[0].toLowerCase() : m[0];
      if (keywords.has(word)) cls = 'kw';
      else if (literals.has(word)) cls = 'lit';
      else if (code[re.lastIndex] === '(') cls = 'fn';
    }
    html += escapeHtml(code.slice(at, m.index));
    html += cls ? `<span class="hl-${cls}">${escapeHtml(m[0])}</span>` : escapeHtml(m[0]);
    at = re.lastIndex;
  }
  return html + escapeHtml(code.slice(at));
}
