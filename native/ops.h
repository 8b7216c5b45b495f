// Element-wise and per-row ops of a decoder layer: the twins of src/backend/js-ops.ts.
#ifndef GEMMA3_OPS_H
#define GEMMA3_OPS_H
#include <stddef.h>

void ops_init(int avx2);
/** gate[i] = gelu_tanh(gate[i]) · up[i] (up NULL: plain GELU). */
void gelu_tanh_mul_run(float *gate, const float *up, size_t n);
/**
 * For each of `rows` rows of length n: y = x · rsqrt(mean(x²) + eps) · scale, rounded to float
 * like the TypeScript twin; accumulate = 0 stores y into out, 1 adds it (out += y, the residual).
 */
void rms_norm_run(float *out, const float *x, const float *scale, double eps, int rows, int n, int accumulate);
#endif
