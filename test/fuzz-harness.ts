// Parent side of the fuzz suite: runs the cases of one format in child processes (fuzz-child.ts),
// a batch per child, each child under a V8 heap limit. A case fails when
//   * its loader threw something other than a GemmaError (untyped),
//   * the child died while it ran (crash: a V8 heap abort, a native fault),
//   * it ran longer than the per-case time limit (hang: the child is killed),
//   * it raised the child's peak resident memory above the bound (memory).
// After a crash or a hang the batch continues in a fresh child from the next case.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Corpus } from './fuzz-corpus.js';

export const FORMATS = ['gguf', 'mmproj', 'safetensors', 'safetensors-tiny', 'config', 'tokenizer', 'image'] as const;
export type Format = (typeof FORMATS)[number];

export interface ChildSpec {
  corpus: Corpus;
  /** A folder of the child's own. */
  work: string;
  format: Format;
  seed: number;
  from: number;
  to: number;
  /** Instead of generated cases: these files, loaded as `format` (regression cases). */
  files?: string[];
}

export interface CaseReport {
  i: number;
  outcome: 'ok' | 'typed' | 'untyped';
  what: string;
  code?: string;
  message?: string;
  ms: number;
  /** Peak resident memory of the child so far, MiB. */
  rssMb: number;
}

const CHILD = join(fileURLToPath(new URL('.', import.meta.url)), 'fuzz-child.js');

export interface FuzzOptions {
  corpus: Corpus;
  /** A scratch folder; each child works in a subfolder. */
  work: string;
  format: Format;
  seed: number;
  cases: number;
  /** Cases per child process. */
  batch?: number;
  /** A case running longer is a hang (default 20 s). */
  caseTimeoutMs?: number;
  /** A case that takes the child's peak RSS above this is a memory failure (default 700 MiB). */
  maxRssMb?: number;
  /** The child's V8 heap limit, --max-old-space-size (default 384 MiB). */
  heapMb?: number;
  /** Regression mode: load these files instead of generated cases. */
  files?: string[];
}

export type Failure = Omit<CaseReport, 'outcome' | 'ms' | 'rssMb'> & {
  outcome: 'untyped' | 'crash' | 'hang' | 'memory';
  ms?: number;
  rssMb?: number;
};

export interface FuzzSummary {
  format: Format;
  seed: number;
  cases: number;
  loaded: number;
  typed: number;
  failures: Failure[];
  /** Typed errors by code. */
  codes: Record<string, number>;
  peakRssMb: number;
  slowestMs: number;
  ms: number;
  /** Every case report, in order (regression mode reads the messages). */
  reports: CaseReport[];
}

export async function runFuzz(o: FuzzOptions): Promise<FuzzSummary> {
  const started = performance.now();
  const total = o.files?.length ?? o.cases;
  const batch = o.batch ?? 250;
  const summary: FuzzSummary = {
    format: o.format, seed: o.seed, cases: total, loaded: 0, typed: 0, failures: [], codes: {}, peakRssMb: 0, slowestMs: 0, ms: 0, reports: [],
  };
  let next = 0;
  let child = 0;
  while (next < total) {
    const to = Math.min(total, next + batch);
    const spec: ChildSpec = {
      corpus: o.corpus, work: join(o.work, `${o.format}-${child++}`), format: o.format, seed: o.seed, from: next, to,
      ...(o.files ? { files: o.files } : {}),
    };
    const run = await runChild(spec, o.caseTimeoutMs ?? 20_000, o.heapMb ?? 384);
    for (const r of run.reports) {
      summary.reports.push(r);
      summary.peakRssMb = Math.max(summary.peakRssMb, r.rssMb);
      summary.slowestMs = Math.max(summary.slowestMs, r.ms);
      if (r.outcome === 'untyped') summary.failures.push({ ...r, outcome: 'untyped' });
      else if (r.rssMb > (o.maxRssMb ?? 700)) summary.failures.push({ ...r, outcome: 'memory' });
      if (r.outcome === 'ok') summary.loaded++;
      if (r.outcome === 'typed') {
        summary.typed++;
        summary.codes[r.code!] = (summary.codes[r.code!] ?? 0) + 1;
      }
    }
    if (run.died !== null) {
      summary.failures.push(run.died);
      next = run.died.i + 1;
    } else {
      next = to;
    }
  }
  summary.ms = Math.round(performance.now() - started);
  return summary;
}

