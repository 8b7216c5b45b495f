// The loop shared by the 256-bit x16 kernels for Q4_0 / Q8_0 (kernels-x16-avx2.c, and the VNNI
// ones of kernels-x16-vnni256.h): activation rows in chunks that stay in L2, groups of sixteen
// weight rows (a row range may start and end inside one), tiles of up to TILE_N activation rows
// by TILE_Q4 / TILE_Q8 (acc[2j + h]: rows 8h..8h+7 with activation row j), lanes stored out.
#ifndef GEMMA3_X16_DRIVER_256_H
#define GEMMA3_X16_DRIVER_256_H

/* acc[2j + h] += (dw_h · d_x) · sums[2j + h] for block b of a group at g (its sixteen f16 scales
   first) and activation rows j < N: every kernel's float step, in the same order. A macro, not
   a function: it runs inside each kernel's own target. */
#define X16_SCALE_BLOCK_256(g, x, nb, b, N, sums, acc)                                                                   \
  do {                                                                                                                 \
    const __m256 dw0_ = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(g)));                                        \
    const __m256 dw1_ = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((g) + 16)));                                 \
    for (int j_ = 0; j_ < (N); j_++) {                                                                                 \
      const __m256 dx_ = _mm256_set1_ps((x)[(size_t)j_ * (nb) + (b)].d);                                               \
      (acc)[2 * j_] = _mm256_fmadd_ps(_mm256_cvtepi32_ps((sums)[2 * j_]), _mm256_mul_ps(dw0_, dx_), (acc)[2 * j_]);    \
      (acc)[2 * j_ + 1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps((sums)[2 * j_ + 1]), _mm256_mul_ps(dw1_, dx_), (acc)[2 * j_ + 1]); \
    }                                                                                                                  \
  } while (0)

#define X16_DRIVER_256(NAME, TILE_Q4, TILE_Q8, TILE_N)                                                                  \
  void NAME(const matmul_args *a, int r0, int r1) {                                                                    \
    const int nb = a->cols / 32;                                                                                       \
    const int q4 = a->dtype == DT_Q4_0_X16;                                                                            \
    const size_t group_bytes = (size_t)nb * (q4 ? 288 : 544);                                                          \
    const q8_block *x = (const q8_block *)a->x;                                                                        \
    __m256 acc[2 * (TILE_N)];                                                                                          \
    for (int c0 = 0; c0 < a->batch; c0 += X16_ACT_CHUNK) {                                                             \
      const int c1 = a->batch - c0 < X16_ACT_CHUNK ? a->batch : c0 + X16_ACT_CHUNK;                                    \
      for (int g = r0 / 16; g * 16 < r1; g++) {                                                                        \
        const uint8_t *gp = a->w + (size_t)g * group_bytes;                                                            \
        int lo, hi;                                                                                                    \
        x16_group_lanes(g, r0, r1, &lo, &hi);                                                                          \
        for (int n = c0; n < c1; n += (TILE_N)) {                                                                      \
          const int N = c1 - n < (TILE_N) ? c1 - n : (TILE_N);                                                         \
          const q8_block *xn = x + (size_t)n * nb;                                                                     \
          const int first = n == c0; /* the first pass over a group reads it from memory: prefetched ahead */         \
          if (q4 && N == 2) TILE_Q4(gp, nb, xn, 2, acc, first);                                                        \
          else if (q4) TILE_Q4(gp, nb, xn, 1, acc, first);                                                             \
          else if (N == 2) TILE_Q8(gp, nb, xn, 2, acc, first);                                                         \
          else TILE_Q8(gp, nb, xn, 1, acc, first);                                                                     \
          float *o = a->out + (g * 16 - a->row_start);                                                                 \
          for (int j = 0; j < N; j++) {                                                                                \
            float lanes[16];                                                                                           \
            _mm256_storeu_ps(lanes, acc[2 * j]);                                                                       \
            _mm256_storeu_ps(lanes + 8, acc[2 * j + 1]);                                                               \
            for (int i = lo; i < hi; i++) o[(size_t)(n + j) * a->out_stride + i] = lanes[i];                           \
          }                                                                                                            \
        }                                                                                                              \
      }                                                                                                                \
    }                                                                                                                  \
  }
#endif
