// The name the server answers to. Clients put it in `model`; a hash or a path there helps nobody.
//   - `--alias NAME` when given;
//   - a checkpoint in the Hugging Face cache (…/models--google--gemma-3-4b-it/snapshots/<hash>):
//     the repository's name, `gemma-3-4b-it`, never the snapshot hash;
//   - a GGUF file: its file name without `.gguf` (it says the size and the quantization);
//   - any other folder: its name.
// Requests may name that id, `gemma3` (the family, so that examples and clients written for any
// Gemma 3 server work unchanged), either with Ollama's `:latest` tag; other names get 404.
import { basename, dirname } from 'node:path';

/** The family name every server also answers to. */
export const FAMILY_ID = 'gemma3';

/** The served model's id for the model at `path` (a folder or a .gguf file). */
export function modelIdFor(path: string, alias?: string): string {
  if (alias !== undefined) return alias;
  const name = basename(path);
  if (/\.gguf$/i.test(name)) return name.replace(/\.gguf$/i, '');
  const parent = dirname(path);
  const repo = basename(dirname(parent));
  if (basename(parent) === 'snapshots' && repo.startsWith('models--')) {
    return repo.split('--').slice(2).join('--') || name;
  }
  return name;
}

/** Whether a request's `model` names the served model `id`. */
export function namesServedModel(model: string, id: string): boolean {
  const bare = model.endsWith(':latest') ? model.slice(0, -':latest'.length) : model;
  return bare === id || bare === FAMILY_ID;
}

/** Checks an --alias value: something a client can type in a JSON string and a URL path. */
export function aliasProblem(alias: string): string | null {
  if (!/^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$/.test(alias)) {
    return 'a name of 1 to 128 letters, digits and . _ : / - (starting with a letter or digit)';
  }
  return null;
}
