// Rotary position embedding, half-split ("rotate_half") layout: pairs (i, i + headDim/2).
// Inverse frequencies follow the reference's float32 arithmetic:
//   inv_freq = 1 / base^(2i/headDim) / factor   (linear scaling divides every frequency)
// ref: transformers modeling_rope_utils._compute_default_rope_parameters / _linear_.

export class Rope {
  private readonly invFreq: Float32Array; // [headDim / 2]
  private readonly half: number;

  constructor(headDim: number, base: number, scalingFactor: number) {
    this.half = headDim / 2;
    this.invFreq = new Float32Array(this.half);
    for (let i = 0; i < this.half; i++) {
      const exponent = Math.fround((2 * i) / headDim);
      const denom = Math.fround(Math.pow(base, exponent));
      this.invFreq[i] = Math.fround(Math.fround(1 / denom) / scalingFactor);
    }
  }

  /** Rotates `numHeads` consecutive heads of one token (at `offset` in x) for position `pos`. */
  apply(x: Float32Array, offset: number, numHeads: number, pos: number): void {
    const half = this.half;
    const headDim = half * 2;
    for (let i = 0; i < half; i++) {
      const angle = Math.fround(pos * this.invFreq[i]!);
      const cos = Math.fround(Math.cos(angle));
      const sin = Math.fround(Math.sin(angle));
      for (let h = 0; h < numHeads; h++) {
        const o = offset + h * headDim + i;
        const a = x[o]!;
        const b = x[o + half]!;
        x[o] = a * cos - b * sin;
        x[o + half] = b * cos + a * sin;
      }
    }
  }
}
