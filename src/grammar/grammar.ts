// Constrained decoding with xgrammar: a grammar (a JSON schema, any JSON object, an EBNF text, a
// structural tag) is compiled once against the model's vocabulary (cached by its text, least
// recently used first out), and each constrained reply owns a matcher that says, before every
// sampled token, which ids may come next. Disallowed ids get -Infinity; the stop ids are allowed
// only where the grammar may end.
import { GemmaError } from '../errors.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { toolCallTag, type ToolGrammarSpec } from './tool-grammar.js';
import { xgrammar } from './xgrammar-module.js';
import type { CompiledGrammar, GrammarCompiler, GrammarMatcher } from '@mlc-ai/web-xgrammar';

/** What a reply is held to (plain data: it crosses to the server's worker thread). */
export type GrammarSpec =
  /** Output valid for this JSON schema (text of the schema, checked by checkJsonSchema). */
  | { kind: 'json_schema'; schema: string; /** Allow properties the schema does not list (default: no). */ open?: boolean }
  /** A grammar in xgrammar's EBNF (GBNF-style `rule ::= ...`, root rule `root`). */
  | { kind: 'ebnf'; grammar: string }
  /** An xgrammar structural tag (JSON text): free text until a trigger, then a constrained tag. */
  | { kind: 'structural_tag'; tag: string }
  /** Tool calls in Gemma's prompted JSON format (tool-grammar.ts). */
  | ToolGrammarSpec;

/** Compiled grammars kept per vocabulary. */
const CACHE_SIZE = 32;

/** JSON layout the grammars enforce: one line, `{"a": 1, "b": [2, 3]}` (as Python's json.dumps). */
const ANY_WHITESPACE = false;
const ONE_LINE = -1;

/** The compiler for one vocabulary, and its compiled grammars. */
export class GrammarEngine {
  private static readonly engines = new WeakMap<Tokenizer, Map<number, GrammarEngine>>();
  private readonly compiled = new Map<string, Promise<CompiledGrammar>>();
  private compiler: Promise<GrammarCompiler> | null = null;
  /** Milliseconds the last compile() that missed the cache took (for benchmarks and logs). */
  lastCompileMs = 0;

  private constructor(private readonly tokenizer: Tokenizer, readonly vocabSize: number) {}

  /** The engine of a tokenizer and logits width (created on first use, then shared). */
  static for(tokenizer: Tokenizer, vocabSize: number): GrammarEngine {
    let bySize = GrammarEngine.engines.get(tokenizer);
    if (!bySize) GrammarEngine.engines.set(tokenizer, (bySize = new Map()));
    let engine = bySize.get(vocabSize);
    if (!engine) bySize.set(vocabSize, (engine = new GrammarEngine(tokenizer, vocabSize)));
    return engine;
  }

  /** Compiles (or finds in the cache) a grammar. GemmaError INVALID_ARGUMENT when xgrammar refuses it. */
  compile(spec: GrammarSpec): Promise<CompiledGrammar> {
    const key = JSON.stringify(spec);
    const hit = this.compiled.get(key);
    if (hit) {
      this.compiled.delete(key); // re-insert: most recently used last
      this.compiled.set(key, hit);
      return hit;
    }
    const pending = this.compileNow(spec);
    this.compiled.set(key, pending);
    pending.catch(() => this.compiled.delete(key));
    while (this.compiled.size > CACHE_SIZE) {
      const [oldest, grammar] = this.compiled.entries().next().value!;
      this.compiled.delete(oldest);
      // Matchers made from it keep their own reference inside xgrammar.
      grammar.then((g) => g.dispose(), () => {});
    }
    return pending;
  }

  /** A fresh matcher for one reply; `stopIds` end the reply where the grammar may end. */
  async constraint(spec: GrammarSpec, stopIds: readonly number[]): Promise<GrammarConstraint> {
    const compiled = await this.compile(spec);
    const matcher = await xgrammar().GrammarMatcher.createGrammarMatcher(compiled, [...stopIds]);
    return new GrammarConstraint(matcher, this.vocabSize);
  }

