/* The 6-bit sub-block scales and mins of a Q4_K / Q5_K super-block, shared by the K-quant and Q5
   kernels (kernels-kquant.c, kernels-q5.c). */
#ifndef GEMMA3_KQUANT_SCALES_H
#define GEMMA3_KQUANT_SCALES_H
#include <stdint.h>

#include "kernels.h"

/* get_scale_min_k4 for all eight sub-blocks: 6-bit scales and mins from the 12 packed bytes. */
static inline void q4k_scales(const uint8_t *q, uint8_t sc[8], uint8_t mn[8]) {
  for (int j = 0; j < 4; j++) {
    sc[j] = q[j] & 63;
    mn[j] = q[j + 4] & 63;
  }
  for (int j = 4; j < 8; j++) {
    sc[j] = (q[j + 4] & 0xf) | ((q[j - 4] >> 6) << 4);
    mn[j] = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

/* Σ_j m_j · (bsum_2j + bsum_2j+1): the mins' share of a Q4_K / Q5_K super-block. */
static inline int32_t q4k_min_sum(const uint8_t mn[8], const q8k_block *x) {
  int32_t msum = 0;
  for (int j = 0; j < 8; j++) msum += mn[j] * (x->bsums[2 * j] + x->bsums[2 * j + 1]);
  return msum;
}
#endif
