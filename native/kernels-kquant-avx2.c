// Q4_K and Q6_K weights as stored (the file's row layout) times Q8_K activations with AVX2: the
// kernels for matrices served from a file mapping until their x16 copies replace them, that is
// for the first prompt after a load. Every weight super-block is unpacked once into eight
// registers of 32 unsigned quants in value order (Q4_K 0..15, Q6_K 0..63) and the int16 scale of
// each maddubs lane; then per activation row eight maddubs (u8 quants × s8 activations → int16
// pairs, at most 2·63·128 = 16128: never saturates) and eight madd (× the lane's scale, int32)
// give the super-block's exact integer sum, the same integers as kernels-kquant.c's generic path
// and src/backend/q8k-activations.ts. The float step runs four (super-block or activation row)
// sums side by side with the twins' expression and order, s += (double)(d·dx)·isum −
// (double)(dmin·dx)·msum (separate multiplies, -ffp-contract=off), so results are bit for bit
// the twins'. A prompt unpacks each super-block once for up to eight activation rows (before
// this, every activation row unpacked every super-block again: 38 GFLOP per CPU-second for Q6_K
// against the x16 kernel's 115). Decode reduces four super-blocks of one row together.
#include "kernels.h"

#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>

#include "kquant-scales.h"

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")

/* Activation rows sharing one unpacked weight super-block (prompts). */
#define KQ2_MAXN 8

/* One weight super-block ready for the dot products. */
typedef struct {
  __m256i q[8];  /* values 32k..32k+31 */
  __m256i sc[8]; /* the scale of each int16 lane of maddubs(q[k], activations) */
  __m256i per16; /* one int16 per 16-value group against the activation's bsums: Q4_K its
                    sub-block's min, Q6_K −32·its scale (Σ (q − 32)·x = Σ q·x − 32·Σ x) */
  float d, dmin;
} kq2_superblock;

/* pshufb masks over the sixteen bytes sc0..7, mn0..7 (both 128-bit lanes): chunk k's scale in
   every int16 lane (zero-extended), and each 16-value group's min (group g: mn[g / 2]). */
#define W(b) (b), -128
#define W8(b) W(b), W(b), W(b), W(b), W(b), W(b), W(b), W(b)
static const int8_t Q4K_SCALE_SHUFFLE[8][32] __attribute__((aligned(32))) = {
    {W8(0), W8(0)}, {W8(1), W8(1)}, {W8(2), W8(2)}, {W8(3), W8(3)},
    {W8(4), W8(4)}, {W8(5), W8(5)}, {W8(6), W8(6)}, {W8(7), W8(7)}};
static const int8_t Q4K_MIN_SHUFFLE[32] __attribute__((aligned(32))) = {
    W(8), W(8), W(9), W(9), W(10), W(10), W(11), W(11), W(12), W(12), W(13), W(13), W(14), W(14), W(15), W(15)};
#undef W8
#undef W
/* Q6_K: chunk k holds groups 2k (low 128-bit lane) and 2k+1 (high). With the int32 pair
   (scale 2k, scale 2k+1) in every dword, the low lane takes word 0 and the high lane word 1. */
static const int8_t Q6K_PAIR_SHUFFLE[32] __attribute__((aligned(32))) = {
    0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3};

static inline __m256i mask256(const int8_t *m) { return _mm256_load_si256((const __m256i *)m); }

static inline __attribute__((always_inline)) void unpack_q4k(const uint8_t *blk, kq2_superblock *u) {
  /* get_scale_min_k4 for the eight sub-blocks at once, four bytes per word (llama.cpp's masks). */
  uint32_t s[3];
  memcpy(s, blk + 4, 12);
  const uint32_t sc_lo = s[0] & 0x3f3f3f3f, mn_lo = s[1] & 0x3f3f3f3f;
  const uint32_t sc_hi = (s[2] & 0x0f0f0f0f) | (((s[0] >> 6) & 0x03030303) << 4);
  const uint32_t mn_hi = ((s[2] >> 4) & 0x0f0f0f0f) | (((s[1] >> 6) & 0x03030303) << 4);
  const __m256i scmn = _mm256_broadcastsi128_si256(_mm_set_epi32((int)mn_hi, (int)mn_lo, (int)sc_hi, (int)sc_lo));
  #pragma GCC unroll 8
  for (int k = 0; k < 8; k++) u->sc[k] = _mm256_shuffle_epi8(scmn, mask256(Q4K_SCALE_SHUFFLE[k]));
  u->per16 = _mm256_shuffle_epi8(scmn, mask256(Q4K_MIN_SHUFFLE));
  /* Bytes 32j..32j+31: values 64j..+31 in the low nibbles, 64j+32..+63 in the high ones. */
  const __m256i m4 = _mm256_set1_epi8(0x0f);
  #pragma GCC unroll 4
  for (int j = 0; j < 4; j++) {
    const __m256i v = _mm256_loadu_si256((const __m256i *)(blk + 16 + 32 * j));
    u->q[2 * j] = _mm256_and_si256(v, m4);
    u->q[2 * j + 1] = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
  }
  u->d = f16_table[blk[0] | (blk[1] << 8)];
  u->dmin = f16_table[blk[2] | (blk[3] << 8)];
}

