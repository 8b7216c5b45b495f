// Fuzzing the loaders: seeded random corruptions of every file format the engine reads (GGUF
// models and mmproj files, safetensors, config.json and the other checkpoint JSON files,
// tokenizer.json, PNG / JPEG images) must each end in a successful load or a GemmaError: no
// crash, no hang, no huge allocation (see fuzz-harness.ts for how each is detected).
//
//   GEMMA3_FUZZ_ITERATIONS=N   cases per format (default: a few seconds' worth in all; the full-size
//                              tiny-text safetensors, ~0.3 s a case, gets N/10)
//   GEMMA3_FUZZ_SEED=S         the seed (default fixed, so `npm test` is reproducible; "random" for a
//                              fresh one). A failing case is named by (seed, format, index).
//   GEMMA3_FUZZ_FORMATS=a,b    only these formats
//   GEMMA3_FUZZ_REPORT=file    also write the summaries as JSON
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildCorpus, type Corpus } from './fuzz-corpus.js';
import { FORMATS, formatFailure, formatSummary, runFuzz, type Format, type FuzzSummary } from './fuzz-harness.js';
import { tempDir } from './st-writer.js';

const DEFAULT_CASES: Readonly<Record<Format, number>> = {
  gguf: 40, mmproj: 30, safetensors: 30, 'safetensors-tiny': 4, config: 30, tokenizer: 25, image: 40,
};

const iterations = Number(process.env.GEMMA3_FUZZ_ITERATIONS ?? '');
const seedEnv = process.env.GEMMA3_FUZZ_SEED;
const SEED = seedEnv === 'random' ? Math.floor(Math.random() * 2 ** 31) : seedEnv ? Number(seedEnv) : 20250417;
const only = process.env.GEMMA3_FUZZ_FORMATS?.split(',').filter((f) => f !== '');

function casesFor(format: Format): number {
  if (!(iterations > 0)) return DEFAULT_CASES[format];
  return format === 'safetensors-tiny' ? Math.max(1, Math.round(iterations / 10)) : iterations;
}

const tmp = tempDir('fuzz');
let corpus: Corpus;
const summaries: FuzzSummary[] = [];

describe(`fuzzing the loaders (seed ${SEED}; rerun with GEMMA3_FUZZ_SEED=${SEED})`, () => {
  before(async () => {
    corpus = await buildCorpus(join(tmp.dir, 'corpus'));
  });
  after(() => {
    console.log(`fuzz seed ${SEED}\n${summaries.map(formatSummary).join('\n')}`);
    if (process.env.GEMMA3_FUZZ_REPORT) {
      writeFileSync(process.env.GEMMA3_FUZZ_REPORT, JSON.stringify(summaries.map(({ reports: _, ...s }) => s), null, 2));
    }
    tmp.cleanup();
  });

  for (const format of FORMATS) {
    if (only !== undefined && !only.includes(format)) continue;
    test(`${format}: ${casesFor(format)} corrupted files each load or throw a GemmaError`, async () => {
      const s = await runFuzz({ corpus, work: join(tmp.dir, 'work'), format, seed: SEED, cases: casesFor(format) });
      summaries.push(s);
      assert.equal(s.failures.length, 0,
        `${formatSummary(s)}\nfailing cases (seed ${SEED}):\n${s.failures.slice(0, 10).map(formatFailure).join('\n')}`);
      // The corruptions must be worth something: most are refused.
      assert.ok(s.typed > 0, `no corruption of ${format} was refused`);
    });
  }
});
