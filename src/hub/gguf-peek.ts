// The architecture a GGUF file declares, read from its first bytes (a Range request) before the
// whole file is downloaded, so a repository of another model family is refused up front.
// Layout (ggml/docs/gguf.md): "GGUF", u32 version, u64 tensor count, u64 key count, then keys
// (u64 length + UTF-8), a u32 value type and the value; general.architecture comes first in
// every file llama.cpp writes.
import { GGUF_VALUE_TYPE_IDS } from '../formats/gguf.js';

const SCALAR_BYTES: Record<string, number> = { u8: 1, i8: 1, bool: 1, u16: 2, i16: 2, u32: 4, i32: 4, f32: 4, u64: 8, i64: 8, f64: 8 };

/**
 * `general.architecture` of the GGUF whose first bytes are `head`: the string, 'not-gguf' when the
 * magic is wrong, or null when it is not within these bytes (then nothing is concluded).
 */
export function ggufArchitecture(head: Uint8Array): string | null {
  const view = new DataView(head.buffer, head.byteOffset, head.byteLength);
  if (head.byteLength < 24) return null;
  if (view.getUint32(0, true) !== 0x46554747) return 'not-gguf';
  const keys = Number(view.getBigUint64(16, true));
  let pos = 24;
  const text = (): string | null => {
    if (pos + 8 > head.byteLength) return null;
    const len = Number(view.getBigUint64(pos, true));
    if (len > 1 << 16 || pos + 8 + len > head.byteLength) return null;
    const s = new TextDecoder().decode(head.subarray(pos + 8, pos + 8 + len));
    pos += 8 + len;
    return s;
  };
  for (let i = 0; i < Math.min(keys, 64); i++) {
    const key = text();
    if (key === null || pos + 4 > head.byteLength) return null;
    const type = GGUF_VALUE_TYPE_IDS[view.getUint32(pos, true)];
    pos += 4;
    if (key === 'general.architecture') return type === 'string' ? text() : null;
    if (type === 'string') {
      if (text() === null) return null;
    } else if (type !== undefined && SCALAR_BYTES[type] !== undefined) {
      pos += SCALAR_BYTES[type]!;
    } else {
      return null; // an array before the architecture: give up rather than parse it
    }
  }
  return null;
}
