// Q4_K and Q6_K weights as stored times Q8_K activations with AVX-512 VNNI (BW, VL). Every weight
// super-block is unpacked once into four registers of 64 unsigned quants (in value order, or for
// Q4_K decode in the stored nibble order), plus the int16 sub-block scale of every lane; then per activation row four maddubs (u8 quants × s8
// activations → int16 pairs, at most 63·127·2: never saturates) and four dpwssd (× the sub-block
// scale, summed into int32) give the super-block's exact integer sum, the same integers as
// kernels-kquant.c and src/backend/q8k-activations.ts. Four (row, activation row) sums are then
// reduced side by side and the float step runs four lanes wide with the twins' expression and
// order, s += (double)(d·dx)·isum − (double)(dmin·dx)·msum (no FMA: -ffp-contract=off and only
// separate mul/sub/add intrinsics), so the results are the twins' bit for bit.
// Decode (one activation row) reads the weights as one sequential stream, a row at a time, four
// super-blocks reduced together, with Q4_K's activations rearranged once per call to the
// stored nibble order (no weight shuffles) and a prefetch ahead. (Four weight rows per pass,
// sharing each activation load, measured slower here: four interleaved streams, worst for
// Q6_K's 2100-byte rows, 10-12 against 15 GB/CPU-s.) Prompts (several activation rows) unpack
// each weight super-block once for up to eight activation rows.
#include "kernels.h"
#include "kquant-scales.h"

#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512vnni,avx512dq,avx2,fma,f16c")

/* Activation rows sharing one unpacked weight super-block (prompts). */
#define KQ_MAXN 8
/* Bytes ahead in the weights that decode and a prompt's first pass over a row prefetch. */
#define KQ_PREFETCH_AHEAD 512

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
/* Q4_K in nibble order (decode, activations rearranged to match): q[k] holds sub-blocks (0, 2),
   (1, 3), (4, 6), (5, 7). */
static const int16_t Q4K_NIBBLE_SCALE_INDEX[4][32] __attribute__((aligned(64))) = {
    {X16(0), X16(2)}, {X16(1), X16(3)}, {X16(4), X16(6)}, {X16(5), X16(7)}};
static const int16_t Q4K_MIN_INDEX[32] __attribute__((aligned(64))) = {
    X2(8), X2(9), X2(10), X2(11), X2(12), X2(13), X2(14), X2(15), X16(0)};
static const int16_t Q6K_SCALE_INDEX[4][32] __attribute__((aligned(64))) = {
    {X8(0), X8(1), X8(2), X8(3)}, {X8(4), X8(5), X8(6), X8(7)}, {X8(8), X8(9), X8(10), X8(11)}, {X8(12), X8(13), X8(14), X8(15)}};

static inline __m512i index_vector(const int16_t *idx) { return _mm512_load_si512((const void *)idx); }

/* value_order: q[k] holds values 64k..64k+63 (activations as stored); otherwise the nibble order
   of the stored bytes, for activations rearranged by nibble_order_activations. */
static inline __attribute__((always_inline)) void unpack_q4k(const uint8_t *blk, kq_superblock *u, int value_order) {
  /* get_scale_min_k4 for the eight sub-blocks at once, four bytes per word (llama.cpp's masks). */
  uint32_t s[3];
  memcpy(s, blk + 4, 12);
  const uint32_t sc_lo = s[0] & 0x3f3f3f3f, mn_lo = s[1] & 0x3f3f3f3f;
  const uint32_t sc_hi = (s[2] & 0x0f0f0f0f) | (((s[0] >> 6) & 0x03030303) << 4);
  const uint32_t mn_hi = ((s[2] >> 4) & 0x0f0f0f0f) | (((s[1] >> 6) & 0x03030303) << 4);
  const __m512i scmn = _mm512_castsi256_si512(_mm256_cvtepu8_epi16(_mm_set_epi32((int)mn_hi, (int)mn_lo, (int)sc_hi, (int)sc_lo)));
  #pragma GCC unroll 4
  for (int k = 0; k < 4; k++) u->sc[k] = _mm512_permutexvar_epi16(index_vector(value_order ? Q4K_SCALE_INDEX[k] : Q4K_NIBBLE_SCALE_INDEX[k]), scmn);
  u->per16 = _mm512_castsi512_si256(_mm512_permutexvar_epi16(index_vector(Q4K_MIN_INDEX), scmn));
  /* Bytes 32j..32j+31 hold values 64j..+31 (low nibbles) and 64j+32..+63 (high): a 64-byte load
     gives sub-blocks (2j, 2j+2) in its low nibbles and (2j+1, 2j+3) in its high ones; in value
     order two 128-bit-lane shuffles put them in order. */
  const __m512i m4 = _mm512_set1_epi8(0x0f);
  #pragma GCC unroll 2
  for (int h = 0; h < 2; h++) {
    const __m512i v = _mm512_loadu_si512((const void *)(blk + 16 + 64 * h));
    const __m512i lo = _mm512_and_si512(v, m4), hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
    u->q[2 * h] = value_order ? _mm512_shuffle_i64x2(lo, hi, _MM_SHUFFLE(1, 0, 1, 0)) : lo;
    u->q[2 * h + 1] = value_order ? _mm512_shuffle_i64x2(lo, hi, _MM_SHUFFLE(3, 2, 3, 2)) : hi;
  }
  u->d = f16_table[blk[0] | (blk[1] << 8)];
  u->dmin = f16_table[blk[2] | (blk[3] << 8)];
}

