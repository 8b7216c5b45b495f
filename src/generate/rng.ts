// A small, fast, seedable PRNG for sampling: xoshiro128** on four 32-bit words (no BigInt).
// Same seed -> same sequence on every platform; no seed -> seeded from the OS's crypto randomness.
import { randomFillSync } from 'node:crypto';
import { invalidArgument } from '../errors.js';

/** murmur3's 32-bit finaliser: a bijection on uint32 that mixes every input bit into every output bit. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

export class Rng {
  private s0 = 0;
  private s1 = 0;
  private s2 = 0;
  private s3 = 0;

  /**
   * @param seed any safe integer (negative allowed). Omitted: 128 bits from crypto randomness.
   */
  constructor(seed?: number) {
    if (seed === undefined) {
      const w = randomFillSync(new Uint32Array(4));
      this.setState(w[0]!, w[1]!, w[2]!, w[3]!);
    } else {
      if (!Number.isSafeInteger(seed)) throw invalidArgument('seed', 'a safe integer', seed);
      // Split into two 32-bit halves (two's complement for negatives), then derive four
      // well-mixed state words. Seeds that differ in any bit give unrelated streams.
      const lo = seed >>> 0;
      const hi = Math.floor(seed / 4294967296) >>> 0;
      const a = fmix32(lo ^ 0x9e3779b9);
      const b = fmix32(hi ^ 0x7f4a7c15);
      this.setState(
        fmix32(a ^ b),
        fmix32((a + 0x6a09e667) ^ fmix32(b + 0xbb67ae85)),
        fmix32((a ^ 0x3c6ef372) + b),
        fmix32(a + fmix32(b ^ 0xa54ff53a) + 0x510e527f),
      );
    }
    // Let the first outputs of a structured state wash out.
    for (let i = 0; i < 8; i++) this.nextUint32();
  }

  private setState(a: number, b: number, c: number, d: number): void {
    this.s0 = a | 0;
    this.s1 = b | 0;
    this.s2 = c | 0;
    this.s3 = d | 0;
    // The all-zero state is the one fixed point of xoshiro; avoid it.
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 0x9e3779b9 | 0;
  }

  /** Next uniformly distributed 32-bit unsigned integer. */
  nextUint32(): number {
    const s1 = this.s1;
    const m = Math.imul(s1, 5);
    const result = Math.imul((m << 7) | (m >>> 25), 9) >>> 0;
    const t = s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= s1;
    this.s1 = s1 ^ this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = (this.s3 << 11) | (this.s3 >>> 21);
    return result;
  }

  /** Uniform double in [0, 1) with 53 random bits (uses two 32-bit outputs). */
  nextFloat(): number {
    const a = this.nextUint32() >>> 5; // 27 bits
    const b = this.nextUint32() >>> 6; // 26 bits
    return (a * 67108864 + b) / 9007199254740992;
  }
}
