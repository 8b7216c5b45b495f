import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Repository root (benchmarks run from dist/bench/). */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
