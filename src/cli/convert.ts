// gemma3 convert: a Hugging Face Gemma 3 checkpoint folder → llama.cpp GGUF (+ mmproj for the
// multimodal checkpoints), with progress on stderr.
import { existsSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { convertCheckpoint, loadConfig, type ConvertProgress, type ConvertType } from '../advanced.js';
import { GemmaError } from '../index.js';
import { parse } from './options.js';

const TYPES: readonly ConvertType[] = ['bf16', 'q8_0', 'q4_0', 'q4_k_m', 'q5_k_m', 'q6_k', 'f16', 'f32'];

export const CONVERT_HELP = `gemma3 convert DIR --out FILE.gguf [--type bf16|q8_0|q4_0|q4_k_m|q5_k_m|q6_k|f16|f32] [--mmproj-out FILE.gguf] [--name NAME]

Writes the Hugging Face Gemma 3 checkpoint in DIR (config.json, *.safetensors, tokenizer.json) as a
llama.cpp GGUF file, the way convert_hf_to_gguf.py (and, for q4_0 / q4_k_m / q5_k_m / q6_k, llama-quantize) would:
  --type          tensor type of the weights (default bf16; norms and vectors stay f32;
                  q4_0 stores the tied embedding as Q6_K, or Q8_0 when its rows are not 256-blocks;
                  q4_k_m / q5_k_m: Q4_K / Q5_K, with Q6_K for the embedding and some layers'
                  attn_v / ffn_down; rows that are not 256-blocks: Q5_0 / Q5_1, Q8_0 for Q6_K)
  --mmproj-out    where the vision tower + projector go for a multimodal checkpoint (4B, 12B, 27B);
                  default: mmproj-<name of --out>.gguf next to --out (found there by gemma3 and load())
  --name          general.name (default: the folder name)
The GGUF runs here (gemma3 run --model FILE.gguf) and in llama.cpp.`;

export async function runConvert(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, {
    out: { type: 'string', short: 'o' },
    type: { type: 'string', short: 't' },
    'mmproj-out': { type: 'string' },
    name: { type: 'string' },
  }, CONVERT_HELP);
  if (positionals.length !== 1) {
    throw new GemmaError('INVALID_ARGUMENT', `gemma3 convert takes one checkpoint folder${positionals.length ? ` (got ${positionals.length} arguments)` : ''}\n\n${CONVERT_HELP}`);
  }
  const dir = resolve(positionals[0]!);
  if (!existsSync(dir)) throw new GemmaError('FILE_NOT_FOUND', `checkpoint folder ${dir} does not exist`);
  if (!statSync(dir).isDirectory()) throw new GemmaError('INVALID_ARGUMENT', `${dir} is not a folder; gemma3 convert takes a Hugging Face checkpoint folder`);
  if (typeof values.out !== 'string' || values.out === '') throw new GemmaError('INVALID_ARGUMENT', 'gemma3 convert needs --out FILE.gguf');
  const type = (values.type ?? 'bf16') as ConvertType;
  if (!TYPES.includes(type)) throw new GemmaError('INVALID_ARGUMENT', `--type must be one of ${TYPES.join(', ')}, got ${JSON.stringify(values.type)}`);
  const out = resolve(values.out);
  const config = loadConfig(dir); // config errors before anything is written
  let mmprojOut: string | undefined;
  if (values['mmproj-out'] !== undefined) {
    if (config.vision === null) throw new GemmaError('INVALID_ARGUMENT', `--mmproj-out given, but ${dir} is a text-only checkpoint (no vision tower)`);
    mmprojOut = resolve(values['mmproj-out']);
  } else if (config.vision !== null) {
    mmprojOut = join(dirname(out), `mmproj-${basename(out).replace(/\.gguf$/i, '')}.gguf`);
  }
  for (const file of [out, mmprojOut]) {
    if (file === undefined) continue;
    const folder = dirname(file);
    if (!existsSync(folder) || !statSync(folder).isDirectory()) throw new GemmaError('FILE_NOT_FOUND', `output folder ${folder} does not exist`);
    if (existsSync(file) && statSync(file).isDirectory()) throw new GemmaError('INVALID_ARGUMENT', `${file} is a folder; give a file name`);
  }
  if (mmprojOut === out) throw new GemmaError('INVALID_ARGUMENT', '--mmproj-out must differ from --out');
  if (out === dir || (out.startsWith(dir + '/') && /\.safetensors$/i.test(out))) {
    throw new GemmaError('INVALID_ARGUMENT', `--out ${out} would overwrite the checkpoint`);
  }

  const tty = process.stderr.isTTY === true;
  const started = Date.now();
  let current = '';
  let shownPct = -1;
  const onProgress = (p: ConvertProgress): void => {
    if (p.file !== current) {
      if (current !== '' && tty) process.stderr.write('\n');
      current = p.file;
      shownPct = -1;
      if (!tty) process.stderr.write(`gemma3: writing ${p.file} (${p.count} tensors)\n`);
    }
    const pct = Math.floor((p.index / p.count) * 100);
    if (tty && pct !== shownPct) {
      shownPct = pct;
      process.stderr.write(`\r\x1b[2Kgemma3: writing ${basename(p.file)} ${pct}% (${p.index}/${p.count}) ${p.tensor}`);
    }
  };
  process.stderr.write(`gemma3: converting ${dir} to ${type}\n`);
  let result;
  try {
    result = convertCheckpoint(dir, out, {
      type, onProgress,
      ...(mmprojOut !== undefined ? { mmprojOut } : {}),
      ...(values.name !== undefined ? { name: values.name } : {}),
    });
  } catch (err) {
    if (tty && current !== '') process.stderr.write('\n');
    const code = (err as NodeJS.ErrnoException).code;
    if (!(err instanceof GemmaError) && typeof code === 'string') {
      throw new GemmaError(code === 'ENOENT' ? 'FILE_NOT_FOUND' : 'INVALID_ARGUMENT', `cannot write ${current || out}: ${(err as Error).message}`, { cause: err });
    }
    throw err;
  }
  if (tty) process.stderr.write('\n');
  const secs = ((Date.now() - started) / 1000).toFixed(1);
  const size = (f: string): string => `${(statSync(f).size / 2 ** 20).toFixed(1)} MiB`;
  process.stderr.write(`gemma3: wrote ${out} (${result.textTensors} tensors, ${size(out)}, vocabulary ${result.vocabSize})` +
    (mmprojOut !== undefined ? ` and ${mmprojOut} (${result.mmprojTensors} tensors, ${size(mmprojOut)})` : '') + ` in ${secs} s\n`);
  return 0;
}
