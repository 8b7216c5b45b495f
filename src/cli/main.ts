#!/usr/bin/env node
// gemma3 CLI: argv → subcommand. Built only on the public API; prints GemmaError messages
// (no stack traces) and exits non-zero on failure.
import { GemmaError } from '../index.js';
import { runChat } from './chat.js';
import { runConvert } from './convert.js';
import { runLogits, runRun, runTokenize } from './commands.js';
import { runServe } from './serve.js';
import { runPull } from './pull.js';
import { runList, runRm, runShow } from './models.js';

const USAGE = `gemma3 — run Google's Gemma 3 locally

Usage:
  gemma3 run      [--model DIR | --demo] [options] PROMPT     print the reply as it streams
  gemma3 chat     [--model DIR | --demo] [options]            interactive multi-turn chat
  gemma3 tokenize [--model DIR | --demo] [--no-bos] [--json | --jsonl] [TEXT]
  gemma3 logits   [--model DIR | --demo] (--ids 2,105,... | --messages FILE.json [--pan-and-scan]) [--top K] --json
  gemma3 convert  DIR --out FILE.gguf [--type bf16|q8_0|q4_0|q4_k_m|q6_k|f16|f32] [--mmproj-out FILE.gguf]   (gemma3 convert --help)
  gemma3 serve    [--model DIR | --demo] [--host 127.0.0.1] [--port 8080] [--api-key KEY] [--parallel N] [--context N]
  gemma3 pull     REPO[:QUANT] [--revision R]   download from the Hugging Face hub (gemma3 pull --help)
  gemma3 list     [--json]                      the models in the Hugging Face cache
  gemma3 rm       REPO[:QUANT]                  remove a model from the cache
  gemma3 show     MODEL [--json | --template]   architecture, parameters, context, quantization, vision, template

Generation options (run, chat):
  --system TEXT        system prompt
  --max-tokens N       most tokens to generate (default 512)
  --temperature T      0 = greedy (default: the model's generation_config.json)
  --top-k K  --top-p P  --min-p P  --repetition-penalty R  --seed S
  --stop TEXT          stop string (repeatable)
  --ids 2,105,...      (run) raw token ids instead of a prompt, no template
  --raw                (run) complete the prompt as plain text, no chat template
  --json               (run) print one JSON object at the end instead of streaming
  --image PATH         attach a picture to the (first) message; repeatable (vision models: 4B, 12B, 27B)
  --pan-and-scan       also show the model crops of very wide or tall pictures
  --messages FILE.json (run) a JSON array of chat messages in the Hugging Face form, e.g.
                       [{"role": "user", "content": [{"type": "image", "image": "cat.png"},
                       {"type": "text", "text": "What is this?"}]}]; image paths relative to the file
  --allow-remote-images  accept http(s) image URLs
  --context N          KV cache size in tokens (default 8192)
In gemma3 chat, /image PATH attaches a picture to your next message.

Model options (run, chat, tokenize, logits):
  --model PATH         a Hugging Face checkpoint folder or a llama.cpp .gguf file, or a name in the hub cache:
                       google/gemma-3-4b-it, ggml-org/gemma-3-4b-it-GGUF:Q4_K_M
  --pull               download the --model name first when the cache lacks it
  --mmproj FILE        (GGUF) the vision projector file; default: the one mmproj*.gguf next to the model
  --quant q8_0|q4_0|q4_k_m|q6_k  quantise the weights as they load (as gemma3 convert --type would)
  --mmap auto|on|off   (GGUF, native backend) serve the weights from a mapping of the file instead of
                       copies made at load; auto (default): when the page cache holds it in 2 MiB pages
  --backend auto|native|js  --threads N

The model comes from --model, else $GEMMA3_MODEL, else the Hugging Face cache
(~/.cache/huggingface/hub/models--google--gemma-3-4b-it/...). --demo runs a tiny random model.`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'run':
      return runRun(rest);
    case 'chat':
      return runChat(rest);
    case 'tokenize':
      return runTokenize(rest);
    case 'logits':
      return runLogits(rest);
    case 'serve':
      return runServe(rest);
    case 'convert':
      return runConvert(rest);
    case 'pull':
      return runPull(rest);
    case 'list':
    case 'ls':
      return runList(rest);
    case 'rm':
      return runRm(rest);
    case 'show':
      return runShow(rest);
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE + '\n');
      return command === undefined ? 1 : 0;
    default:
      process.stderr.write(`gemma3: unknown command '${command}'\n\n${USAGE}\n`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof GemmaError) process.stderr.write(`gemma3: ${err.message}\n`);
    else if (err instanceof Error && (err as NodeJS.ErrnoException).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
      process.stderr.write(`gemma3: ${err.message}\nRun 'gemma3 help' for the options.\n`);
    } else if (err instanceof Error && (err as NodeJS.ErrnoException).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`gemma3: ${err.message}\n`);
    } else process.stderr.write(`gemma3: unexpected error: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exitCode = 1;
  },
);
