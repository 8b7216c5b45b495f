// Generic C kernels (the line-for-line twin of src/backend/js-backend.ts), helpers shared by
// the SIMD versions, and runtime CPU detection.
#include "kernels.h"

#include <math.h>
#include <string.h>

float f16_table[65536];

void init_f16_table(void) {
  for (int h = 0; h < 65536; h++) {
    int sign = h & 0x8000 ? -1 : 1;
    int exp = (h >> 10) & 0x1f;
    int frac = h & 0x3ff;
    float v;
    if (exp == 0) v = sign * (float)frac * ldexpf(1.0f, -24);
    else if (exp == 31) v = frac ? NAN : sign * INFINITY;
    else v = sign * (1.0f + frac / 1024.0f) * ldexpf(1.0f, exp - 15);
    f16_table[h] = v;
  }
}

size_t row_bytes(int dtype, int cols) {
  switch (dtype) {
    case DT_F32: return (size_t)cols * 4;
    case DT_F16:
    case DT_BF16: return (size_t)cols * 2;
    case DT_Q8_0:
    case DT_Q8_0_X16: return (size_t)(cols / 32) * 34;
    case DT_Q4_0:
    case DT_Q4_0_X16: return (size_t)(cols / 32) * 18;
    case DT_Q4_K:
    case DT_Q4_K_X16: return (size_t)(cols / QK_K) * Q4_K_BLOCK_BYTES;
    case DT_Q6_K:
    case DT_Q6_K_X16: return (size_t)(cols / QK_K) * Q6_K_BLOCK_BYTES;
    case DT_Q5_0: return (size_t)(cols / 32) * Q5_0_BLOCK_BYTES;
    case DT_Q5_1: return (size_t)(cols / 32) * Q5_1_BLOCK_BYTES;
    case DT_Q5_K:
    case DT_Q5_K_X16: return (size_t)(cols / QK_K) * Q5_K_BLOCK_BYTES;
  }
  return 0;
}

/* IEEE half from float with round-to-nearest-even, as GGML_FP32_TO_FP16 on x86 (F16C). */
static uint16_t f32_to_f16(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000;
  int32_t exp = (int32_t)((x >> 23) & 0xff) - 127 + 15;
  uint32_t mant = x & 0x7fffff;
  if (((x >> 23) & 0xff) == 0xff) return (uint16_t)(sign | 0x7c00 | (mant ? 0x200 : 0));
  if (exp >= 31) return (uint16_t)(sign | 0x7c00);
  if (exp <= 0) {
    if (exp < -10) return (uint16_t)sign;
    mant |= 0x800000;
    int shift = 14 - exp;
    uint32_t half = mant >> shift;
    uint32_t rem = mant & ((1u << shift) - 1);
    uint32_t mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1))) half++;
    return (uint16_t)(sign | half);
  }
  uint32_t half = ((uint32_t)exp << 10) | (mant >> 13);
  uint32_t rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (half & 1))) half++;
  return (uint16_t)(sign | half);
}

static int quantize_simd = 0;

void set_quantize_simd(int on) { quantize_simd = on; }

uint16_t f32_to_f16_bits(float f) { return f32_to_f16(f); }

void quantize_row_q8(const float *x, q8_block *y, int cols) {
#if defined(__x86_64__)
  if (quantize_simd) {
    quantize_row_q8_avx512(x, y, cols);
    return;
  }
#endif
  for (int b = 0; b < cols / 32; b++) {
    const float *xb = x + b * 32;
    float amax = 0.0f;
    for (int j = 0; j < 32; j++) {
      float v = fabsf(xb[j]);
      if (v > amax) amax = v;
    }
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    int32_t sum = 0;
    for (int j = 0; j < 32; j++) {
      float v = xb[j] * id;
      int q = (int)roundf(v);
      y[b].qs[j] = (int8_t)q;
      sum += q;
    }
    y[b].d = f16_table[f32_to_f16(d)];
    y[b].sum = sum;
  }
}

static inline float bf16_to_f32(uint16_t h) {
  uint32_t u = (uint32_t)h << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}

static float dot_float_row(const uint8_t *row, int dtype, const float *x, int cols) {
  double s = 0.0;
  if (dtype == DT_F32) {
    const float *w = (const float *)row;
    for (int c = 0; c < cols; c++) s += (double)w[c] * x[c];
  } else if (dtype == DT_BF16) {
    const uint16_t *w = (const uint16_t *)row;
    for (int c = 0; c < cols; c++) s += (double)bf16_to_f32(w[c]) * x[c];
  } else {
    const uint16_t *w = (const uint16_t *)row;
    for (int c = 0; c < cols; c++) s += (double)f16_table[w[c]] * x[c];
  }
  return (float)s;
}

/* Σ_blocks d_w · d_x · Σ_j w_j x_j with exact integer block sums. */
static float dot_quant_row(const uint8_t *row, int dtype, const q8_block *x, int cols) {
  double s = 0.0;
  const int nb = cols / 32;
  for (int b = 0; b < nb; b++) {
    int32_t isum = 0;
    float dw;
    if (dtype == DT_Q8_0) {
      const uint8_t *blk = row + (size_t)b * 34;
      dw = f16_table[blk[0] | (blk[1] << 8)];
      const int8_t *q = (const int8_t *)(blk + 2);
      for (int j = 0; j < 32; j++) isum += q[j] * x[b].qs[j];
    } else {
      const uint8_t *blk = row + (size_t)b * 18;
      dw = f16_table[blk[0] | (blk[1] << 8)];
      const uint8_t *q = blk + 2;
      for (int j = 0; j < 16; j++) {
        isum += ((q[j] & 0x0f) - 8) * x[b].qs[j];
        isum += ((q[j] >> 4) - 8) * x[b].qs[j + 16];
      }
    }
    s += (double)(dw * x[b].d) * isum;
  }
  return (float)s;
}

void matmul_rows_generic(const matmul_args *a, int r0, int r1) {
  const size_t rb = row_bytes(a->dtype, a->cols);
  const int quant = a->dtype == DT_Q8_0 || a->dtype == DT_Q4_0;
  const int nb = a->cols / 32;
  for (int r = r0; r < r1; r++) {
    const uint8_t *row = a->w + (size_t)r * rb;
    for (int n = 0; n < a->batch; n++) {
      float v = quant ? dot_quant_row(row, a->dtype, (const q8_block *)a->x + (size_t)n * nb, a->cols)
                      : dot_float_row(row, a->dtype, (const float *)a->x + (size_t)n * a->cols, a->cols);
      a->out[(size_t)n * a->out_stride + (r - a->row_start)] = v;
    }
  }
}

int cpu_has_avx2(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
#else
  return 0;
#endif
}

int cpu_has_avx_vnni(void) {
#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 11
  __builtin_cpu_init();
  return __builtin_cpu_supports("avxvnni") && cpu_has_avx2();
#else
  return 0;
#endif
}

int cpu_has_avx512(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
         __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512dq") && cpu_has_avx2();
#else
  return 0;
#endif
}
