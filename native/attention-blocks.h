/* The block kernels of attention_run (attention-blocks.c): a pass of nk keys or values for
   `rows` query rows at a time, in the kernel family attn_block_level picks. */
#ifndef GEMMA3_ATTENTION_BLOCKS_H
#define GEMMA3_ATTENTION_BLOCKS_H
#include <stddef.h>

/** The kernel family for a head size: 2 AVX-512, 1 AVX2, 0 generic C (fixed per model and CPU). */
int attn_block_level(int hd);
/** out[r][kk] = scale · q[r] · k[kk] for r < rows, kk < nk; key rows stored as `type`; pf: bytes
    ahead to the rows of the next pass (prefetched as the kernels read). */
void attn_scores_block(int level, const float *const *q, int rows, const void *const *k, int nk, int hd, float scale, float *const *out, int type,
                       size_t pf);
/** acc[r] += Σ_j p[r][j] · v[j], keys in order. */
void attn_values_block(int level, float *const *acc, const float *const *p, int rows, const void *const *v, int nk, int hd, int type, size_t pf);
#endif
