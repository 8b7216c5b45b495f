// Q5_0, Q5_1 and Q5_K weights as stored times activations quantized as llama.cpp does (Q8_0,
// Q8_1, Q8_K), a generic C path and an AVX2 path (per-function target, chosen at run time).
// Every block's (super-block's) integer sums are exact, then added in the same order and with
// the same float products as the TypeScript twins (dotQuantRow in src/backend/q8-activations.ts,
// dotKQuantRow in q8k-activations.ts), so the three agree bit for bit.
#include "kernels-q5.h"
#include "kquant-scales.h"

#include <math.h>
#include <string.h>

void quantize_row_q8_1(const float *x, q8_1_block *y, int cols) {
  for (int b = 0; b < cols / 32; b++, x += 32) {
    quantize_row_q8(x, &y[b].q, 32);
    float amax = 0.0f;
    int sum = 0; /* of the stored int8s, as quantize_row_q8_1_ref (q8_block.sum adds the ints before the cast) */
    for (int j = 0; j < 32; j++) {
      const float v = fabsf(x[j]);
      if (v > amax) amax = v;
      sum += y[b].q.qs[j];
    }
    y[b].s = f16_table[f32_to_f16_bits((float)sum * (amax / 127.0f))];
  }
}

static inline uint32_t load_u32(const uint8_t *p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}

/* Σ_j q_j · x_j over a Q5_0 / Q5_1 block's 32 unsigned quants (0..31; qh at p, qs at p + 4). */
static inline int32_t q5_block_sum_generic(const uint8_t *p, const int8_t *x) {
  const uint32_t qh = load_u32(p);
  int32_t s = 0;
  for (int j = 0; j < 16; j++) {
    s += ((p[4 + j] & 0xf) | (((qh >> j) & 1) << 4)) * x[j];
    s += ((p[4 + j] >> 4) | (((qh >> (j + 16)) & 1) << 4)) * x[j + 16];
  }
  return s;
}

static inline float half(const uint8_t *p) { return f16_table[p[0] | (p[1] << 8)]; }

static float dot_q5_0_generic(const uint8_t *row, const void *xv, int nb) {
  const q8_block *x = (const q8_block *)xv;
  double s = 0.0;
  for (int b = 0; b < nb; b++) {
    const uint8_t *blk = row + (size_t)b * Q5_0_BLOCK_BYTES;
    const int32_t isum = q5_block_sum_generic(blk + 2, x[b].qs) - 16 * x[b].sum;
    s += (double)(half(blk) * x[b].d) * isum;
  }
  return (float)s;
}

static float dot_q5_1_generic(const uint8_t *row, const void *xv, int nb) {
  const q8_1_block *x = (const q8_1_block *)xv;
  double s = 0.0;
  for (int b = 0; b < nb; b++) {
    const uint8_t *blk = row + (size_t)b * Q5_1_BLOCK_BYTES;
    s += (double)(half(blk) * x[b].q.d) * q5_block_sum_generic(blk + 4, x[b].q.qs);
    s += (double)(half(blk + 2) * x[b].s);
  }
  return (float)s;
}

static float dot_q5k_generic(const uint8_t *row, const void *xv, int nb) {
  const q8k_block *x = (const q8k_block *)xv;
  double s = 0.0;
  for (int b = 0; b < nb; b++) {
    const uint8_t *blk = row + (size_t)b * Q5_K_BLOCK_BYTES;
    uint8_t sc[8], mn[8];
    q4k_scales(blk + 4, sc, mn);
    const uint8_t *qh = blk + 16, *ql = blk + 48;
    const int8_t *q8 = x[b].qs;
    int32_t isum = 0;
    for (int j = 0; j < 4; j++) {
      int32_t lo = 0, hi = 0;
      for (int l = 0; l < 32; l++) {
        lo += ((ql[32 * j + l] & 0xf) | (((qh[l] >> (2 * j)) & 1) << 4)) * q8[64 * j + l];
        hi += ((ql[32 * j + l] >> 4) | (((qh[l] >> (2 * j + 1)) & 1) << 4)) * q8[64 * j + 32 + l];
      }
      isum += sc[2 * j] * lo + sc[2 * j + 1] * hi;
    }
    s += (double)(half(blk) * x[b].d) * isum - (double)(half(blk + 2) * x[b].d) * q4k_min_sum(mn, &x[b]);
  }
  return (float)s;
}

typedef float (*q5_dot_fn)(const uint8_t *row, const void *x, int nb);

/* Rows [r0, r1) against every batch row; x_row_bytes: one activation row's quantized bytes. */
static inline void q5_rows(const matmul_args *a, int r0, int r1, q5_dot_fn dot, int nb, size_t x_row_bytes) {
  const size_t rb = row_bytes(a->dtype, a->cols);
  for (int r = r0; r < r1; r++) {
    const uint8_t *row = a->w + (size_t)r * rb;
    for (int n = 0; n < a->batch; n++) {
      a->out[(size_t)n * a->out_stride + (r - a->row_start)] = dot(row, (const uint8_t *)a->x + (size_t)n * x_row_bytes, nb);
    }
  }
}

static void q5_dispatch(const matmul_args *a, int r0, int r1, q5_dot_fn q5_0, q5_dot_fn q5_1, q5_dot_fn q5k) {
  const int nb32 = a->cols / 32, nbk = a->cols / QK_K;
  if (a->dtype == DT_Q5_0) q5_rows(a, r0, r1, q5_0, nb32, nb32 * sizeof(q8_block));
  else if (a->dtype == DT_Q5_1) q5_rows(a, r0, r1, q5_1, nb32, nb32 * sizeof(q8_1_block));
  else q5_rows(a, r0, r1, q5k, nbk, nbk * sizeof(q8k_block));
}