  private async compileNow(spec: GrammarSpec): Promise<CompiledGrammar> {
    const compiler = await this.getCompiler();
    const started = performance.now();
    const log = captureXgrammarLog();
    try {
      switch (spec.kind) {
        case 'json_schema':
          return await compiler.compileJSONSchema(spec.schema, ANY_WHITESPACE, ONE_LINE, undefined, !spec.open);
        case 'ebnf':
          return await compiler.compileGrammar(spec.grammar, 'root');
        case 'structural_tag':
          return await compiler.compileStructuralTag(spec.tag);
        case 'tool_calls':
          return await compiler.compileStructuralTag(await toolCallTag(spec));
      }
    } catch (err) {
      const reason = log.lines.find((l) => l.startsWith('[FATAL]')) ?? (err instanceof Error ? err.message : String(err));
      const what = { ebnf: 'grammar', json_schema: 'JSON schema', structural_tag: 'structural tag', tool_calls: 'tools' }[spec.kind];
      throw new GemmaError('INVALID_ARGUMENT', `the ${what} ` +
        `could not be compiled: ${xgrammarMessage(reason)}`);
    } finally {
      log.stop();
      this.lastCompileMs = performance.now() - started;
    }
  }

  private getCompiler(): Promise<GrammarCompiler> {
    this.compiler ??= (async () => {
      const xg = xgrammar();
      const info = await xg.TokenizerInfo.createTokenizerInfo(encodedVocabulary(this.tokenizer, this.vocabSize), 'byte_fallback', false,
        this.vocabSize, stopIdsOf(this.tokenizer));
      return xg.GrammarCompiler.createGrammarCompiler(info, true);
    })();
    return this.compiler;
  }
}

/**
 * The vocabulary as xgrammar reads a SentencePiece byte-fallback vocabulary: pieces with `▁` for
 * spaces and `<0xNN>` for bytes. Special tokens (<bos>, <start_of_turn>, image markers...) become
 * '' so that xgrammar never allows them as text: the detokenizer drops them, so the text the
 * grammar checked would differ from the text the client sees.
 */
function encodedVocabulary(tokenizer: Tokenizer, vocabSize: number): string[] {
  const n = Math.min(tokenizer.size, vocabSize);
  const out = new Array<string>(n);
  for (let id = 0; id < n; id++) out[id] = tokenizer.isSpecial(id) ? '' : tokenizer.piece(id);
  return out;
}

function stopIdsOf(tokenizer: Tokenizer): number[] {
  return [...new Set([tokenizer.eosId, tokenizer.configEosId, tokenizer.endOfTurnId].filter((id): id is number => id !== undefined && id >= 0))];
}

/** xgrammar's "[FATAL] /path/file.cc:123: message" → "message". */
function xgrammarMessage(line: string): string {
  return line.replace(/^\[FATAL\]\s*\S+\.cc:\d+:\s*/, '').trim();
}

/** The captures in progress (compiles can overlap: each awaits xgrammar). */
const captures = new Set<string[]>();
let originalWrite: typeof process.stderr.write | null = null;

/**
 * xgrammar reports why it refused a grammar only on stderr ([FATAL] ... then "Aborted()"); while
 * grammars compile, its lines are kept for the error message instead (other writes pass through).
 */