static inline __attribute__((always_inline)) void unpack_q6k(const uint8_t *blk, kq2_superblock *u) {
  const __m256i scales = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(blk + 192)));
  #pragma GCC unroll 8
  for (int k = 0; k < 8; k++) {
    u->sc[k] = _mm256_shuffle_epi8(_mm256_permutevar8x32_epi32(scales, _mm256_set1_epi32(k)), mask256(Q6K_PAIR_SHUFFLE));
  }
  u->per16 = _mm256_mullo_epi16(scales, _mm256_set1_epi16(-32));
  /* Half h: ql bytes 64h..+31 and +32..+63 hold values 128h+l and 128h+32+l in their low nibbles,
     128h+64+l and 128h+96+l in their high ones; qh byte 32h+l holds their two high bits, in bit
     pairs 0-1, 2-3, 4-5, 6-7. */
  const __m256i m4 = _mm256_set1_epi8(0x0f), m3 = _mm256_set1_epi8(0x03);
  #pragma GCC unroll 2
  for (int h = 0; h < 2; h++) {
    const __m256i ql0 = _mm256_loadu_si256((const __m256i *)(blk + 64 * h));
    const __m256i ql1 = _mm256_loadu_si256((const __m256i *)(blk + 64 * h + 32));
    const __m256i qh = _mm256_loadu_si256((const __m256i *)(blk + 128 + 32 * h));
    u->q[4 * h] = _mm256_or_si256(_mm256_and_si256(ql0, m4), _mm256_slli_epi16(_mm256_and_si256(qh, m3), 4));
    u->q[4 * h + 1] = _mm256_or_si256(_mm256_and_si256(ql1, m4), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), m3), 4));
    u->q[4 * h + 2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4),
                                      _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), m3), 4));
    u->q[4 * h + 3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                                      _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), m3), 4));
  }
  u->d = f16_table[blk[208] | (blk[209] << 8)];
  u->dmin = 0.0f;
}

/* The totals of four int32 vectors, side by side. */
static inline __attribute__((always_inline)) __m128i sum4(__m256i a, __m256i b, __m256i c, __m256i d) {
  const __m256i ab = _mm256_add_epi32(_mm256_unpacklo_epi32(a, b), _mm256_unpackhi_epi32(a, b));
  const __m256i cd = _mm256_add_epi32(_mm256_unpacklo_epi32(c, d), _mm256_unpackhi_epi32(c, d));
  const __m256i abcd = _mm256_add_epi32(_mm256_unpacklo_epi64(ab, cd), _mm256_unpackhi_epi64(ab, cd));
  return _mm_add_epi32(_mm256_castsi256_si128(abcd), _mm256_extracti128_si256(abcd, 1));
}

/* Four sums' float terms: (double)(d·dx)·isum [− (double)(dmin·dx)·msum], the twins' expression. */
static inline __attribute__((always_inline)) __m256d float_terms(__m128 d, __m128 dmin, __m128 dx, __m128i isum, __m128i msum, int q4) {
  __m256d t = _mm256_mul_pd(_mm256_cvtps_pd(_mm_mul_ps(d, dx)), _mm256_cvtepi32_pd(isum));
  if (q4) t = _mm256_sub_pd(t, _mm256_mul_pd(_mm256_cvtps_pd(_mm_mul_ps(dmin, dx)), _mm256_cvtepi32_pd(msum)));
  return t;
}

