// ggml's reference K-quant quantizers (quantize_row_q4_K_ref, quantize_row_q5_K_ref,
// quantize_row_q6_K_ref, no importance matrix) in C, for `gemma3 convert --type q4_k_m | q5_k_m | q6_k`: the TypeScript twins in
// src/formats/quant.ts write the same bytes (test/native-kernels.test.ts) but run at 1-2 M values
// per second, an hour for a 4B model. Built with -ffp-contract=off, like ggml's reference build,
// so every float operation rounds where the C source says.
#include "quantize-kquant.h"

#include <math.h>
#include <string.h>

#include "kernels.h"

#define GROUP_MAX_EPS 1e-15f

static inline int nearest_int(float fval) {
  float val = fval + 12582912.f;
  int32_t i;
  memcpy(&i, &val, 4);
  return (i & 0x007fffff) - 0x00400000;
}

static inline float half_to_float(uint16_t h) { return f16_table[h]; }

static inline void store_half(uint8_t *dst, float v) {
  const uint16_t h = f32_to_f16_bits(v);
  dst[0] = (uint8_t)(h & 0xff);
  dst[1] = (uint8_t)(h >> 8);
}

/* make_qkx2_quants: an asymmetric (scale, min) fit of n values to 0..nmax; *the_min = −min. */
static float fit_scale_min(int n, int nmax, const float *x, const float *weights, uint8_t *L, float *the_min, uint8_t *Laux,
                           float rmin, float rdelta, int nstep) {
  float min = x[0], max = x[0];
  float sum_w = weights[0];
  float sum_x = sum_w * x[0];
  for (int i = 1; i < n; i++) {
    if (x[i] < min) min = x[i];
    if (x[i] > max) max = x[i];
    const float w = weights[i];
    sum_w += w;
    sum_x += w * x[i];
  }
  if (min > 0) min = 0;
  if (max == min) {
    memset(L, 0, (size_t)n);
    *the_min = -min;
    return 0.f;
  }
  float iscale = nmax / (max - min);
  float scale = 1 / iscale;
  float best_error = 0;
  for (int i = 0; i < n; i++) {
    const int l = nearest_int(iscale * (x[i] - min));
    L[i] = (uint8_t)(l < 0 ? 0 : l > nmax ? nmax : l);
    const float diff = scale * L[i] + min - x[i];
    best_error += weights[i] * (diff * diff);
  }
  for (int is = 0; is <= nstep; is++) {
    iscale = (rmin + rdelta * is + nmax) / (max - min);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; i++) {
      int l = nearest_int(iscale * (x[i] - min));
      l = l < 0 ? 0 : l > nmax ? nmax : l;
      Laux[i] = (uint8_t)l;
      const float w = weights[i];
      sum_l += w * l;
      sum_l2 += w * l * l;
      sum_xl += w * l * x[i];
    }
    const float D = sum_w * sum_l2 - sum_l * sum_l;
    if (D > 0) {
      float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
      float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
      if (this_min > 0) {
        this_min = 0;
        this_scale = sum_xl / sum_l2;
      }
      float cur_error = 0;
      for (int i = 0; i < n; i++) {
        const float diff = this_scale * Laux[i] + this_min - x[i];
        cur_error += weights[i] * (diff * diff);
      }
      if (cur_error < best_error) {
        memcpy(L, Laux, (size_t)n);
        best_error = cur_error;
        scale = this_scale;
        min = this_min;
      }
    }
  }
  *the_min = -min;
  return scale;
}

