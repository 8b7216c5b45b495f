// gemma3 pull REPO[:QUANT]: download a model from the Hugging Face hub into its cache.
import { GemmaError } from '../index.js';
import { DEFAULT_QUANTS, formatReference, hubSettings, parseModelReference, pullModel, type PullResult } from '../advanced.js';
import { parse } from './options.js';
import { formatBytes, progressReporter } from './progress.js';

export const PULL_HELP = `gemma3 pull REPO[:QUANT] [--revision R]

Downloads a Gemma 3 model from the Hugging Face hub into its cache (the one Python's
huggingface_hub uses, so models are shared with it), fetching only what the engine reads:

  gemma3 pull google/gemma-3-4b-it                  a checkpoint folder (config, tokenizer, safetensors)
  gemma3 pull ggml-org/gemma-3-4b-it-GGUF:Q4_K_M    one quantisation of a GGUF repository, and its mmproj
  gemma3 pull ggml-org/gemma-3-4b-it-GGUF           without a quantisation: ${DEFAULT_QUANTS.join(', else ')}, else the first

  --revision R   a branch, tag or commit (default main)

Interrupted downloads resume; every file is checked against its sha256 (or git id) before it counts.
Environment: HF_TOKEN (or the token file of 'huggingface-cli login') for gated models such as Gemma;
HF_HUB_CACHE / HF_HOME (cache location), HF_ENDPOINT (a mirror), HF_HUB_OFFLINE=1 (cache only).`;

export async function runPull(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, { revision: { type: 'string' } }, PULL_HELP);
  if (positionals.length !== 1) {
    throw new GemmaError('INVALID_ARGUMENT', `gemma3 pull takes one model, like google/gemma-3-4b-it or ggml-org/gemma-3-4b-it-GGUF:Q4_K_M` +
      (positionals.length ? ` (got ${positionals.length}: ${positionals.join(' ')})` : ''));
  }
  const result = await pullWithProgress(positionals[0]!, values.revision as string | undefined);
  process.stdout.write(`${result.reference}\t${result.path}\n`);
  return 0;
}

/** Pulls with the progress display on stderr (also used by --pull on the other commands). */
export async function pullWithProgress(reference: string, revision?: string): Promise<PullResult> {
  const ref = parseModelReference(reference, 'model');
  const settings = hubSettings();
  const reporter = progressReporter();
  const started = Date.now();
  const controller = new AbortController();
  const onSigint = () => controller.abort();
  process.once('SIGINT', onSigint);
  try {
    const result = await pullModel(ref, {
      settings, onEvent: (e) => reporter.onEvent(e), signal: controller.signal, ...(revision !== undefined ? { revision } : {}),
    });
    const size = result.files.reduce((n, f) => n + f.size, 0);
    const seconds = (Date.now() - started) / 1000;
    process.stderr.write(`gemma3: ${settings.offline ? 'found (offline)' : 'pulled'} ${result.reference} at ${result.commit.slice(0, 12)}: ` +
      `${result.files.length} files, ${formatBytes(size)} (${formatBytes(result.fetched)} downloaded in ${seconds.toFixed(1)} s)\n` +
      `gemma3: run it with: gemma3 chat --model ${result.reference}\n`);
    return result;
  } catch (err) {
    if (err instanceof GemmaError && err.code === 'ABORTED') {
      throw new GemmaError('ABORTED', `pull of ${formatReference(ref)} interrupted; what was downloaded is kept and the next pull resumes`);
    }
    throw err;
  } finally {
    process.off('SIGINT', onSigint);
  }
}
