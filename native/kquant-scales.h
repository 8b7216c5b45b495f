/* What the K-quant and Q5 kernels share (kernels-kquant.c, kernels-q5.c): the 6-bit sub-block
   scales and mins of a Q4_K / Q5_K super-block, and an AVX2 lane sum. */
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

/* Activation rows a row kernel's prompt tiles take per pass over the weights: their Q8_K rows
   (nb super-blocks each) about 256 KiB, so they stay in L2 while every weight row passes over
   them (all 512 rows of a prompt, 1.5 MB at 2560 columns, streamed from L3 per weight row: AVX2
   Q4_K_M prompt 23.6 against 34 tokens/s over the x16 copies); a multiple of 8, at least 8. */
static inline int kquant_act_chunk(int nb) {
  const int rows = (256 << 10) / (nb * (int)sizeof(q8k_block));
  return rows < 8 ? 8 : rows / 8 * 8;
}

#if defined(__x86_64__)
#include <immintrin.h>
/* The sum of a vector's eight int32 lanes (the AVX2 K-quant and Q5 kernels' per-row totals). */
static inline __attribute__((target("avx2"))) int32_t hsum_epi32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
  return _mm_cvtsi128_si32(s);
}
#endif
#endif