static inline void scale_min_k4(int j, const uint8_t *q, uint8_t *d, uint8_t *m) {
  if (j < 4) {
    *d = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *d = (q[j + 4] & 0xf) | ((q[j - 4] >> 6) << 4);
    *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

/* quantize_row_q4_K_ref, or with five quantize_row_q5_K_ref (5-bit quants, the fit searching 16 scales from −0.5). */
static void quantize_scale_min_k(const float *x, uint8_t *y, size_t n, int five) {
  uint8_t L[QK_K], Laux[32];
  float weights[32], mins[8], scales[8];
  const int nmax = five ? 31 : 15;
  for (size_t b = 0; b < n / QK_K; b++, x += QK_K, y += five ? Q5_K_BLOCK_BYTES : Q4_K_BLOCK_BYTES) {
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; j++) {
      float sum_x2 = 0;
      for (int l = 0; l < 32; l++) sum_x2 += x[32 * j + l] * x[32 * j + l];
      const float av_x = sqrtf(sum_x2 / 32);
      for (int l = 0; l < 32; l++) weights[l] = av_x + fabsf(x[32 * j + l]);
      scales[j] = five ? fit_scale_min(32, 31, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, -0.5f, 0.1f, 15)
                       : fit_scale_min(32, 15, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, -1.f, 0.1f, 20);
      if (scales[j] > max_scale) max_scale = scales[j];
      if (mins[j] > max_min) max_min = mins[j];
    }
    const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    uint8_t *packed = y + 4;
    memset(packed, 0, 12);
    for (int j = 0; j < 8; j++) {
      uint8_t ls = (uint8_t)nearest_int(inv_scale * scales[j]);
      uint8_t lm = (uint8_t)nearest_int(inv_min * mins[j]);
      ls = ls < 63 ? ls : 63;
      lm = lm < 63 ? lm : 63;
      if (j < 4) {
        packed[j] = ls;
        packed[j + 4] = lm;
      } else {
        packed[j + 4] = (uint8_t)((ls & 0xf) | ((lm & 0xf) << 4));
        packed[j - 4] |= (uint8_t)((ls >> 4) << 6);
        packed[j] |= (uint8_t)((lm >> 4) << 6);
      }
    }
    store_half(y, max_scale / 63.f);
    store_half(y + 2, max_min / 63.f);
    const float d_all = half_to_float((uint16_t)(y[0] | (y[1] << 8)));
    const float dmin_all = half_to_float((uint16_t)(y[2] | (y[3] << 8)));
    for (int j = 0; j < 8; j++) {
      uint8_t sc, m;
      scale_min_k4(j, packed, &sc, &m);
      const float d = d_all * sc;
      if (!d) continue;
      const float dm = dmin_all * m;
      for (int ii = 0; ii < 32; ii++) {
        const int l = nearest_int((x[32 * j + ii] + dm) / d);
        L[32 * j + ii] = (uint8_t)(l < 0 ? 0 : l > nmax ? nmax : l);
      }
    }
    if (!five) {
      uint8_t *q = y + 16;
      for (int j = 0; j < QK_K; j += 64, q += 32) {
        for (int l = 0; l < 32; l++) q[l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 4));
      }
      continue;
    }
    /* Q5_K: bit 4 of value 64k + j at bit 2k of qh[j], of value 64k + 32 + j at bit 2k + 1. */
    uint8_t *qh = y + 16, *ql = y + 48;
    memset(qh, 0, 32);
    uint8_t m1 = 1, m2 = 2;
    for (int k = 0; k < QK_K; k += 64, ql += 32, m1 <<= 2, m2 <<= 2) {
      for (int j = 0; j < 32; j++) {
        int l1 = L[k + j], l2 = L[k + j + 32];
        if (l1 > 15) {
          l1 -= 16;
          qh[j] |= m1;
        }
        if (l2 > 15) {
          l2 -= 16;
          qh[j] |= m2;
        }
        ql[j] = (uint8_t)(l1 | (l2 << 4));
      }
    }
  }
}

void quantize_q4_k_ref(const float *x, uint8_t *y, size_t n) { quantize_scale_min_k(x, y, n, 0); }

void quantize_q5_k_ref(const float *x, uint8_t *y, size_t n) { quantize_scale_min_k(x, y, n, 1); }

