// AVX2 kernels for the interleaved x16 layouts (repack.c), for CPUs without AVX-512 VNNI. A
// 64-byte chunk of a group block holds four quants of each of sixteen rows; its two 32-byte
// halves are rows 0-7 and 8-15, one row per int32 lane of a ymm, both computed in one pass.
//
// Every result bit equals the AVX-512 VNNI kernel's (kernels-x16.c): per row and block the same
// exact integer dot product (-offset · Σx + Σ w·x), then the same convert and multiply-add by
// the two scales, blocks in the same order. Without VNNI the integer dot products are built
// from maddubs (u8 × s8 pairs into int16) and madd (pairs into int32):
// - Q4_0: quants 0..15 against activations in [-127, 127]; a pair is at most 3810 in magnitude,
//   so the eight pairs of a block's row can be summed in int16 (at most 30480) before one madd.
// - Q8_0: the stored signed quants, as maddubs(|w|, sign(x, w)): a pair is at most 2·128·127,
//   which fits int16; each maddubs gets its own madd. Σ w·x with the signed quants is the
//   unsigned sum less 128 · Σx, so the integer is the VNNI kernel's.
#include "kernels.h"
#include "repack.h"
#include "x16-driver-256.h"

#if defined(__x86_64__)
#include <immintrin.h>
#include <string.h>

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")

/* Activation rows per tile: with both halves of a group in one pass, the widest that keeps a
   tile's registers (2 × N accumulators, 2 × N integer sums) in the sixteen ymm. */
#define TILE_N 2

static inline __m256i bcast4(const int8_t *p) { return _mm256_set1_epi32(x16_quad(p)); }

/* acc[2j + h] (rows 8h..8h+7 of the group at g) += Σ_b block dot products with activation row j:
   each activation broadcast serves both halves, and the group is read once, in order. */
static inline __attribute__((always_inline)) void tile_q4(const uint8_t *g, int nb, const q8_block *x, int N, __m256 acc[2 * TILE_N],
                                                          int prefetch) {
  const __m256i nibble = _mm256_set1_epi8(0x0f), ones = _mm256_set1_epi16(1);
  for (int k = 0; k < 2 * N; k++) acc[k] = _mm256_setzero_ps();
  for (int b = 0; b < nb; b++, g += 288) {
    if (prefetch)
      for (int l = 0; l < 288; l += 64) _mm_prefetch((const char *)g + X16_PREFETCH_AHEAD + l, _MM_HINT_T0);
    __m256i pairs[2 * TILE_N];
    for (int k = 0; k < 2 * N; k++) pairs[k] = _mm256_setzero_si256();
    for (int c = 0; c < 4; c++) {
      const __m256i v0 = _mm256_loadu_si256((const __m256i *)(g + 32 + 64 * c));
      const __m256i v1 = _mm256_loadu_si256((const __m256i *)(g + 64 + 64 * c));
      const __m256i lo0 = _mm256_and_si256(v0, nibble), hi0 = _mm256_and_si256(_mm256_srli_epi16(v0, 4), nibble);
      const __m256i lo1 = _mm256_and_si256(v1, nibble), hi1 = _mm256_and_si256(_mm256_srli_epi16(v1, 4), nibble);
      for (int j = 0; j < N; j++) {
        const q8_block *xb = &x[(size_t)j * nb + b];
        const __m256i xl = bcast4(xb->qs + 4 * c), xh = bcast4(xb->qs + 16 + 4 * c);
        pairs[2 * j] = _mm256_add_epi16(pairs[2 * j], _mm256_add_epi16(_mm256_maddubs_epi16(lo0, xl), _mm256_maddubs_epi16(hi0, xh)));
        pairs[2 * j + 1] = _mm256_add_epi16(pairs[2 * j + 1], _mm256_add_epi16(_mm256_maddubs_epi16(lo1, xl), _mm256_maddubs_epi16(hi1, xh)));
      }
    }
    __m256i sums[2 * TILE_N];
    for (int j = 0; j < N; j++) {
      const __m256i offset = _mm256_set1_epi32(-8 * x[(size_t)j * nb + b].sum);
      sums[2 * j] = _mm256_add_epi32(offset, _mm256_madd_epi16(pairs[2 * j], ones));
      sums[2 * j + 1] = _mm256_add_epi32(offset, _mm256_madd_epi16(pairs[2 * j + 1], ones));
    }
    X16_SCALE_BLOCK_256(g, x, nb, b, N, sums, acc);
  }
}

static inline __attribute__((always_inline)) void tile_q8(const uint8_t *g, int nb, const q8_block *x, int N, __m256 acc[2 * TILE_N],
                                                          int prefetch) {
  const __m256i ones = _mm256_set1_epi16(1);
  for (int k = 0; k < 2 * N; k++) acc[k] = _mm256_setzero_ps();
  for (int b = 0; b < nb; b++, g += 544) {
    if (prefetch)
      for (int l = 0; l < 544; l += 64) _mm_prefetch((const char *)g + X16_PREFETCH_AHEAD + l, _MM_HINT_T0);
    __m256i sums[2 * TILE_N];
    for (int k = 0; k < 2 * N; k++) sums[k] = _mm256_setzero_si256();
    for (int c = 0; c < 8; c++) {
      const __m256i w0 = _mm256_loadu_si256((const __m256i *)(g + 32 + 64 * c));
      const __m256i w1 = _mm256_loadu_si256((const __m256i *)(g + 64 + 64 * c));
      const __m256i m0 = _mm256_abs_epi8(w0), m1 = _mm256_abs_epi8(w1);
      for (int j = 0; j < N; j++) {
        const __m256i xq = bcast4(x[(size_t)j * nb + b].qs + 4 * c);
        sums[2 * j] = _mm256_add_epi32(sums[2 * j], _mm256_madd_epi16(_mm256_maddubs_epi16(m0, _mm256_sign_epi8(xq, w0)), ones));
        sums[2 * j + 1] = _mm256_add_epi32(sums[2 * j + 1], _mm256_madd_epi16(_mm256_maddubs_epi16(m1, _mm256_sign_epi8(xq, w1)), ones));
      }
    }
    X16_SCALE_BLOCK_256(g, x, nb, b, N, sums, acc);
  }
}

X16_DRIVER_256(matmul_rows_x16_avx2, tile_q4, tile_q8, TILE_N)

#pragma GCC pop_options
#else
void matmul_rows_x16_avx2(const matmul_args *a, int r0, int r1) { (void)a; (void)r0; (void)r1; }
#endif