/* One weight row × N activation rows (x, nb super-blocks each), N ≤ 8: chunk k's quants and
   scales are read once for all N, whose int32 sums stay in registers; activation row n's float64
   sum is lane n % 4 of s[n / 4]. */
static inline __attribute__((always_inline)) void kq2_tile(const uint8_t *w, const q8k_block *x, int nb, int N, int q4,
                                                            const matmul_args *a, int row, int n0) {
  const size_t block = q4 ? Q4_K_BLOCK_BYTES : Q6_K_BLOCK_BYTES;
  const int G = (N + 3) / 4;
  __m256d s[2] = {_mm256_setzero_pd(), _mm256_setzero_pd()};
  for (int b = 0; b < nb; b++) {
    kq2_superblock u;
    if (q4) unpack_q4k(w + (size_t)b * block, &u);
    else unpack_q6k(w + (size_t)b * block, &u);
    __m256i acc[KQ2_MAXN], mins[KQ2_MAXN];
    #pragma GCC unroll 8
    for (int n = 0; n < N; n++) {
      const __m256i per16 = _mm256_madd_epi16(u.per16, _mm256_loadu_si256((const __m256i *)x[(size_t)n * nb + b].bsums));
      mins[n] = per16;
      acc[n] = q4 ? _mm256_setzero_si256() : per16;
    }
    #pragma GCC unroll 8
    for (int k = 0; k < 8; k++) {
      #pragma GCC unroll 8
      for (int n = 0; n < N; n++) {
        const __m256i p = _mm256_maddubs_epi16(u.q[k], _mm256_loadu_si256((const __m256i *)(x[(size_t)n * nb + b].qs + 32 * k)));
        acc[n] = _mm256_add_epi32(acc[n], _mm256_madd_epi16(p, u.sc[k]));
      }
    }
    #pragma GCC unroll 2
    for (int g = 0; g < G; g++) {
      /* Lanes past the last activation row are zeros (and discarded). */
#define LANE(arr, i) (4 * g + (i) < N ? (arr)[4 * g + (i)] : _mm256_setzero_si256())
#define DX(i) (4 * g + (i) < N ? x[(size_t)(4 * g + (i)) * nb + b].d : 0.0f)
      const __m128 dx = _mm_set_ps(DX(3), DX(2), DX(1), DX(0));
      const __m128i isum = sum4(LANE(acc, 0), LANE(acc, 1), LANE(acc, 2), LANE(acc, 3));
      const __m128i msum = q4 ? sum4(LANE(mins, 0), LANE(mins, 1), LANE(mins, 2), LANE(mins, 3)) : _mm_setzero_si128();
      s[g] = _mm256_add_pd(s[g], float_terms(_mm_set1_ps(u.d), _mm_set1_ps(u.dmin), dx, isum, msum, q4));
#undef LANE
#undef DX
    }
  }
  float out[8];
  for (int g = 0; g < G; g++) _mm_storeu_ps(out + 4 * g, _mm256_cvtpd_ps(s[g]));
  for (int n = 0; n < N; n++) a->out[(size_t)(n0 + n) * a->out_stride + (row - a->row_start)] = out[n];
}

/* Super-blocks b0..b0+LIVE-1 (LIVE ≤ 4) of one weight row against one activation row: their
   integer sums reduced side by side, their float terms computed four wide, then added to *s one
   after the other in super-block order (the twins' order). */