/* make_qx_quants(n, nmax, x, L, rmse_type 1, no weights): symmetric, weights x², 19 candidate scales. */
static float fit_scale_symmetric(int n, int nmax, const float *x, int8_t *L) {
  float max = 0, amax = 0;
  for (int i = 0; i < n; i++) {
    const float ax = fabsf(x[i]);
    if (ax > amax) {
      amax = ax;
      max = x[i];
    }
  }
  if (amax < GROUP_MAX_EPS) {
    memset(L, 0, (size_t)n);
    return 0.f;
  }
  float iscale = -nmax / max;
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; i++) {
    int l = nearest_int(iscale * x[i]);
    l = l < -nmax ? -nmax : l > nmax - 1 ? nmax - 1 : l;
    L[i] = (int8_t)(l + nmax);
    const float w = x[i] * x[i];
    sumlx += w * x[i] * l;
    suml2 += w * l * l;
  }
  float scale = suml2 ? sumlx / suml2 : 0.0f;
  float best = scale * sumlx;
  for (int is = -9; is <= 9; is++) {
    if (is == 0) continue;
    iscale = -(nmax + 0.1f * is) / max;
    sumlx = suml2 = 0;
    for (int i = 0; i < n; i++) {
      int l = nearest_int(iscale * x[i]);
      l = l < -nmax ? -nmax : l > nmax - 1 ? nmax - 1 : l;
      const float w = x[i] * x[i];
      sumlx += w * x[i] * l;
      suml2 += w * l * l;
    }
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      for (int i = 0; i < n; i++) {
        int l = nearest_int(iscale * x[i]);
        L[i] = (int8_t)(nmax + (l < -nmax ? -nmax : l > nmax - 1 ? nmax - 1 : l));
      }
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

void quantize_q6_k_ref(const float *x, uint8_t *y, size_t n) {
  int8_t L[QK_K];
  float scales[QK_K / 16];
  for (size_t b = 0; b < n / QK_K; b++, x += QK_K, y += Q6_K_BLOCK_BYTES) {
    float max_scale = 0, max_abs_scale = 0;
    for (int ib = 0; ib < QK_K / 16; ib++) {
      const float scale = fit_scale_symmetric(16, 32, x + 16 * ib, L + 16 * ib);
      scales[ib] = scale;
      if (fabsf(scale) > max_abs_scale) {
        max_abs_scale = fabsf(scale);
        max_scale = scale;
      }
    }
    if (max_abs_scale < GROUP_MAX_EPS) {
      memset(y, 0, Q6_K_BLOCK_BYTES);
      continue;
    }
    const float iscale = -128.f / max_scale;
    store_half(y + 208, 1 / iscale);
    int8_t *sc = (int8_t *)(y + 192);
    for (int ib = 0; ib < QK_K / 16; ib++) {
      const int v = nearest_int(iscale * scales[ib]);
      sc[ib] = (int8_t)(v < 127 ? v : 127);
    }
    const float dh = half_to_float((uint16_t)(y[208] | (y[209] << 8)));
    for (int j = 0; j < QK_K / 16; j++) {
      const float d = dh * sc[j];
      if (!d) continue;
      for (int ii = 0; ii < 16; ii++) {
        int l = nearest_int(x[16 * j + ii] / d);
        l = l < -32 ? -32 : l > 31 ? 31 : l;
        L[16 * j + ii] = (int8_t)(l + 32);
      }
    }
    uint8_t *ql = y, *qh = y + 128;
    for (int j = 0; j < QK_K; j += 128, ql += 64, qh += 32) {
      for (int l = 0; l < 32; l++) {
        const uint8_t q1 = L[j + l] & 0xf, q2 = L[j + l + 32] & 0xf, q3 = L[j + l + 64] & 0xf, q4 = L[j + l + 96] & 0xf;
        ql[l] = (uint8_t)(q1 | (q3 << 4));
        ql[l + 32] = (uint8_t)(q2 | (q4 << 4));
        qh[l] = (uint8_t)((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) | ((L[j + l + 64] >> 4) << 4) | ((L[j + l + 96] >> 4) << 6));
      }
    }
  }
}
