// Reading a byte range of a file completely, in pieces small enough for readSync.
import { readSync } from 'node:fs';
import { GemmaError } from '../errors.js';

/** readSync moves at most 2 GiB per call; read big ranges in pieces. */
const READ_CHUNK = 1 << 30;

/**
 * Reads exactly `length` bytes at `position` into `into` (default: a fresh buffer whose
 * byteOffset is 0, so any typed view is aligned). A short file is BAD_FORMAT naming `what`.
 */
export function readExact(fd: number, position: number, length: number, what: string, into?: Uint8Array): Uint8Array {
  // allocUnsafeSlow never uses the shared pool, so byteOffset is 0.
  const buf = into ?? Buffer.allocUnsafeSlow(length);
  let done = 0;
  while (done < length) {
    const n = readSync(fd, buf, done, Math.min(READ_CHUNK, length - done), position + done);
    if (n === 0) throw new GemmaError('BAD_FORMAT', `${what}: unexpected end of file at byte ${position + done}`);
    done += n;
  }
  return new Uint8Array(buf.buffer, buf.byteOffset, length);
}
