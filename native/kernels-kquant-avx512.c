// Q4_K and Q6_K weights as stored times Q8_K activations with AVX-512 VNNI (BW, VL). Every weight
// super-block is unpacked once into four registers of 64 unsigned quants in value order, plus the
// int16 sub-block scale of every lane; then per activation row four maddubs (u8 quants × s8
// activations → int16 pairs, at most 63·127·2: never saturates) and four dpwssd (× the sub-block
// scale, summed into int32) give the super-block's exact integer sum, the same integers as
// kernels-kquant.c and src/backend/q8k-activations.ts. Four (row, activation row) sums are then
// reduced side by side and the float step runs four lanes wide with the twins' expression and
// order, s += (double)(d·dx)·isum − (double)(dmin·dx)·msum (no FMA: -ffp-contract=off and only
// separate mul/sub/add intrinsics), so the results are the twins' bit for bit.
// Decode (one activation row) takes four weight rows per pass, each activation load serving the
// four, with prefetches ahead in each row; prompts (several activation rows) unpack each weight
// super-block once for up to eight activation rows.
#include "kernels.h"

#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512vnni,avx512dq,avx2,fma,f16c")

/* Activation rows sharing one unpacked weight super-block (prompts). */
#define KQ_MAXN 8
/* Weight rows sharing one activation super-block (decode). */
#define KQ_DECODE_ROWS 4
/* Bytes ahead in each weight row that decode prefetches: four row streams at once. */
#define KQ_PREFETCH_AHEAD 1024

/* One weight super-block ready for the dot products. */
typedef struct {
  __m512i q[4];  /* the 256 quants, unsigned (Q4_K 0..15, Q6_K 0..63), 64 per register in value order */
  __m512i sc[4]; /* the sub-block scale of each int16 lane of maddubs(q[k], activations) */
  __m256i per16; /* one int16 per 16-value group against the activation's bsums: Q4_K its sub-block's
                    min, Q6_K −32·its scale (Σ (q − 32)·x = Σ q·x − 32·Σ x) */
  float d, dmin;
} kq_superblock;

/* vpermw indexes: int16 lane i of q[k] → its scale. Q4_K: q[k] holds sub-blocks 2k (lanes 0-15)
   and 2k+1 (16-31) of [sc0..7, mn0..7]; then each 16-value group's min (group g: mn[g / 2]).
   Q6_K: q[k] holds groups 4k..4k+3, eight lanes each. */
#define X2(v) v, v
#define X8(v) v, v, v, v, v, v, v, v
#define X16(v) X8(v), X8(v)
static const int16_t Q4K_SCALE_INDEX[4][32] __attribute__((aligned(64))) = {
    {X16(0), X16(1)}, {X16(2), X16(3)}, {X16(4), X16(5)}, {X16(6), X16(7)}};
static const int16_t Q4K_MIN_INDEX[32] __attribute__((aligned(64))) = {
    X2(8), X2(9), X2(10), X2(11), X2(12), X2(13), X2(14), X2(15), X16(0)};
static const int16_t Q6K_SCALE_INDEX[4][32] __attribute__((aligned(64))) = {
    {X8(0), X8(1), X8(2), X8(3)}, {X8(4), X8(5), X8(6), X8(7)}, {X8(8), X8(9), X8(10), X8(11)}, {X8(12), X8(13), X8(14), X8(15)}};

static inline __m512i index_vector(const int16_t *idx) { return _mm512_load_si512((const void *)idx); }

