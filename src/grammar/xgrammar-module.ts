// Loads xgrammar (@mlc-ai/web-xgrammar), the constrained-decoding engine of vLLM, SGLang and MLC,
// compiled to WebAssembly. Its package declares `"type": "module"` but ships a UMD bundle, so
// neither `import` (no ES exports) nor `require` (refused inside an ES package) loads it; it is
// compiled here as the CommonJS file it is, once per thread, located through createRequire so
// that it resolves from dist/ as installed.
import Module, { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type * as XGrammar from '@mlc-ai/web-xgrammar';

export type XGrammarModule = typeof XGrammar;

let loaded: XGrammarModule | null = null;

/** The xgrammar module (loaded on first use; about 15 ms, plus the wasm instance on first call). */
export function xgrammar(): XGrammarModule {
  if (loaded) return loaded;
  const require = createRequire(import.meta.url);
  const file = require.resolve('@mlc-ai/web-xgrammar');
  // Node's own CommonJS path (what require() would do for a .cjs file): module-scoped require,
  // __filename and dynamic import() all work, which the bundle's Node branch needs.
  type CjsModule = { filename: string; paths: string[]; exports: unknown; _compile(source: string, filename: string): void };
  const ModuleCtor = Module as unknown as { new (id: string): CjsModule; _nodeModulePaths(dir: string): string[] };
  const m = new ModuleCtor(file);
  m.filename = file;
  m.paths = ModuleCtor._nodeModulePaths(dirname(file));
  m._compile(readFileSync(file, 'utf8'), file);
  loaded = m.exports as XGrammarModule;
  return loaded;
}
