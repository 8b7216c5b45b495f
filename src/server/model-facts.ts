// What the server tells clients about its model (/api/tags, /api/version): the parameter count of
// every tower, the weights' real storage type, a content digest of the files, the package version.
import { createHash } from 'node:crypto';
import { createReadStream, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Gemma3 } from '../gemma3.js';
import { countParameters as countConfigParameters } from '../model/parameters.js';

/** Parameters of the text decoder and, for multimodal checkpoints, the SigLIP tower and projector (from the config). */
export function countParameters(model: Gemma3): number {
  return countConfigParameters(model.config);
}

/** The storage type of most of the decoder's weights, as Ollama names it ('Q4_0', 'Q8_0', 'BF16', ...). */
export function quantizationLevel(model: Gemma3): string {
  const bytesByType = new Map<string, number>();
  for (const layer of model.decoder.weights.layers) {
    for (const w of Object.values(layer)) {
      if (w && typeof w === 'object' && 'dtype' in w && 'data' in w) {
        const m = w as { dtype: string; data: Uint8Array };
        bytesByType.set(m.dtype, (bytesByType.get(m.dtype) ?? 0) + m.data.byteLength);
      }
    }
  }
  const [top] = [...bytesByType].sort((a, b) => b[1] - a[1]);
  return (top?.[0] ?? 'unknown').toUpperCase();
}

/**
 * sha256 of the model's content: of the GGUF file itself, or, for a checkpoint folder, of its
 * files' names and sha256 in name order. Reads every byte (seconds per gigabyte), so the server
 * computes it in the background.
 */
export async function modelDigest(path: string): Promise<string> {
  if (statSync(path).isFile()) return `sha256:${await fileSha256(path)}`;
  const outer = createHash('sha256');
  for (const name of readdirSync(path).sort()) {
    const file = join(path, name);
    if (!statSync(file).isFile()) continue;
    outer.update(`${name}\0${await fileSha256(file)}\n`);
  }
  return `sha256:${outer.digest('hex')}`;
}

async function fileSha256(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** This package's version (package.json, two folders above src/ or dist/src/). */
export const PACKAGE_VERSION: string = (() => {
  for (const up of ['../../package.json', '../../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(up, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'gemma3' && pkg.version) return pkg.version;
    } catch {
      // not there: try the next level
    }
  }
  return '0.0.0';
})();
