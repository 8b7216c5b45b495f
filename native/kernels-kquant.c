// Q4_K and Q6_K weights as stored (llama.cpp's 256-value super-blocks) times activations in Q8_K,
// the generic C path (the AVX2 and AVX-512 ones are kernels-kquant-avx2.c and -avx512.c).
// All compute every super-block's integer sums exactly and then, in the same order as the
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

