// Test-only safetensors writer: builds valid files (and deliberately broken ones) in temp folders.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface StTensor {
  name: string;
  dtype: string; // safetensors spelling: BF16, F16, F32, I64, ...
  shape: number[];
  data: Uint8Array;
}

/** Serialises tensors back to back (header padded with spaces to 8 bytes, like the reference). */
export function encodeSafetensors(tensors: StTensor[], metadata: Record<string, string> | null = { format: 'pt' }): Uint8Array {
  const header: Record<string, unknown> = {};
  if (metadata !== null) header['__metadata__'] = metadata;
  let offset = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  const data = new Uint8Array(offset);
  offset = 0;
  for (const t of tensors) {
    data.set(t.data, offset);
    offset += t.data.byteLength;
  }
  return encodeRaw(JSON.stringify(header), data);
}

/** A file from a literal header string and data section (for corrupt-header tests). */
export function encodeRaw(headerText: string, data: Uint8Array = new Uint8Array(0), declaredLength?: bigint): Uint8Array {
  let text = headerText;
  while (Buffer.byteLength(text) % 8 !== 0) text += ' ';
  const headerBytes = Buffer.from(text, 'utf8');
  const out = new Uint8Array(8 + headerBytes.length + data.byteLength);
  new DataView(out.buffer).setBigUint64(0, declaredLength ?? BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  out.set(data, 8 + headerBytes.length);
  return out;
}

/** A temp folder that the caller removes with `cleanup()`. */
export function tempDir(tag: string): { dir: string; write: (name: string, bytes: Uint8Array | string) => string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), `gemma3-${tag}-`));
  return {
    dir,
    write: (name, bytes) => {
      const path = join(dir, name);
      writeFileSync(path, bytes);
      return path;
    },
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** Zero-filled tensor data of a shape. */
export function zeros(dtype: 'BF16' | 'F16' | 'F32', shape: number[]): Uint8Array {
  const size = dtype === 'F32' ? 4 : 2;
  return new Uint8Array(shape.reduce((a, d) => a * d, 1) * size);
}
