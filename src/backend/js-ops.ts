// Small float32 ops of the Gemma 3 forward pass, in place over row-major buffers. Sums run in
// float64 (JavaScript numbers) and results round to float32 on store, like the reference's
// float32 compute up to summation order.

/**
 * Gemma RMSNorm over `rows` rows of length n: out = x · rsqrt(mean(x²) + eps) · scale.
 * `scale` is the effective (1 + w) for Gemma norms; out may alias x.
 */
export function rmsNorm(out: Float32Array, x: Float32Array, scale: Float32Array, eps: number, rows: number, n: number): void {
  for (let r = 0; r < rows; r++) {
    const o = r * n;
    const inv = inverseRms(x, o, n, eps);
    for (let i = 0; i < n; i++) out[o + i] = Math.fround(x[o + i]! * inv) * scale[i]!;
  }
}

/** rsqrt(mean(x²) + eps) of x[o, o + n), rounded to float32 at the reference's points. */
function inverseRms(x: Float32Array, o: number, n: number, eps: number): number {
  let sumSq = 0;
  for (let i = 0; i < n; i++) {
    const v = x[o + i]!;
    sumSq += v * v;
  }
  return Math.fround(1 / Math.sqrt(Math.fround(Math.fround(sumSq / n) + eps)));
}

/** residual += rmsNorm(x) · scale, row by row (x is left as it is); same roundings as rmsNorm then add. */
export function rmsNormAdd(residual: Float32Array, x: Float32Array, scale: Float32Array, eps: number, rows: number, n: number): void {
  for (let r = 0; r < rows; r++) {
    const o = r * n;
    const inv = inverseRms(x, o, n, eps);
    for (let i = 0; i < n; i++) residual[o + i] = residual[o + i]! + Math.fround(Math.fround(x[o + i]! * inv) * scale[i]!);
  }
}

/** tanh-approximated GELU of the gate times the up branch, in place into `gate`. */
export function geluTanhMul(gate: Float32Array, up: Float32Array, n: number): void {
  const k = Math.sqrt(2 / Math.PI);
  for (let i = 0; i < n; i++) {
    const z = gate[i]!;
    gate[i] = 0.5 * z * (1 + Math.tanh(k * (z + 0.044715 * z * z * z))) * up[i]!;
  }
}

/** tanh-approximated GELU in place (SigLIP MLP). */
export function geluTanh(x: Float32Array, n: number): void {
  const k = Math.sqrt(2 / Math.PI);
  for (let i = 0; i < n; i++) {
    const z = x[i]!;
    x[i] = 0.5 * z * (1 + Math.tanh(k * (z + 0.044715 * z * z * z)));
  }
}