static inline __attribute__((always_inline)) void kq2_group(const uint8_t *w, const q8k_block *x, int b0, int LIVE, int q4, double *s) {
  const size_t block = q4 ? Q4_K_BLOCK_BYTES : Q6_K_BLOCK_BYTES;
  __m256i acc[4], mins[4];
  float d[4] = {0}, dmin[4] = {0}, dx[4] = {0};
  #pragma GCC unroll 4
  for (int i = 0; i < 4; i++) acc[i] = mins[i] = _mm256_setzero_si256();
  #pragma GCC unroll 4
  for (int i = 0; i < LIVE; i++) {
    kq2_superblock u;
    if (q4) unpack_q4k(w + (size_t)(b0 + i) * block, &u);
    else unpack_q6k(w + (size_t)(b0 + i) * block, &u);
    const q8k_block *xb = &x[b0 + i];
    mins[i] = _mm256_madd_epi16(u.per16, _mm256_loadu_si256((const __m256i *)xb->bsums));
    acc[i] = q4 ? _mm256_setzero_si256() : mins[i];
    #pragma GCC unroll 8
    for (int k = 0; k < 8; k++) {
      const __m256i p = _mm256_maddubs_epi16(u.q[k], _mm256_loadu_si256((const __m256i *)(xb->qs + 32 * k)));
      acc[i] = _mm256_add_epi32(acc[i], _mm256_madd_epi16(p, u.sc[k]));
    }
    d[i] = u.d;
    dmin[i] = u.dmin;
    dx[i] = xb->d;
  }
  const __m128i msum = q4 ? sum4(mins[0], mins[1], mins[2], mins[3]) : _mm_setzero_si128();
  const __m256d t = float_terms(_mm_loadu_ps(d), _mm_loadu_ps(dmin), _mm_loadu_ps(dx), sum4(acc[0], acc[1], acc[2], acc[3]), msum, q4);
  double terms[4];
  _mm256_storeu_pd(terms, t);
  #pragma GCC unroll 4
  for (int i = 0; i < LIVE; i++) *s += terms[i];
}

static inline __attribute__((always_inline)) float kq2_row(const uint8_t *w, const q8k_block *x, int nb, int q4) {
  double s = 0.0;
  int b0 = 0;
  for (; b0 + 4 <= nb; b0 += 4) kq2_group(w, x, b0, 4, q4, &s);
  switch (nb - b0) {
    case 1: kq2_group(w, x, b0, 1, q4, &s); break;
    case 2: kq2_group(w, x, b0, 2, q4, &s); break;
    case 3: kq2_group(w, x, b0, 3, q4, &s); break;
    default: break;
  }
  return (float)s;
}

/* Decode one row at a time; prompts in tiles with a constant N per call site, so each tile is
   unrolled with its accumulators in registers, and a row's super-blocks stay in L1 while every
   tile of a chunk of activation rows (in L2) passes over them. */
static inline __attribute__((always_inline)) void kq2_rows(const matmul_args *a, int r0, int r1, int q4) {
  const size_t rb = row_bytes(a->dtype, a->cols);
  const int nb = a->cols / QK_K;
  const q8k_block *x = (const q8k_block *)a->x;
  if (a->batch == 1) {
    for (int r = r0; r < r1; r++) a->out[r - a->row_start] = kq2_row(a->w + (size_t)r * rb, x, nb, q4);
    return;
  }
  const int chunk = kquant_act_chunk(nb);
  for (int c0 = 0; c0 < a->batch; c0 += chunk) {
    const int c1 = a->batch - c0 < chunk ? a->batch : c0 + chunk;
    for (int r = r0; r < r1; r++) {
      const uint8_t *row = a->w + (size_t)r * rb;
      for (int n0 = c0; n0 < c1; n0 += KQ2_MAXN) {
        const q8k_block *xn = x + (size_t)n0 * nb;
        switch (c1 - n0 < KQ2_MAXN ? c1 - n0 : KQ2_MAXN) {
          case 1: kq2_tile(row, xn, nb, 1, q4, a, r, n0); break;
          case 2: kq2_tile(row, xn, nb, 2, q4, a, r, n0); break;
          case 3: kq2_tile(row, xn, nb, 3, q4, a, r, n0); break;
          case 4: kq2_tile(row, xn, nb, 4, q4, a, r, n0); break;
          case 5: kq2_tile(row, xn, nb, 5, q4, a, r, n0); break;
          case 6: kq2_tile(row, xn, nb, 6, q4, a, r, n0); break;
          case 7: kq2_tile(row, xn, nb, 7, q4, a, r, n0); break;
          default: kq2_tile(row, xn, nb, 8, q4, a, r, n0); break;
        }
      }
    }
  }
}

static void rows_q4k(const matmul_args *a, int r0, int r1) { kq2_rows(a, r0, r1, 1); }
static void rows_q6k(const matmul_args *a, int r0, int r1) { kq2_rows(a, r0, r1, 0); }

void matmul_rows_kquant_avx2(const matmul_args *a, int r0, int r1) {
  if (a->dtype == DT_Q4_K) rows_q4k(a, r0, r1);
  else rows_q6k(a, r0, r1);
}

#pragma GCC pop_options
#else
void matmul_rows_kquant_avx2(const matmul_args *a, int r0, int r1) { matmul_rows_kquant_generic(a, r0, r1); }
#endif
