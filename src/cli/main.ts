#!/usr/bin/env node
// gemma3 CLI: argv → subcommand. Built only on the public API; prints GemmaError messages
// (no stack traces) and exits non-zero on failure. Each command's --help text lives in its file.
import { readFileSync } from 'node:fs';
import { GemmaError } from '../index.js';
import { runChat } from './chat.js';
import { runConvert } from './convert.js';
import { runLogits, runRun, runTokenize } from './commands.js';
import { HelpRequest } from './options.js';
import { runServe } from './serve.js';
import { runPull } from './pull.js';
import { runList, runRm, runShow } from './models.js';

const USAGE = `gemma3 — run Google's Gemma 3 locally

Usage: gemma3 COMMAND [options]          gemma3 COMMAND --help shows a command's options

Commands:
  run        print the reply to one prompt as it streams
  chat       an interactive multi-turn chat in the terminal
  serve      an OpenAI- and Ollama-compatible HTTP server with a web chat page
  tokenize   print the token ids of a text
  logits     print the most likely next tokens at each position of a prompt
  convert    write a Hugging Face checkpoint as a llama.cpp GGUF file
  pull       download a model from the Hugging Face hub into its cache
  list       the models in the Hugging Face cache (also: ls)
  rm         remove a model from the cache
  show       a model's architecture, parameters, context, quantization, vision and template
  help [COMMAND]   this text, or a command's options
  --version  print the version

The model comes from --model (a Hugging Face checkpoint folder, a .gguf file, or a name in the hub
cache such as google/gemma-3-4b-it or ggml-org/gemma-3-4b-it-GGUF:Q4_K_M), else
$GEMMA3_MODEL, else the Hugging Face cache (~/.cache/huggingface/hub/models--google--gemma-3-4b-it/...).
--demo runs a tiny model with random weights shipped in the package (offline; meaningless words).

Examples:
  gemma3 run --demo "Hi"
  gemma3 pull ggml-org/gemma-3-4b-it-GGUF:Q4_0 && gemma3 chat --model ggml-org/gemma-3-4b-it-GGUF:Q4_0
  gemma3 serve --model gemma-3-4b-it-q4_0.gguf --port 8080`;

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
    case '--version':
    case '-v':
    case 'version':
      process.stdout.write(`${packageVersion()}\n`);
      return 0;
    case 'help':
      if (rest[0] !== undefined && rest[0] !== 'help') return main([rest[0], '--help']);
      process.stdout.write(USAGE + '\n');
      return 0;
    case undefined:
    case '--help':
    case '-h':
      process.stdout.write(USAGE + '\n');
      return command === undefined ? 1 : 0;
    default:
      process.stderr.write(`gemma3: unknown command '${command}'\n\n${USAGE}\n`);
      return 2;
  }
}

/** The version in the package.json this file ships in (dist/src/cli/ → the package root). */
function packageVersion(): string {
  const file = new URL('../../../package.json', import.meta.url);
  return (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof HelpRequest) {
      process.stdout.write(err.text + '\n');
      process.exitCode = 0;
      return;
    }
    if (err instanceof GemmaError) process.stderr.write(`gemma3: ${err.message}\n`);
    else if (err instanceof Error && (err as NodeJS.ErrnoException).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
      process.stderr.write(`gemma3: ${err.message}\nRun 'gemma3 ${process.argv[2]} --help' for the options.\n`);
    } else if (err instanceof Error && (err as NodeJS.ErrnoException).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`gemma3: ${err.message}\n`);
    } else process.stderr.write(`gemma3: unexpected error: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exitCode = 1;
  },
);
