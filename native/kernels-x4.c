// AVX-512 VNNI kernels for the interleaved x4 layouts (repack.c): per block, one load of four
// rows' quants, one 8-byte load of their four scales, two (Q4_0) or two (Q8_0) dpbusd.
// Unsigned-operand corrections are folded into the integer lanes, so results equal the
// row-layout kernels' up to float summation order.
#include "kernels.h"

#if defined(__x86_64__)
#include <immintrin.h>

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512vnni,avx512dq,avx2,fma,f16c")

#define MAXN 4

static inline float _mm256_reduce_add_ps_compat(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

/* Q4_0x4: lanes 4i..4i+3 of the 16 int32 lanes belong to row i. */
static inline __attribute__((always_inline)) void group_q4(const uint8_t *g, int nb, const q8_block *x, int N, float out[4][MAXN]) {
  __m512 acc[MAXN];
  for (int j = 0; j < N; j++) acc[j] = _mm512_setzero_ps();
  const __m512i mask = _mm512_set1_epi8(0x0f);
  /* Scales of row i repeated in its four lanes. */
  const __m512i spread = _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0);
  for (int b = 0; b < nb; b++, g += 72) {
    const __m512 dw = _mm512_permutexvar_ps(spread, _mm512_castps128_ps512(_mm_cvtph_ps(_mm_loadl_epi64((const __m128i *)g))));
    const __m512i q = _mm512_loadu_si512((const void *)(g + 8));
    const __m512i lo = _mm512_and_si512(q, mask);
    const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(q, 4), mask);
    for (int j = 0; j < N; j++) {
      const q8_block *xb = &x[(size_t)j * nb + b];
      __m512i s = _mm512_dpbusd_epi32(_mm512_set1_epi32(-2 * xb->sum), lo, _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)xb->qs)));
      s = _mm512_dpbusd_epi32(s, hi, _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(xb->qs + 16))));
      acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(dw, _mm512_set1_ps(xb->d)), acc[j]);
    }
  }
  for (int j = 0; j < N; j++) {
    float lanes[16];
    _mm512_storeu_ps(lanes, acc[j]);
    for (int i = 0; i < 4; i++) out[i][j] = (lanes[4 * i] + lanes[4 * i + 1]) + (lanes[4 * i + 2] + lanes[4 * i + 3]);
  }
}

/* Q8_0x4: two zmm per block (rows 0-1 and rows 2-3), eight lanes per row. */
static inline __attribute__((always_inline)) void group_q8(const uint8_t *g, int nb, const q8_block *x, int N, float out[4][MAXN]) {
  __m512 acc01[MAXN], acc23[MAXN];
  for (int j = 0; j < N; j++) acc01[j] = acc23[j] = _mm512_setzero_ps();
  const __m512i flip = _mm512_set1_epi8((char)0x80);
  const __m512i spread01 = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
  const __m512i spread23 = _mm512_set_epi32(3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 2, 2, 2, 2, 2);
  for (int b = 0; b < nb; b++, g += 136) {
    const __m512 d4 = _mm512_castps128_ps512(_mm_cvtph_ps(_mm_loadl_epi64((const __m128i *)g)));
    const __m512 dw01 = _mm512_permutexvar_ps(spread01, d4), dw23 = _mm512_permutexvar_ps(spread23, d4);
    const __m512i q01 = _mm512_xor_si512(_mm512_loadu_si512((const void *)(g + 8)), flip);
    const __m512i q23 = _mm512_xor_si512(_mm512_loadu_si512((const void *)(g + 72)), flip);
    for (int j = 0; j < N; j++) {
      const q8_block *xb = &x[(size_t)j * nb + b];
      const __m512i xv = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)xb->qs));
      const __m512i corr = _mm512_set1_epi32(-16 * xb->sum); /* 128·Σx spread over 8 lanes */
      const __m512 dx = _mm512_set1_ps(xb->d);
      acc01[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_dpbusd_epi32(corr, q01, xv)), _mm512_mul_ps(dw01, dx), acc01[j]);
      acc23[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_dpbusd_epi32(corr, q23, xv)), _mm512_mul_ps(dw23, dx), acc23[j]);
    }
  }
  for (int j = 0; j < N; j++) {
    out[0][j] = _mm256_reduce_add_ps_compat(_mm512_castps512_ps256(acc01[j]));
    out[1][j] = _mm256_reduce_add_ps_compat(_mm512_extractf32x8_ps(acc01[j], 1));
    out[2][j] = _mm256_reduce_add_ps_compat(_mm512_castps512_ps256(acc23[j]));
    out[3][j] = _mm256_reduce_add_ps_compat(_mm512_extractf32x8_ps(acc23[j], 1));
  }
}

void matmul_rows_x4(const matmul_args *a, int r0, int r1) {
  const int nb = a->cols / 32;
  const size_t group_bytes = (size_t)nb * (a->dtype == DT_Q4_0_X4 ? 72 : 136);
  const q8_block *x = (const q8_block *)a->x;
  float t[4][MAXN];
  for (int g = r0 / 4; g * 4 < r1; g++) {
    const uint8_t *gp = a->w + (size_t)g * group_bytes;
    for (int n = 0; n < a->batch; n += MAXN) {
      const int N = a->batch - n < MAXN ? a->batch - n : MAXN;
      const q8_block *xn = x + (size_t)n * nb;
      if (a->dtype == DT_Q4_0_X4) {
        if (N == 1) group_q4(gp, nb, xn, 1, t);
        else if (N == 4) group_q4(gp, nb, xn, 4, t);
        else group_q4(gp, nb, xn, N, t);
      } else {
        if (N == 1) group_q8(gp, nb, xn, 1, t);
        else if (N == 4) group_q8(gp, nb, xn, 4, t);
        else group_q8(gp, nb, xn, N, t);
      }
      for (int i = 0; i < 4; i++) {
        const int r = g * 4 + i;
        if (r < r0 || r >= r1) continue;
        for (int j = 0; j < N; j++) a->out[(size_t)(n + j) * a->out_stride + (r - a->row_start)] = t[i][j];
      }
    }
  }
}

#pragma GCC pop_options
#else
void matmul_rows_x4(const matmul_args *a, int r0, int r1) { (void)a; (void)r0; (void)r1; }
#endif
