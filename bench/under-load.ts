// npm run bench:load [-- --weights q4_0] [--rounds N] [--decode N] [--prompt N] [--threads N]
//                    [--busy-core N] [--cache DIR] [--skip-llama] [--json]
// Decode speed with a CPU-bound neighbour: users' machines always run other programs, and a
// thread pool that spin-waits for a descheduled partner collapses (1.5-3.3 t/s instead of 63-73
// on two cores). Our engine and llama.cpp (node-llama-cpp) on the synthetic 4B GGUF, each run in
// its own process, quiet and then with a busy loop pinned to one core (`taskset -c N`), engines
// alternating, medians over rounds. The target: our ratio to llama.cpp under load is no worse
// than without load (we degrade no more than llama.cpp does). With --json the last line is
// {"rows": [{"condition", "engine", "decode_tps", "samples"}, ...]}.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ensureSynthetic4b, parseBenchWeights } from './synthetic.js';
import { REPO_ROOT } from './paths.js';

const { values } = parseArgs({
  options: {
    weights: { type: 'string' }, rounds: { type: 'string' }, decode: { type: 'string' }, prompt: { type: 'string' },
    threads: { type: 'string' }, 'busy-core': { type: 'string' }, cache: { type: 'string' }, 'skip-llama': { type: 'boolean' },
    json: { type: 'boolean' },
  },
});
const weightList = parseBenchWeights(values.weights ?? 'q4_0');
if (weightList.length !== 1) throw new Error(`--weights takes one weight type here, got ${values.weights}`);
const weights = weightList[0]!;
const rounds = Number(values.rounds ?? 3);
const decodeTokens = Number(values.decode ?? 64);
// A short prompt: this measures decoding, and prompts under load only make the run longer.
const promptTokens = Number(values.prompt ?? 16);
const threads = Number(values.threads ?? availableParallelism());
const busyCore = Number(values['busy-core'] ?? availableParallelism() - 1);
const cacheDir = values.cache ?? join(REPO_ROOT, 'bench', '.cache');
const engines = values['skip-llama'] ? (['gemma3'] as const) : (['gemma3', 'node-llama-cpp'] as const);
type Engine = (typeof engines)[number];
type Condition = 'quiet' | 'loaded';
const log = (s: string) => process.stderr.write(`bench:load: ${s}\n`);

if (spawnSync('taskset', ['-c', String(busyCore), 'true']).status !== 0) {
  throw new Error(`taskset -c ${busyCore} does not run here (util-linux's taskset is needed to pin the busy neighbour to one core)`);
}

/** Decode tokens per second of one engine run in its own process (bench/engine-*.ts), or null. */
function runEngine(engine: Engine, model: string): number | null {
  const script = join(REPO_ROOT, 'dist', 'bench', engine === 'gemma3' ? 'engine-gemma3.js' : 'engine-llama.js');
  const r = spawnSync(process.execPath, [script, model, String(promptTokens), String(decodeTokens), String(threads)], {
    encoding: 'utf8', timeout: 30 * 60_000, maxBuffer: 1 << 24,
  });
  try {
    return (JSON.parse(r.stdout.trim().split('\n').pop() ?? '') as { decode_tps: number }).decode_tps;
  } catch {
    log(`${engine} failed (exit ${r.status}): ${r.stderr.slice(-2000)}`);
    return null;
  }
}

/** A CPU-bound neighbour: a busy loop in its own process, pinned to one core. */
function startNeighbour(): ChildProcess {
  return spawn('taskset', ['-c', String(busyCore), process.execPath, '-e', 'for (;;) {}'], { stdio: 'ignore' });
}

function stopNeighbour(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

/** Reads the file once, so the first engine does not also time the disk. */
function warmPageCache(file: string): void {
  const fd = openSync(file, 'r');
  const chunk = Buffer.allocUnsafe(8 << 20);
  try {
    for (let at = 0, n; (n = readSync(fd, chunk, 0, chunk.length, at)) > 0;) at += n;
  } finally {
    closeSync(fd);
  }
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

const model = ensureSynthetic4b(weights, cacheDir, log);
warmPageCache(model);
const samples: Record<Condition, Record<Engine, number[]>> = {
  quiet: { gemma3: [], 'node-llama-cpp': [] },
  loaded: { gemma3: [], 'node-llama-cpp': [] },
};
let neighbour: ChildProcess | null = null;
process.on('exit', () => neighbour?.kill('SIGKILL'));
for (let round = 0; round < rounds; round++) {
  // Quiet and loaded alternate too, so a slow spell of the machine does not land on one of them.
  for (const condition of round % 2 ? (['loaded', 'quiet'] as const) : (['quiet', 'loaded'] as const)) {
    if (condition === 'loaded') neighbour = startNeighbour();
    log(`round ${round + 1}/${rounds}, ${condition}: load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
    for (const engine of round % 2 ? [...engines].reverse() : engines) {
      const tps = runEngine(engine, model);
      if (tps === null) continue;
      samples[condition][engine].push(tps);
      log(`  ${engine}: decode ${tps.toFixed(2)} t/s`);
    }
    if (neighbour) await stopNeighbour(neighbour);
    neighbour = null;
  }
}

const fmt = (n: number, d = 2) => (Number.isFinite(n) ? n.toFixed(d) : '-');
const tps = (c: Condition, e: Engine) => median(samples[c][e]);
const busy = `a busy loop pinned to core ${busyCore}`;
console.log(`\nDecode, Gemma 3 4B shapes, synthetic ${weights.toUpperCase()}, ${threads} threads, prompt ${promptTokens}, ` +
  `decode ${decodeTokens}, median of ${rounds}; loaded: ${busy}\n`);
console.log('| condition | gemma3 t/s | llama.cpp t/s | ours / llama.cpp |');
console.log('| --- | --- | --- | --- |');
for (const c of ['quiet', 'loaded'] as const) {
  console.log(`| ${c} | ${fmt(tps(c, 'gemma3'))} | ${fmt(tps(c, 'node-llama-cpp'))} | ${fmt(tps(c, 'gemma3') / tps(c, 'node-llama-cpp'))}x |`);
}
const kept = (e: Engine) => tps('loaded', e) / tps('quiet', e);
console.log(`| loaded / quiet | ${fmt(kept('gemma3'))}x | ${fmt(kept('node-llama-cpp'))}x | |`);
const ratioQuiet = tps('quiet', 'gemma3') / tps('quiet', 'node-llama-cpp');
const ratioLoaded = tps('loaded', 'gemma3') / tps('loaded', 'node-llama-cpp');
if (Number.isFinite(ratioQuiet) && Number.isFinite(ratioLoaded)) {
  console.log(`\ntarget (ours / llama.cpp under load >= without): ${fmt(ratioLoaded)}x vs ${fmt(ratioQuiet)}x, ` +
    `${ratioLoaded >= ratioQuiet ? 'met' : 'not met'}`);
}
if (values.json) {
  const rows = (['quiet', 'loaded'] as const).flatMap((condition) => engines.map((engine) => ({
    condition, engine, decode_tps: tps(condition, engine), samples: samples[condition][engine],
  })));
  console.log(JSON.stringify({ rows }));
}
