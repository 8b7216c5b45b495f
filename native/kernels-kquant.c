// Q4_K and Q6_K weights as stored (llama.cpp's 256-value super-blocks) times activations in Q8_K,
// a generic C path and an AVX2 path (per-function target, chosen at run time like kernels.c's).
// Both compute every super-block's integer sums exactly and then, in the same order as the
// TypeScript twin (src/backend/q8k-activations.ts), s += (double)(d·dx)·isum − (double)(dmin·dx)·msum,
// so the three agree bit for bit: integer sums do not depend on the order they are added in.
#include "kernels.h"
#include "kquant-scales.h"

#include <math.h>
#include <string.h>

/* ggml's nearest_int: the low 23 bits of fval + 1.5·2^23, minus 2^22 (defined for any float:
   the ±Infinity of a block of subnormals gives -2^22, whose low byte is 0). */
static inline int nearest_int(float fval) {
  float val = fval + 12582912.f;
  int32_t i;
  memcpy(&i, &val, 4);
  return (i & 0x007fffff) - 0x00400000;
}

void quantize_row_q8k(const float *x, q8k_block *y, int cols) {
  for (int b = 0; b < cols / QK_K; b++, x += QK_K) {
    float max = 0.0f, amax = 0.0f;
    for (int j = 0; j < QK_K; j++) {
      const float ax = fabsf(x[j]);
      if (ax > amax) {
        amax = ax;
        max = x[j];
      }
    }
    if (amax == 0.0f) {
      memset(&y[b], 0, sizeof(q8k_block));
      continue;
    }
    const float iscale = -127.0f / max;
    for (int j = 0; j < QK_K; j++) {
      const int v = nearest_int(iscale * x[j]);
      y[b].qs[j] = (int8_t)(v < 127 ? v : 127);
    }
    for (int g = 0; g < QK_K / 16; g++) {
      int sum = 0;
      for (int i = 0; i < 16; i++) sum += y[b].qs[16 * g + i];
      y[b].bsums[g] = (int16_t)sum;
    }
    y[b].d = 1.0f / iscale;
  }
}

static inline int32_t pair16(int a, int b) { return (int32_t)((uint32_t)(uint16_t)a | ((uint32_t)(uint16_t)b << 16)); }

void kquant_x16_words(const q8k_block *x, size_t blocks, int32_t *words) {
  for (size_t b = 0; b < blocks; b++, words += KX16_WORDS) {
    const int16_t *bs = x[b].bsums;
    int ps[8];
    for (int j = 0; j < 8; j++) ps[j] = bs[2 * j] + bs[2 * j + 1];
    words[0] = pair16(ps[0], ps[2]);
    words[1] = pair16(ps[1], ps[3]);
    words[2] = pair16(ps[4], ps[6]);
    words[3] = pair16(ps[5], ps[7]);
    for (int w = 0; w < 4; w++) {
      words[4 + 2 * w] = pair16(bs[4 * w], bs[4 * w + 2]);
      words[5 + 2 * w] = pair16(bs[4 * w + 1], bs[4 * w + 3]);
    }
  }
}

static float dot_q4k_generic(const uint8_t *row, const q8k_block *x, int nb) {
  double s = 0.0;
  for (int b = 0; b < nb; b++) {
    const uint8_t *blk = row + (size_t)b * Q4_K_BLOCK_BYTES;
    uint8_t sc[8], mn[8];
    q4k_scales(blk + 4, sc, mn);
    const uint8_t *q = blk + 16;
    const int8_t *q8 = x[b].qs;
    int32_t isum = 0;
    for (int j = 0; j < 4; j++) {
      int32_t lo = 0, hi = 0;
      for (int l = 0; l < 32; l++) {
        lo += (q[32 * j + l] & 0xf) * q8[64 * j + l];
        hi += (q[32 * j + l] >> 4) * q8[64 * j + 32 + l];
      }
      isum += sc[2 * j] * lo + sc[2 * j + 1] * hi;
    }
    const float d = f16_table[blk[0] | (blk[1] << 8)], dmin = f16_table[blk[2] | (blk[3] << 8)];
    s += (double)(d * x[b].d) * isum - (double)(dmin * x[b].d) * q4k_min_sum(mn, &x[b]);
  }
  return (float)s;
}

/* Σ_j sc_j · bsum_j: with it Σ (q − 32)·q8 = Σ q·q8 − 32·Σ q8 per 16-value group. */
static inline int32_t q6k_scaled_bsums(const int8_t *sc, const q8k_block *x) {
  int32_t s = 0;
  for (int j = 0; j < 16; j++) s += sc[j] * x->bsums[j];
  return s;
}

static float dot_q6k_generic(const uint8_t *row, const q8k_block *x, int nb) {
  double s = 0.0;
  for (int b = 0; b < nb; b++) {
    const uint8_t *blk = row + (size_t)b * Q6_K_BLOCK_BYTES;
    const int8_t *sc = (const int8_t *)(blk + 192);
    const int8_t *q8 = x[b].qs;
    int32_t isum = 0;
    for (int h = 0; h < 2; h++) {
      const uint8_t *ql = blk + 64 * h, *qh = blk + 128 + 32 * h;
      const int8_t *y = q8 + 128 * h;
      int32_t g[8] = {0};
      for (int l = 0; l < 32; l++) {
        const int i = l >> 4;
        g[0 + i] += ((ql[l] & 0xf) | ((qh[l] & 3) << 4)) * y[l];
        g[2 + i] += ((ql[l + 32] & 0xf) | (((qh[l] >> 2) & 3) << 4)) * y[l + 32];
        g[4 + i] += ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) * y[l + 64];
        g[6 + i] += ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) * y[l + 96];
      }
      for (int k = 0; k < 8; k++) isum += sc[8 * h + k] * g[k];
    }
    isum -= 32 * q6k_scaled_bsums(sc, &x[b]);
    s += (double)(f16_table[blk[208] | (blk[209] << 8)] * x[b].d) * isum;
  }
  return (float)s;
}