/* A Q8_K row's quants in Q4_K's nibble order, 256 bytes per super-block: [0..31, 64..95],
   [32..63, 96..127], then the same for 128..255. */
static inline void nibble_order_activations(const q8k_block *x, int nb, int8_t *out) {
  for (int b = 0; b < nb; b++) {
    const int8_t *q = x[b].qs;
    #pragma GCC unroll 2
    for (int h = 0; h < 2; h++) {
      for (int k = 0; k < 2; k++) {
        const __m256i a = _mm256_loadu_si256((const __m256i *)(q + 128 * h + 32 * k));
        const __m256i c = _mm256_loadu_si256((const __m256i *)(q + 128 * h + 64 + 32 * k));
        _mm512_storeu_si512((void *)(out + 256 * b + 128 * h + 64 * k), _mm512_inserti64x4(_mm512_castsi256_si512(a), c, 1));
      }
    }
  }
}

static inline __attribute__((always_inline)) void unpack_q6k(const uint8_t *blk, kq_superblock *u) {
  const __m512i scales = _mm512_castsi256_si512(_mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(blk + 192))));
  #pragma GCC unroll 4
  for (int k = 0; k < 4; k++) u->sc[k] = _mm512_permutexvar_epi16(index_vector(Q6K_SCALE_INDEX[k]), scales);
  u->per16 = _mm256_mullo_epi16(_mm512_castsi512_si256(scales), _mm256_set1_epi16(-32));
  /* Half h: ql (64 bytes) low nibbles are values 128h..+63 in order, high nibbles 128h+64..+127;
     their two high bits are qh byte l's bit pairs (0-1, 2-3 | 4-5, 6-7) for values l and l+32.
     qh is broadcast to both 256-bit halves and each half shifted so its pair lands on bits 4-5
     (16-bit shifts: bits crossing into the next byte never reach bits 4-5 there). */
  const __m512i m4 = _mm512_set1_epi8(0x0f), m30 = _mm512_set1_epi8(0x30);
  const __mmask32 upper = 0xffff0000u; /* the int16 lanes of bytes 32-63 */
  #pragma GCC unroll 2
  for (int h = 0; h < 2; h++) {
    const __m512i ql = _mm512_loadu_si512((const void *)(blk + 64 * h));
    const __m512i qh = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(blk + 128 + 32 * h)));
    const __m512i qh_lo = _mm512_mask_slli_epi16(_mm512_slli_epi16(qh, 4), upper, qh, 2);
    const __m512i qh_hi = _mm512_mask_srli_epi16(qh, upper, qh, 2);
    u->q[2 * h] = _mm512_ternarylogic_epi32(_mm512_and_si512(ql, m4), qh_lo, m30, 0xF8); /* a | (b & c) */
    u->q[2 * h + 1] = _mm512_ternarylogic_epi32(_mm512_and_si512(_mm512_srli_epi16(ql, 4), m4), qh_hi, m30, 0xF8);
  }
  u->d = f16_table[blk[208] | (blk[209] << 8)];
  u->dmin = 0.0f;
}

/* One weight super-block against one activation super-block: the int32 lanes of Σ_j sc_j Σ q·x
   (Q6_K with its −32·Σ sc·bsum already in), and for Q4_K the lanes of Σ_j m_j (bsum pairs). */
