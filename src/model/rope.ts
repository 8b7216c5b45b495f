// Rotary position embedding, half-split ("rotate_half") layout: pairs (i, i + headDim/2).
// Inverse frequencies follow the reference's float32 arithmetic:
//   inv_freq = 1 / base^(2i/headDim) / factor   (linear scaling divides every frequency)
// ref: transformers modeling_rope_utils._compute_default_rope_parameters / _linear_.

/** cos and sin of every frequency for a list of positions: [positions, headDim / 2] each. */
export interface RopeAngles {
  readonly cos: Float32Array;
  readonly sin: Float32Array;
}

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

  /** The angles of `positions`, computed once and shared by every layer of a step. */
  angles(positions: ArrayLike<number>): RopeAngles {
    const half = this.half;
    const cos = new Float32Array(positions.length * half);
    const sin = new Float32Array(positions.length * half);
    for (let p = 0; p < positions.length; p++) {
      for (let i = 0; i < half; i++) {
        const angle = Math.fround(positions[p]! * this.invFreq[i]!);
        cos[p * half + i] = Math.cos(angle);
        sin[p * half + i] = Math.sin(angle);
      }
    }
    return { cos, sin };
  }

  /** Rotates `numHeads` consecutive heads of one token (at `offset` in x) by row `row` of `angles`. */
  apply(x: Float32Array, offset: number, numHeads: number, angles: RopeAngles, row: number): void {
    const half = this.half;
    const headDim = half * 2;
    const base = row * half;
    for (let i = 0; i < half; i++) {
      const cos = angles.cos[base + i]!;
      const sin = angles.sin[base + i]!;
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