interface ChildRun {
  reports: CaseReport[];
  /** The case during which the child crashed or was killed, if it did not finish its batch. */
  died: Failure | null;
}

function runChild(spec: ChildSpec, caseTimeoutMs: number, heapMb: number): Promise<ChildRun> {
  return new Promise((resolve) => {
    const proc = spawn(process.execPath, [`--max-old-space-size=${heapMb}`, CHILD, JSON.stringify(spec)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const reports: CaseReport[] = [];
    let current = spec.from; // the case running now (or about to)
    let currentWhat = '(not yet written)';
    let caseStart = performance.now();
    let hung = false;
    let stdout = '';
    let stderr = '';
    const timer = setInterval(() => {
      if (performance.now() - caseStart > caseTimeoutMs) {
        hung = true;
        proc.kill('SIGKILL');
      }
    }, 250);
    proc.stdout.setEncoding('utf8');
    proc.stdout.on('data', (chunk: string) => {
      stdout += chunk;
      let nl: number;
      while ((nl = stdout.indexOf('\n')) >= 0) {
        const line = stdout.slice(0, nl);
        stdout = stdout.slice(nl + 1);
        if (line.startsWith('FUZZ start ')) {
          ({ i: current, what: currentWhat } = JSON.parse(line.slice(11)) as { i: number; what: string });
          caseStart = performance.now();
        } else if (line.startsWith('FUZZ end ')) {
          reports.push(JSON.parse(line.slice(9)) as CaseReport);
          current = reports[reports.length - 1]!.i + 1;
          currentWhat = '(not yet written: the mutator was running)';
          caseStart = performance.now();
        }
      }
    });
    proc.stderr.setEncoding('utf8');
    proc.stderr.on('data', (chunk: string) => {
      stderr = (stderr + chunk).slice(-4000);
    });
    proc.on('close', (code, signal) => {
      clearInterval(timer);
      if (current >= spec.to && code === 0) {
        resolve({ reports, died: null });
        return;
      }
      const what = `${currentWhat} (case ${current} of ${spec.format}, seed ${spec.seed})`;
      const died: Failure = hung
        ? { i: current, outcome: 'hang', what, message: `no result within ${caseTimeoutMs} ms` }
        : { i: current, outcome: 'crash', what, message: `child exited (code ${code}, signal ${signal}): ${lastWords(stderr)}` };
      resolve({ reports, died });
    });
  });
}

/** What a dead child said last, without the native stack frames of a V8 abort. */
function lastWords(stderr: string): string {
  const lines = stderr.split('\n').filter((l) => l.trim() !== '' && !/^\s*\d+: 0x[0-9a-f]+/.test(l));
  return lines.slice(-6).join('\n');
}

/** One line per format for the test log. */
export function formatSummary(s: FuzzSummary): string {
  const codes = Object.entries(s.codes).sort((a, b) => b[1] - a[1]).map(([c, n]) => `${c} ${n}`).join(', ');
  const count = (k: Failure['outcome']) => s.failures.filter((f) => f.outcome === k).length;
  return `${s.format.padEnd(16)} ${String(s.cases).padStart(5)} cases: ${s.loaded} loaded, ${s.typed} typed errors (${codes || 'none'}); ` +
    `untyped ${count('untyped')}, crashes ${count('crash')}, hangs ${count('hang')}, over memory ${count('memory')}; ` +
    `peak RSS ${s.peakRssMb} MiB, slowest case ${s.slowestMs} ms, ${(s.ms / 1000).toFixed(1)} s`;
}

export function formatFailure(f: Failure): string {
  return `  #${f.i} ${f.outcome}: ${f.what}\n    ${f.code ?? ''} ${f.message ?? ''}`.trimEnd();
}