static inline __attribute__((always_inline)) void unpack_q4k(const uint8_t *blk, kq_superblock *u) {
  /* get_scale_min_k4 for the eight sub-blocks at once, four bytes per word (llama.cpp's masks). */
  uint32_t s[3];
  memcpy(s, blk + 4, 12);
  const uint32_t sc_lo = s[0] & 0x3f3f3f3f, mn_lo = s[1] & 0x3f3f3f3f;
  const uint32_t sc_hi = (s[2] & 0x0f0f0f0f) | (((s[0] >> 6) & 0x03030303) << 4);
  const uint32_t mn_hi = ((s[2] >> 4) & 0x0f0f0f0f) | (((s[1] >> 6) & 0x03030303) << 4);
  const __m512i scmn = _mm512_castsi256_si512(_mm256_cvtepu8_epi16(_mm_set_epi32((int)mn_hi, (int)mn_lo, (int)sc_hi, (int)sc_lo)));
  for (int k = 0; k < 4; k++) u->sc[k] = _mm512_permutexvar_epi16(index_vector(Q4K_SCALE_INDEX[k]), scmn);
  u->per16 = _mm512_castsi512_si256(_mm512_permutexvar_epi16(index_vector(Q4K_MIN_INDEX), scmn));
  /* Bytes 32j..32j+31 hold values 64j..+31 (low nibbles) and 64j+32..+63 (high): a 64-byte load
     gives sub-blocks (2j, 2j+2) in its low nibbles and (2j+1, 2j+3) in its high ones; two
     128-bit-lane shuffles put them in value order. */
  const __m512i m4 = _mm512_set1_epi8(0x0f);
  for (int h = 0; h < 2; h++) {
    const __m512i v = _mm512_loadu_si512((const void *)(blk + 16 + 64 * h));
    const __m512i lo = _mm512_and_si512(v, m4), hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
    u->q[2 * h] = _mm512_shuffle_i64x2(lo, hi, _MM_SHUFFLE(1, 0, 1, 0));
    u->q[2 * h + 1] = _mm512_shuffle_i64x2(lo, hi, _MM_SHUFFLE(3, 2, 3, 2));
  }
  u->d = f16_table[blk[0] | (blk[1] << 8)];
  u->dmin = f16_table[blk[2] | (blk[3] << 8)];
}

static inline __attribute__((always_inline)) void unpack_q6k(const uint8_t *blk, kq_superblock *u) {
  const __m512i scales = _mm512_castsi256_si512(_mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(blk + 192))));
  for (int k = 0; k < 4; k++) u->sc[k] = _mm512_permutexvar_epi16(index_vector(Q6K_SCALE_INDEX[k]), scales);
  u->per16 = _mm256_mullo_epi16(_mm512_castsi512_si256(scales), _mm256_set1_epi16(-32));
  /* Half h: ql (64 bytes) low nibbles are values 128h..+63 in order, high nibbles 128h+64..+127;
     their two high bits are qh byte l's bit pairs (0-1, 2-3 | 4-5, 6-7) for values l and l+32.
     qh is broadcast to both 256-bit halves and each half shifted so its pair lands on bits 4-5
     (16-bit shifts: bits crossing into the next byte never reach bits 4-5 there). */
  const __m512i m4 = _mm512_set1_epi8(0x0f), m30 = _mm512_set1_epi8(0x30);
  const __m512i shift_lo = _mm512_inserti64x4(_mm512_set1_epi16(4), _mm256_set1_epi16(2), 1);
  const __m512i shift_hi = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(2), 1);
  for (int h = 0; h < 2; h++) {
    const __m512i ql = _mm512_loadu_si512((const void *)(blk + 64 * h));
    const __m512i qh = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(blk + 128 + 32 * h)));
    u->q[2 * h] = _mm512_or_si512(_mm512_and_si512(ql, m4), _mm512_and_si512(_mm512_sllv_epi16(qh, shift_lo), m30));
    u->q[2 * h + 1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), m4), _mm512_and_si512(_mm512_srlv_epi16(qh, shift_hi), m30));
  }
  u->d = f16_table[blk[208] | (blk[209] << 8)];
  u->dmin = 0.0f;
}

/* One weight super-block against one activation super-block: the int32 lanes of Σ_j sc_j Σ q·x
   (Q6_K with its −32·Σ sc·bsum already in), and for Q4_K the lanes of Σ_j m_j (bsum pairs). */
static inline __attribute__((always_inline)) __m512i superblock_dot(const kq_superblock *u, const q8k_block *x, int q4, __m256i *mins) {
  const __m256i per16 = _mm256_madd_epi16(u->per16, _mm256_loadu_si256((const __m256i *)x->bsums));
  __m512i acc;
  if (q4) {
    *mins = per16;
    acc = _mm512_setzero_si512();
  } else {
    acc = _mm512_zextsi256_si512(per16);
  }
  for (int k = 0; k < 4; k++) {
    const __m512i p = _mm512_maddubs_epi16(u->q[k], _mm512_loadu_si512((const void *)(x->qs + 64 * k)));
    acc = _mm512_dpwssd_epi32(acc, p, u->sc[k]);
  }
  return acc;
}