static inline __attribute__((always_inline)) __m512i superblock_dot(const kq_superblock *u, const q8k_block *x, const int8_t *qs, int q4, __m256i *mins) {
  const __m256i per16 = _mm256_madd_epi16(u->per16, _mm256_loadu_si256((const __m256i *)x->bsums));
  __m512i acc;
  if (q4) {
    *mins = per16;
    acc = _mm512_setzero_si512();
  } else {
    acc = _mm512_zextsi256_si512(per16);
  }
  #pragma GCC unroll 4
  for (int k = 0; k < 4; k++) {
    const __m512i p = _mm512_maddubs_epi16(u->q[k], _mm512_loadu_si512((const void *)(qs + 64 * k)));
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

/* R weight rows (rb bytes apart; prompts use R = 1) × N activation rows (x, nb super-blocks each), R·N ≤ 8: pair
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
    #pragma GCC unroll 8
    for (int r = 0; r < R; r++) {
      const uint8_t *blk = w + (size_t)r * rb + (size_t)b * block;
      if (prefetch) {
        for (size_t l = 0; l < block; l += 64) _mm_prefetch((const char *)blk + KQ_PREFETCH_AHEAD + l, _MM_HINT_T0);
      }
      kq_superblock u;
      if (q4) unpack_q4k(blk, &u, 1);
      else unpack_q6k(blk, &u);
      #pragma GCC unroll 8
      for (int n = 0; n < N; n++) {
        acc[r * N + n] = superblock_dot(&u, &x[(size_t)n * nb + b], x[(size_t)n * nb + b].qs, q4, &mins[r * N + n]);
        d[r * N + n] = u.d;
        dmin[r * N + n] = u.dmin;
      }
    }
    #pragma GCC unroll 2
    for (int g = 0; g < G; g++) {
      /* Lanes past the last pair are zeros (and discarded). */
#define LANE(arr, i, zero) (4 * g + (i) < P ? (arr)[4 * g + (i)] : (zero))
#define DX(i) (4 * g + (i) < P ? x[(size_t)((4 * g + (i)) % N) * nb + b].d : 0.0f)
      const __m512i z = _mm512_setzero_si512();
      const __m128i isum = sum4_512(LANE(acc, 0, z), LANE(acc, 1, z), LANE(acc, 2, z), LANE(acc, 3, z));
      const __m128 dxv = _mm_set_ps(DX(3), DX(2), DX(1), DX(0));
      const __m128 dv = _mm_set_ps(LANE(d, 3, 0.0f), LANE(d, 2, 0.0f), LANE(d, 1, 0.0f), LANE(d, 0, 0.0f));
      /* (double)(d·dx)·isum [− (double)(dmin·dx)·msum], then s += it: the twins' order. */
      __m256d t = _mm256_mul_pd(_mm256_cvtps_pd(_mm_mul_ps(dv, dxv)), _mm256_cvtepi32_pd(isum));
      if (q4) {
        const __m256i zm = _mm256_setzero_si256();
        const __m128i msum = sum4_256(LANE(mins, 0, zm), LANE(mins, 1, zm), LANE(mins, 2, zm), LANE(mins, 3, zm));
        const __m128 dmv = _mm_set_ps(LANE(dmin, 3, 0.0f), LANE(dmin, 2, 0.0f), LANE(dmin, 1, 0.0f), LANE(dmin, 0, 0.0f));
        t = _mm256_sub_pd(t, _mm256_mul_pd(_mm256_cvtps_pd(_mm_mul_ps(dmv, dxv)), _mm256_cvtepi32_pd(msum)));
      }
#undef LANE
#undef DX
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

/* Super-blocks b0..b0+LIVE-1 (LIVE ≤ 4) of one weight row against one activation row: their
   integer sums reduced side by side, their float terms computed four wide, then added to *s one
   after the other in super-block order (the twins' order). qs: the activation quants, in value
   order (NULL: read from x) or Q4_K's nibble order, 256 bytes per super-block. */
static inline __attribute__((always_inline)) void kq_group(const uint8_t *w, const q8k_block *x, const int8_t *qs, int b0, int LIVE,
                                                            int q4, int value_order, double *s) {
  const size_t block = q4 ? Q4_K_BLOCK_BYTES : Q6_K_BLOCK_BYTES;
  __m512i acc[4];
  __m256i mins[4];
  float d[4], dmin[4], dx[4];
  #pragma GCC unroll 4
  for (int i = 0; i < 4; i++) {
    acc[i] = _mm512_setzero_si512();
    mins[i] = _mm256_setzero_si256();
    d[i] = dmin[i] = dx[i] = 0.0f;
  }
  #pragma GCC unroll 4
  for (int i = 0; i < LIVE; i++) {
    const uint8_t *blk = w + (size_t)(b0 + i) * block;
    for (size_t l = 0; l < block; l += 64) _mm_prefetch((const char *)blk + KQ_PREFETCH_AHEAD + l, _MM_HINT_T0);
    kq_superblock u;
    if (q4) unpack_q4k(blk, &u, value_order);
    else unpack_q6k(blk, &u);
    acc[i] = superblock_dot(&u, &x[b0 + i], qs ? qs + 256 * (size_t)(b0 + i) : x[b0 + i].qs, q4, &mins[i]);
    d[i] = u.d;
    dmin[i] = u.dmin;
    dx[i] = x[b0 + i].d;
  }
  const __m128 dxv = _mm_set_ps(dx[3], dx[2], dx[1], dx[0]);
  __m256d t = _mm256_mul_pd(_mm256_cvtps_pd(_mm_mul_ps(_mm_set_ps(d[3], d[2], d[1], d[0]), dxv)), _mm256_cvtepi32_pd(sum4_512(acc[0], acc[1], acc[2], acc[3])));
  if (q4) {
    const __m128i msum = sum4_256(mins[0], mins[1], mins[2], mins[3]);
    t = _mm256_sub_pd(t, _mm256_mul_pd(_mm256_cvtps_pd(_mm_mul_ps(_mm_set_ps(dmin[3], dmin[2], dmin[1], dmin[0]), dxv)), _mm256_cvtepi32_pd(msum)));
  }
  double terms[4];
  _mm256_storeu_pd(terms, t);
  #pragma GCC unroll 4
  for (int i = 0; i < LIVE; i++) *s += terms[i];
}

/* Decode: one weight row at a time, a single sequential stream of weights. */
static inline __attribute__((always_inline)) float kq_row(const uint8_t *w, const q8k_block *x, const int8_t *qs, int nb, int q4, int value_order) {
  double s = 0.0;
  int b0 = 0;
  for (; b0 + 4 <= nb; b0 += 4) kq_group(w, x, qs, b0, 4, q4, value_order, &s);
  switch (nb - b0) {
    case 1: kq_group(w, x, qs, b0, 1, q4, value_order, &s); break;
    case 2: kq_group(w, x, qs, b0, 2, q4, value_order, &s); break;
    case 3: kq_group(w, x, qs, b0, 3, q4, value_order, &s); break;
    default: break;
  }
  return (float)s;
}

/* Super-blocks of rearranged activations kept on the stack for decode (longer rows: value order). */
#define KQ_NIBBLE_ORDER_MAX_BLOCKS 96

/* Decode one row at a time; prompts in tiles with a constant N per call site, so each tile is
   unrolled with its accumulators in registers. */
static inline __attribute__((always_inline)) void kq_rows(const matmul_args *a, int r0, int r1, int q4) {
  const size_t rb = row_bytes(a->dtype, a->cols);
  const int nb = a->cols / QK_K;
  const q8k_block *x = (const q8k_block *)a->x;
  if (a->batch == 1) {
    if (q4 && nb <= KQ_NIBBLE_ORDER_MAX_BLOCKS) {
      int8_t qs[KQ_NIBBLE_ORDER_MAX_BLOCKS * QK_K] __attribute__((aligned(64)));
      nibble_order_activations(x, nb, qs);
      for (int r = r0; r < r1; r++) a->out[r - a->row_start] = kq_row(a->w + (size_t)r * rb, x, qs, nb, 1, 0);
    } else {
      for (int r = r0; r < r1; r++) a->out[r - a->row_start] = kq_row(a->w + (size_t)r * rb, x, NULL, nb, q4, 1);
    }
    return;
  }
  /* Prompts: a row's super-blocks stay in L1 while every tile of a chunk of activation rows (in L2) passes over them. */
  const int chunk = kquant_act_chunk(nb);
  for (int c0 = 0; c0 < a->batch; c0 += chunk) {
    const int c1 = a->batch - c0 < chunk ? a->batch : c0 + chunk;
    for (int r = r0; r < r1; r++) {
      const uint8_t *row = a->w + (size_t)r * rb;
      for (int n0 = c0; n0 < c1; n0 += KQ_MAXN) {
        const q8k_block *xn = x + (size_t)n0 * nb;
        const int prefetch = n0 == c0;
        switch (c1 - n0 < KQ_MAXN ? c1 - n0 : KQ_MAXN) {
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
