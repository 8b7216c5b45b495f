// Writes the model that `gemma3 ... --demo` runs: the tiny random-weight fixture
// (test/fixtures/tiny-text: the real Gemma 3 architecture and tokenizer) converted by our own
// converter to one Q8_0 GGUF whose metadata holds the vocabulary and the chat template. The
// package then ships one 24 MB file (19 MB in the tarball) instead of the fixture's 34 MB of BF16
// weights and a 33 MB tokenizer.json that only exists here as a link into a devDependency.
// Runs after tsc (npm's `prepare`: on `npm install` in a checkout and before `npm pack`).
import { existsSync, mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const source = join(root, 'test', 'fixtures', 'tiny-text');
const out = join(root, 'dist', 'demo', 'gemma3-demo.gguf');
const inputs = ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json'].map((f) => join(source, f));

const newest = Math.max(...inputs.map((f) => statSync(f).mtimeMs), statSync(join(root, 'dist', 'src', 'convert', 'convert.js')).mtimeMs);
if (existsSync(out) && statSync(out).mtimeMs >= newest) {
  console.log(`gemma3: demo model up to date (${out})`);
  process.exit(0);
}
const { convertCheckpoint } = await import(pathToFileURL(join(root, 'dist', 'src', 'advanced.js')).href);
mkdirSync(dirname(out), { recursive: true });
// Written beside and renamed, so a test reading the demo never sees half a file.
const partial = `${out}.${process.pid}.partial`;
try {
  convertCheckpoint(source, partial, { type: 'q8_0', name: 'gemma3-demo' });
  renameSync(partial, out);
} finally {
  rmSync(partial, { force: true });
}
console.log(`gemma3: wrote the demo model ${out} (${(statSync(out).size / 2 ** 20).toFixed(1)} MiB)`);