/* The totals of four int32 vectors, side by side. */
static inline __attribute__((always_inline)) __m128i sum4_512(__m512i a, __m512i b, __m512i c, __m512i d) {
  const __m512i ab = _mm512_add_epi32(_mm512_unpacklo_epi32(a, b), _mm512_unpackhi_epi32(a, b));
  const __m512i cd = _mm512_add_epi32(_mm512_unpacklo_epi32(c, d), _mm512_unpackhi_epi32(c, d));
  const __m512i abcd = _mm512_add_epi32(_mm512_unpacklo_epi64(ab, cd), _mm512_unpackhi_epi64(ab, cd));
  const __m256i h = _mm256_add_epi32(_mm512_castsi512_si256(abcd), _mm512_extracti64x4_epi64(abcd, 1));
  return _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
}

static inline __attribute__((always_inline)) __m128i sum4_256(__m256i a, __m256i b, __m256i c, __m256i d) {
  const __m256i ab = _mm256_add_epi32(_mm256_unpacklo_epi32(a, b), _mm256_unpackhi_epi32(a, b));
  const __m256i cd = _mm256_add_epi32(_mm256_unpacklo_epi32(c, d), _mm256_unpackhi_epi32(c, d));
  const __m256i abcd = _mm256_add_epi32(_mm256_unpacklo_epi64(ab, cd), _mm256_unpackhi_epi64(ab, cd));
  return _mm_add_epi32(_mm256_castsi256_si128(abcd), _mm256_extracti128_si256(abcd, 1));
}

/* R weight rows (rb bytes apart) × N activation rows (x, nb super-blocks each), R·N ≤ 8: pair
   p = r·N + n accumulates, in lane p % 4 of s[p / 4], the twins' float64 sum over super-blocks. */
static inline __attribute__((always_inline)) void kq_tile(const uint8_t *w, size_t rb, int R, const q8k_block *x, int nb, int N,
                                                           int q4, int prefetch, const matmul_args *a, int row, int n0) {
  const int P = R * N, G = (P + 3) / 4;
  const size_t block = q4 ? Q4_K_BLOCK_BYTES : Q6_K_BLOCK_BYTES;
  __m256d s[2] = {_mm256_setzero_pd(), _mm256_setzero_pd()};
  for (int b = 0; b < nb; b++) {
    __m512i acc[8];
    __m256i mins[8];
    float d[8], dmin[8];
    for (int r = 0; r < R; r++) {
      const uint8_t *blk = w + (size_t)r * rb + (size_t)b * block;
      if (prefetch) {
        for (size_t l = 0; l < block; l += 64) _mm_prefetch((const char *)blk + KQ_PREFETCH_AHEAD + l, _MM_HINT_T0);
      }
      kq_superblock u;
      if (q4) unpack_q4k(blk, &u);
      else unpack_q6k(blk, &u);
      for (int n = 0; n < N; n++) {
        acc[r * N + n] = superblock_dot(&u, &x[(size_t)n * nb + b], q4, &mins[r * N + n]);
        d[r * N + n] = u.d;
        dmin[r * N + n] = u.dmin;
      }
    }
    for (int g = 0; g < G; g++) {
      __m512i ai[4];
      __m256i mi[4];
      float dv[4], dmv[4], dx[4];
      for (int i = 0; i < 4; i++) {
        const int p = 4 * g + i;
        const int live = p < P;
        ai[i] = live ? acc[p] : _mm512_setzero_si512();
        mi[i] = live && q4 ? mins[p] : _mm256_setzero_si256();
        dv[i] = live ? d[p] : 0.0f;
        dmv[i] = live ? dmin[p] : 0.0f;
        dx[i] = live ? x[(size_t)(p % N) * nb + b].d : 0.0f;
      }
      const __m128 dxv = _mm_loadu_ps(dx);
      /* (double)(d·dx)·isum [− (double)(dmin·dx)·msum], then s += it: the twins' order. */
      __m256d t = _mm256_mul_pd(_mm256_cvtps_pd(_mm_mul_ps(_mm_loadu_ps(dv), dxv)), _mm256_cvtepi32_pd(sum4_512(ai[0], ai[1], ai[2], ai[3])));
      if (q4) {
        const __m256d m = _mm256_mul_pd(_mm256_cvtps_pd(_mm_mul_ps(_mm_loadu_ps(dmv), dxv)), _mm256_cvtepi32_pd(sum4_256(mi[0], mi[1], mi[2], mi[3])));
        t = _mm256_sub_pd(t, m);
      }
      s[g] = _mm256_add_pd(s[g], t);
    }
  }
  float out[8];
  for (int g = 0; g < G; g++) _mm_storeu_ps(out + 4 * g, _mm256_cvtpd_ps(s[g]));
  for (int p = 0; p < P; p++) {
    const int r = row + p / N, n = n0 + p % N;
    a->out[(size_t)n * a->out_stride + (r - a->row_start)] = out[p];
  }
}

