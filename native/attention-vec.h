/* The vector steps attention.c's kernels and attention-full.c's share, at the kernel level
   attention_init chose (AVX-512, AVX2 or generic C). */
#ifndef GEMMA3_ATTENTION_VEC_H
#define GEMMA3_ATTENTION_VEC_H

/** y[d] += a · x[d] for d < n (one FMA per element). */
void attn_axpy(float *y, float a, const float *x, int n);
/** scores[j] = exp(scores[j] - max) for j in [lo, hi]; returns their sum in double. */
double attn_exp_sum(float *scores, int lo, int hi, float max);
/** The largest of s[0..n) (exact in any order). */
float attn_row_max(const float *s, int n);
/** s[j] *= f for j < n. */
void attn_row_scale(float *s, int n, float f);
/** Called by attention_init with the same level. */
void attention_full_init(int level);
#endif