typedef float (*kquant_dot_fn)(const uint8_t *row, const q8k_block *x, int nb);

static inline void kquant_rows(const matmul_args *a, int r0, int r1, kquant_dot_fn dot) {
  const size_t rb = row_bytes(a->dtype, a->cols);
  const int nb = a->cols / QK_K;
  const q8k_block *x = (const q8k_block *)a->x;
  for (int r = r0; r < r1; r++) {
    const uint8_t *row = a->w + (size_t)r * rb;
    for (int n = 0; n < a->batch; n++) {
      a->out[(size_t)n * a->out_stride + (r - a->row_start)] = dot(row, x + (size_t)n * nb, nb);
    }
  }
}

void matmul_rows_kquant_generic(const matmul_args *a, int r0, int r1) {
  kquant_rows(a, r0, r1, a->dtype == DT_Q4_K ? dot_q4k_generic : dot_q6k_generic);
}

#if defined(__x86_64__)
#include <immintrin.h>

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")

/* maddubs: unsigned weight bytes (0..15 or 0..63) times signed activations, pairs summed into
   int16 (at most 63·128·2 = 16128: never saturates); madd by the sub-block scale widens to int32. */
static float dot_q4k_avx2(const uint8_t *row, const q8k_block *x, int nb) {
  const __m256i m4 = _mm256_set1_epi8(0x0f);
  double s = 0.0;
  for (int b = 0; b < nb; b++) {
    const uint8_t *blk = row + (size_t)b * Q4_K_BLOCK_BYTES;
    uint8_t sc[8], mn[8];
    q4k_scales(blk + 4, sc, mn);
    const uint8_t *q = blk + 16;
    const int8_t *q8 = x[b].qs;
    __m256i acc = _mm256_setzero_si256();
    for (int j = 0; j < 4; j++) {
      const __m256i q4 = _mm256_loadu_si256((const __m256i *)(q + 32 * j));
      const __m256i lo = _mm256_and_si256(q4, m4);
      const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q4, 4), m4);
      const __m256i plo = _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)(q8 + 64 * j)));
      const __m256i phi = _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(q8 + 64 * j + 32)));
      acc = _mm256_add_epi32(acc, _mm256_madd_epi16(plo, _mm256_set1_epi16(sc[2 * j])));
      acc = _mm256_add_epi32(acc, _mm256_madd_epi16(phi, _mm256_set1_epi16(sc[2 * j + 1])));
    }
    const int32_t isum = hsum_epi32(acc);
    const float d = f16_table[blk[0] | (blk[1] << 8)], dmin = f16_table[blk[2] | (blk[3] << 8)];
    s += (double)(d * x[b].d) * isum - (double)(dmin * x[b].d) * q4k_min_sum(mn, &x[b]);
  }
  return (float)s;
}

static float dot_q6k_avx2(const uint8_t *row, const q8k_block *x, int nb) {
  const __m256i m4 = _mm256_set1_epi8(0x0f), m3 = _mm256_set1_epi8(0x03);
  double s = 0.0;
  for (int b = 0; b < nb; b++) {
    const uint8_t *blk = row + (size_t)b * Q6_K_BLOCK_BYTES;
    const int8_t *sc = (const int8_t *)(blk + 192);
    __m256i acc = _mm256_setzero_si256();
    for (int h = 0; h < 2; h++) {
      const __m256i ql0 = _mm256_loadu_si256((const __m256i *)(blk + 64 * h));
      const __m256i ql1 = _mm256_loadu_si256((const __m256i *)(blk + 64 * h + 32));
      const __m256i qh = _mm256_loadu_si256((const __m256i *)(blk + 128 + 32 * h));
      /* Values 128h + 32k + l (l < 32), unsigned 0..63; the two 16-value halves of each have their own scale. */
      __m256i v[4];
      v[0] = _mm256_or_si256(_mm256_and_si256(ql0, m4), _mm256_slli_epi16(_mm256_and_si256(qh, m3), 4));
      v[1] = _mm256_or_si256(_mm256_and_si256(ql1, m4), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), m3), 4));
      v[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4),
                             _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), m3), 4));
      v[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                             _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), m3), 4));
      const int8_t *q8 = x[b].qs + 128 * h;
      for (int k = 0; k < 4; k++) {
        const __m256i p = _mm256_maddubs_epi16(v[k], _mm256_loadu_si256((const __m256i *)(q8 + 32 * k)));
        const __m256i scale = _mm256_set_m128i(_mm_set1_epi16(sc[8 * h + 2 * k + 1]), _mm_set1_epi16(sc[8 * h + 2 * k]));
        acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p, scale));
      }
    }
    const int32_t isum = hsum_epi32(acc) - 32 * q6k_scaled_bsums(sc, &x[b]);
    s += (double)(f16_table[blk[208] | (blk[209] << 8)] * x[b].d) * isum;
  }
  return (float)s;
}

void matmul_rows_kquant_avx2(const matmul_args *a, int r0, int r1) {
  kquant_rows(a, r0, r1, a->dtype == DT_Q4_K ? dot_q4k_avx2 : dot_q6k_avx2);
}

#pragma GCC pop_options
#else
void matmul_rows_kquant_avx2(const matmul_args *a, int r0, int r1) { matmul_rows_kquant_generic(a, r0, r1); }
#endif
