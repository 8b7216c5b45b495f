// gemma3 list | rm | show: the models in the Hugging Face cache, and what one is.
import { GemmaError } from '../index.js';
import { hubSettings, listCachedModels, parseModelReference, removeModel, summarizeModel, type ModelSummary } from '../advanced.js';
import { MODEL_FLAGS, modelDir, parse } from './options.js';
import { formatBytes } from './progress.js';

export const LIST_HELP = `gemma3 list [--json]   (also: gemma3 ls)

Lists the models in the Hugging Face cache (HF_HUB_CACHE, else HF_HOME/hub, else
~/.cache/huggingface/hub): name, revision, files, size and kind (checkpoint folder or GGUF).
  --json   one JSON array with every file and path`;

export const RM_HELP = `gemma3 rm REPO[:QUANT] ...

Removes models from the Hugging Face cache: REPO removes the repository's snapshots and files,
REPO:QUANT only that quantisation's GGUF (and the blobs no other snapshot uses).`;

export const SHOW_HELP = `gemma3 show MODEL [--json | --template]

Describes a model without loading its weights (headers and configs only): architecture,
parameters, context length, quantization, vision, format, layers, the chat template's source.
MODEL is a folder, a .gguf file or a name in the hub cache (google/gemma-3-4b-it,
ggml-org/gemma-3-4b-it-GGUF:Q4_K_M); --pull downloads a name the cache lacks.
  --json       everything as one JSON object
  --template   print the chat template only`;

export async function runList(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, { json: { type: 'boolean' } }, LIST_HELP);
  if (positionals.length) throw new GemmaError('INVALID_ARGUMENT', `gemma3 list takes no arguments (got ${JSON.stringify(positionals.join(' '))})`);
  const { cacheDir } = hubSettings();
  const models = listCachedModels(cacheDir);
  if (values.json) {
    process.stdout.write(JSON.stringify(models.map((m) => ({
      name: m.name, repo: m.repo, quant: m.quant ?? null, revision: m.commit, refs: m.refs, kind: m.kind, complete: m.complete,
      files: m.files.map((f) => f.name), size: m.size, modified: m.modified.toISOString(), path: m.path,
    })), null, 2) + '\n');
    return 0;
  }
  if (models.length === 0) {
    process.stderr.write(`gemma3: no models in ${cacheDir}; get one with: gemma3 pull google/gemma-3-4b-it\n`);
    return 0;
  }
  const rows = models.map((m) => [
    m.name, `${m.commit.slice(0, 12)}${m.refs.length ? ` (${m.refs.join(', ')})` : ''}`, String(m.files.length), formatBytes(m.size),
    m.complete ? m.kind : `${m.kind}, incomplete`,
  ]);
  const header = ['NAME', 'REVISION', 'FILES', 'SIZE', 'KIND'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  for (const r of [header, ...rows]) process.stdout.write(r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ') + '\n');
  process.stderr.write(`gemma3: cache ${cacheDir}\n`);
  return 0;
}

export async function runRm(args: string[]): Promise<number> {
  const { positionals } = parse(args, {}, RM_HELP);
  if (positionals.length === 0) throw new GemmaError('INVALID_ARGUMENT', 'gemma3 rm needs a model, like google/gemma-3-4b-it or ggml-org/gemma-3-4b-it-GGUF:Q4_K_M');
  const { cacheDir } = hubSettings();
  const refs = positionals.map((p) => parseModelReference(p, 'gemma3 rm'));
  for (const [i, ref] of refs.entries()) {
    const freed = removeModel(cacheDir, ref);
    process.stdout.write(`removed ${positionals[i]} (${formatBytes(freed)} freed)\n`);
  }
  return 0;
}

export async function runShow(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, { ...MODEL_FLAGS, json: { type: 'boolean' }, template: { type: 'boolean' } }, SHOW_HELP);
  if (positionals.length > 1 || (positionals.length === 1 && values.model !== undefined)) {
    throw new GemmaError('INVALID_ARGUMENT', 'gemma3 show takes one model: gemma3 show MODEL (or --model MODEL)');
  }
  const path = await modelDir({ ...values, model: positionals[0] ?? values.model });
  const s = await summarizeModel(path);
  if (values.json) {
    process.stdout.write(JSON.stringify(s, null, 2) + '\n');
    return 0;
  }
  if (values.template) {
    if (!s.template) throw new GemmaError('FILE_NOT_FOUND', `${s.path} has no chat template`);
    process.stdout.write(s.template.source + '\n');
    return 0;
  }
  process.stdout.write(describe(s));
  return 0;
}

function parameters(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)}B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  return `${(n / 1e3).toFixed(1)}K`;
}

function describe(s: ModelSummary): string {
  const rows: [string, string][] = [
    ['architecture', s.architecture],
    ['parameters', `${parameters(s.parameters)} (${s.parameters})`],
    ['context length', String(s.contextLength)],
    ['quantization', s.quantization],
    ['vision', s.vision ? 'yes' : 'no'],
    ['format', s.format],
    ['layers', `${s.layers} (hidden ${s.hiddenSize}, ${s.heads} heads, ${s.kvHeads} KV heads, sliding window ${s.slidingWindow})`],
    ['vocabulary', String(s.vocabSize)],
    ['template', s.template ? `${s.template.origin} (${s.template.source.length} characters; --template prints it)` : 'none'],
    ['path', s.path],
  ];
  return rows.map(([k, v]) => `  ${k.padEnd(15)} ${v}\n`).join('');
}
