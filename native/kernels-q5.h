// Q5_0, Q5_1 and Q5_K weights as stored (kernels-q5.c): the activations they multiply, as
// llama.cpp quantizes them: Q8_0 blocks (q8_block) for Q5_0, Q8_1 blocks for Q5_1, Q8_K
// super-blocks (q8k_block) for Q5_K.
#ifndef GEMMA3_KERNELS_Q5_H
#define GEMMA3_KERNELS_Q5_H

#include "kernels.h"

/** quantize_row_q8_1_ref's block: q8_block's quants, f16-rounded d and Σqs, plus s = f16(Σqs · d), d before its rounding. */
typedef struct {
  q8_block q;
  float s;
} q8_1_block;

/** Quantizes one row of `cols` floats (cols % 32 == 0) into cols / 32 Q8_1 blocks. */
void quantize_row_q8_1(const float *x, q8_1_block *y, int cols);

/** Q5_0 (a->x: q8_block*), Q5_1 (q8_1_block*) and Q5_K (q8k_block*) rows, generic C or AVX2. */
void matmul_rows_q5_generic(const matmul_args *a, int r0, int r1);
void matmul_rows_q5_avx2(const matmul_args *a, int r0, int r1);

#endif