void matmul_rows_q5_generic(const matmul_args *a, int r0, int r1) {
  q5_dispatch(a, r0, r1, dot_q5_0_generic, dot_q5_1_generic, dot_q5k_generic);
}

#if defined(__x86_64__)
#include <immintrin.h>

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")

/* A Q5_0 / Q5_1 block's 32 unsigned quants (qh at p, qs at p + 4) as bytes 0..31 in value order:
   the nibbles (low ones first), or'ed with 0x10 where qh has the value's bit (ggml's bytes_from_bits_32). */
static inline __m256i q5_block_bytes(const uint8_t *p) {
  const __m128i qs = _mm_loadu_si128((const __m128i *)(p + 4));
  const __m256i nibbles = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(qs, 4), qs), _mm256_set1_epi8(0x0f));
  const __m256i spread = _mm256_shuffle_epi8(_mm256_set1_epi32((int)load_u32(p)),
                                             _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0));
  const __m256i bit = _mm256_cmpeq_epi8(_mm256_or_si256(spread, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe)), _mm256_set1_epi64x(-1));
  return _mm256_or_si256(nibbles, _mm256_and_si256(bit, _mm256_set1_epi8(0x10)));
}

/* Σ q·x: maddubs (unsigned 0..31 times signed: pairs at most 31·128·2, no saturation), madd by ones. */
static inline int32_t q5_block_sum_avx2(const uint8_t *p, const int8_t *x) {
  const __m256i prod = _mm256_maddubs_epi16(q5_block_bytes(p), _mm256_loadu_si256((const __m256i *)x));
  return hsum_epi32(_mm256_madd_epi16(prod, _mm256_set1_epi16(1)));
}

static float dot_q5_0_avx2(const uint8_t *row, const void *xv, int nb) {
  const q8_block *x = (const q8_block *)xv;
  double s = 0.0;
  for (int b = 0; b < nb; b++) {
    const uint8_t *blk = row + (size_t)b * Q5_0_BLOCK_BYTES;
    const int32_t isum = q5_block_sum_avx2(blk + 2, x[b].qs) - 16 * x[b].sum;
    s += (double)(half(blk) * x[b].d) * isum;
  }
  return (float)s;
}

static float dot_q5_1_avx2(const uint8_t *row, const void *xv, int nb) {
  const q8_1_block *x = (const q8_1_block *)xv;
  double s = 0.0;
  for (int b = 0; b < nb; b++) {
    const uint8_t *blk = row + (size_t)b * Q5_1_BLOCK_BYTES;
    s += (double)(half(blk) * x[b].q.d) * q5_block_sum_avx2(blk + 4, x[b].q.qs);
    s += (double)(half(blk + 2) * x[b].s);
  }
  return (float)s;
}

/* As kernels-kquant.c's Q4_K kernel, with bit 4 of each quant from qh: value 64j + l takes bit 2j
   of qh[l], value 64j + 32 + l bit 2j + 1 (maddubs pairs at most 31·128·2, madd by the 6-bit scale). */
static float dot_q5k_avx2(const uint8_t *row, const void *xv, int nb) {
  const q8k_block *x = (const q8k_block *)xv;
  const __m256i m4 = _mm256_set1_epi8(0x0f), one = _mm256_set1_epi8(1);
  double s = 0.0;
  for (int b = 0; b < nb; b++) {
    const uint8_t *blk = row + (size_t)b * Q5_K_BLOCK_BYTES;
    uint8_t sc[8], mn[8];
    q4k_scales(blk + 4, sc, mn);
    const __m256i qh = _mm256_loadu_si256((const __m256i *)(blk + 16));
    const int8_t *q8 = x[b].qs;
    __m256i acc = _mm256_setzero_si256();
    for (int j = 0; j < 4; j++) {
      const __m256i q4 = _mm256_loadu_si256((const __m256i *)(blk + 48 + 32 * j));
      const __m256i hlo = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * j), one), 4);
      const __m256i hhi = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * j + 1), one), 4);
      const __m256i lo = _mm256_or_si256(_mm256_and_si256(q4, m4), hlo);
      const __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q4, 4), m4), hhi);
      const __m256i plo = _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)(q8 + 64 * j)));
      const __m256i phi = _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(q8 + 64 * j + 32)));
      acc = _mm256_add_epi32(acc, _mm256_madd_epi16(plo, _mm256_set1_epi16(sc[2 * j])));
      acc = _mm256_add_epi32(acc, _mm256_madd_epi16(phi, _mm256_set1_epi16(sc[2 * j + 1])));
    }
    const int32_t isum = hsum_epi32(acc);
    s += (double)(half(blk) * x[b].d) * isum - (double)(half(blk + 2) * x[b].d) * q4k_min_sum(mn, &x[b]);
  }
  return (float)s;
}

void matmul_rows_q5_avx2(const matmul_args *a, int r0, int r1) {
  q5_dispatch(a, r0, r1, dot_q5_0_avx2, dot_q5_1_avx2, dot_q5k_avx2);
}

#pragma GCC pop_options
#else
void matmul_rows_q5_avx2(const matmul_args *a, int r0, int r1) { matmul_rows_q5_generic(a, r0, r1); }
#endif