function captureXgrammarLog(): { lines: string[]; stop(): void } {
  const lines: string[] = [];
  const stderr = process.stderr;
  if (captures.size === 0) {
    const original = stderr.write;
    originalWrite = original;
    stderr.write = function (this: typeof stderr, chunk: unknown, ...rest: unknown[]): boolean {
      const text = typeof chunk === 'string' ? chunk : Buffer.isBuffer(chunk) ? chunk.toString('utf8') : '';
      if (/^\[(FATAL|WARNING)\]|^Aborted\(/.test(text)) {
        for (const c of captures) c.push(text.trim());
        return true;
      }
      return (original as (...a: unknown[]) => boolean).call(this, chunk, ...rest);
    } as typeof stderr.write;
  }
  captures.add(lines);
  return {
    lines,
    stop: () => {
      if (!captures.delete(lines) || captures.size > 0) return;
      stderr.write = originalWrite!;
      originalWrite = null;
    },
  };
}

/** Allowed ids up to which apply() keeps their logits aside and fills the row (scratch shared: one thread). */
const KEEP_ASIDE = 8192;
const keptIds = new Int32Array(KEEP_ASIDE);
const keptValues = new Float32Array(KEEP_ASIDE);

function popcount(x: number): number {
  x -= (x >>> 1) & 0x55555555;
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  return (((x + (x >>> 4)) & 0x0f0f0f0f) * 0x01010101) >>> 24;
}

/** One reply's grammar state: the mask of the next token, then the token taken. */
export class GrammarConstraint {
  private mask: Int32Array | null = null;
  private disposed = false;

  constructor(private readonly matcher: GrammarMatcher, private readonly vocabSize: number) {}

  /** Whether the next mask still has to be computed (prepare() before apply()). */
  get needsPrepare(): boolean {
    return this.mask === null && !this.disposed;
  }

  /** Computes the mask of the next token (xgrammar's API is asynchronous). */
  async prepare(): Promise<void> {
    if (this.needsPrepare) this.mask = await this.matcher.getNextTokenBitmask();
  }

  /**
   * Sets every disallowed logit of `logits` to -Infinity (in place). Returns the number of allowed
   * ids below `limit` (0: the grammar allows nothing more, not even a stop id).
   */
  apply(logits: Float32Array, limit: number): number {
    const mask = this.mask;
    if (!mask) throw new GemmaError('INVALID_ARGUMENT', 'internal error: the grammar mask was not prepared before sampling');
    const n = Math.min(limit, logits.length);
    const words = Math.min(mask.length, Math.ceil(n / 32));
    // Count first: when few ids are allowed (most steps outside strings), keep their logits aside
    // and fill the row at once, which is several times faster than writing -Infinity id by id.
    let allowed = 0;
    for (let w = 0; w < words; w++) {
      const bits = mask[w]!;
      if (bits !== 0) allowed += popcount(w === words - 1 && n - w * 32 < 32 ? bits & ((1 << (n - w * 32)) - 1) : bits);
    }
    if (allowed <= KEEP_ASIDE) {
      let k = 0;
      for (let w = 0; w < words; w++) {
        let bits = mask[w]!;
        while (bits !== 0) {
          const b = 31 - Math.clz32(bits & -bits);
          bits &= bits - 1;
          const id = w * 32 + b;
          if (id >= n) break;
          keptIds[k] = id;
          keptValues[k++] = logits[id]!;
        }
      }
      logits.fill(-Infinity, 0, n);
      for (let i = 0; i < k; i++) logits[keptIds[i]!] = keptValues[i]!;
      return allowed;
    }
    for (let w = 0; w < words; w++) {
      const bits = mask[w]!;
      if (bits === -1) continue;
      const base = w * 32;
      const end = Math.min(32, n - base);
      for (let b = 0; b < end; b++) if (!((bits >>> b) & 1)) logits[base + b] = -Infinity;
    }
    if (words * 32 < n) logits.fill(-Infinity, words * 32, n);
    return allowed;
  }

  /** Advances the grammar past a sampled id (one that apply() allowed). */
  accept(id: number): void {
    this.mask = null;
    if (!this.matcher.acceptToken(id)) {
      throw new GemmaError('INVALID_ARGUMENT', `internal error: the grammar refused token ${id}, which its mask allowed`);
    }
  }

  /** Whether the grammar has accepted a stop id. */
  get terminated(): boolean {
    return this.matcher.isTerminated();
  }

  /** Frees the matcher (idempotent). */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.mask = null;
    this.matcher.dispose();
  }

  /** The vocabulary width the masks cover. */
  get width(): number {
    return this.vocabSize;
  }
}