/* Constant R and N per call site, so each tile is unrolled with its accumulators in registers. */
static inline __attribute__((always_inline)) void kq_rows(const matmul_args *a, int r0, int r1, int q4) {
  const size_t rb = row_bytes(a->dtype, a->cols);
  const int nb = a->cols / QK_K;
  const q8k_block *x = (const q8k_block *)a->x;
  if (a->batch == 1) {
    int r = r0;
    for (; r + KQ_DECODE_ROWS <= r1; r += KQ_DECODE_ROWS) kq_tile(a->w + (size_t)r * rb, rb, KQ_DECODE_ROWS, x, nb, 1, q4, 1, a, r, 0);
    for (; r < r1; r++) kq_tile(a->w + (size_t)r * rb, rb, 1, x, nb, 1, q4, 1, a, r, 0);
    return;
  }
  /* Prompts: a row's super-blocks stay in L1 while every tile of activation rows passes over them. */
  for (int r = r0; r < r1; r++) {
    const uint8_t *row = a->w + (size_t)r * rb;
    for (int n0 = 0; n0 < a->batch; n0 += KQ_MAXN) {
      const q8k_block *xn = x + (size_t)n0 * nb;
      const int prefetch = n0 == 0;
      switch (a->batch - n0 < KQ_MAXN ? a->batch - n0 : KQ_MAXN) {
        case 1: kq_tile(row, rb, 1, xn, nb, 1, q4, prefetch, a, r, n0); break;
        case 2: kq_tile(row, rb, 1, xn, nb, 2, q4, prefetch, a, r, n0); break;
        case 3: kq_tile(row, rb, 1, xn, nb, 3, q4, prefetch, a, r, n0); break;
        case 4: kq_tile(row, rb, 1, xn, nb, 4, q4, prefetch, a, r, n0); break;
        case 5: kq_tile(row, rb, 1, xn, nb, 5, q4, prefetch, a, r, n0); break;
        case 6: kq_tile(row, rb, 1, xn, nb, 6, q4, prefetch, a, r, n0); break;
        case 7: kq_tile(row, rb, 1, xn, nb, 7, q4, prefetch, a, r, n0); break;
        default: kq_tile(row, rb, 1, xn, nb, 8, q4, prefetch, a, r, n0); break;
      }
    }
  }
}

static void rows_q4k(const matmul_args *a, int r0, int r1) { kq_rows(a, r0, r1, 1); }
static void rows_q6k(const matmul_args *a, int r0, int r1) { kq_rows(a, r0, r1, 0); }

void matmul_rows_kquant_avx512(const matmul_args *a, int r0, int r1) {
  if (a->dtype == DT_Q4_K) rows_q4k(a, r0, r1);
  else if (a->dtype == DT_Q6_K) rows_q6k(a, r0, r1);
  else matmul_rows_kquant_avx2(a, r0, r1); /* K-quant types without an AVX-512 kernel here */
}

#pragma GCC pop_options
#else
void matmul_rows_kquant_avx512(const matmul_args *a, int r0, int r1) { matmul_rows_kquant_generic(a, r0, r1); }
#endif
