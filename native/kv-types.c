/* KV cache storage types (kv-types.h). f16 goes through F16C (_mm256_cvtph_ps /
   _mm256_cvtps_ph, round to nearest even) on the AVX2 and AVX-512 levels and through the
   addon's half table / f32_to_f16_bits in generic C: both give the same bits, as test/
   native-kernels*.test.ts checks against the TypeScript rounding. bf16 is a 16-bit shift. */
#include "kv-types.h"

#include <string.h>

#include "kernels.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

static int use_f16c = 0;

void kv_types_init(int level) { use_f16c = level >= 1; }

static inline float bf16_bits_to_f32(uint16_t h) {
  const uint32_t x = (uint32_t)h << 16;
  float f;
  memcpy(&f, &x, 4);
  return f;
}

/* Round to nearest even; a NaN stays a quiet NaN (f32ToBf16 in src/formats/dtypes.ts). */
static inline uint16_t f32_to_bf16_bits(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  if ((x & 0x7f800000u) == 0x7f800000u && (x & 0x007fffffu) != 0) return (uint16_t)((x >> 16) | 0x40);
  return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

#if defined(__x86_64__)
#pragma GCC push_options
#pragma GCC target("avx2,f16c")
static void widen_f16_f16c(float *dst, const uint16_t *src, int n) {
  int i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
  for (; i < n; i++) dst[i] = f16_table[src[i]];
}
static void narrow_f16_f16c(uint16_t *dst, const float *src, int n) {
  int i = 0;
  for (; i + 8 <= n; i += 8)
    _mm_storeu_si128((__m128i *)(dst + i), _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  for (; i < n; i++) dst[i] = f32_to_f16_bits(src[i]);
}
static void widen_bf16_avx2(float *dst, const uint16_t *src, int n) {
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256i wide = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(src + i)));
    _mm256_storeu_ps(dst + i, _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16)));
  }
  for (; i < n; i++) dst[i] = bf16_bits_to_f32(src[i]);
}
static void round_f16_f16c(float *x, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(x + i, _mm256_cvtph_ps(_mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)));
  for (; i < n; i++) x[i] = f16_table[f32_to_f16_bits(x[i])];
}
#pragma GCC pop_options
#endif

void kv_widen(float *dst, const uint16_t *src, int n, int type) {
#if defined(__x86_64__)
  if (use_f16c) {
    if (type == KV_F16) widen_f16_f16c(dst, src, n);
    else widen_bf16_avx2(dst, src, n);
    return;
  }
#endif
  if (type == KV_F16) {
    for (int i = 0; i < n; i++) dst[i] = f16_table[src[i]];
  } else {
    for (int i = 0; i < n; i++) dst[i] = bf16_bits_to_f32(src[i]);
  }
}

void kv_narrow(uint16_t *dst, const float *src, int n, int type) {
  if (type == KV_F16) {
#if defined(__x86_64__)
    if (use_f16c) {
      narrow_f16_f16c(dst, src, n);
      return;
    }
#endif
    for (int i = 0; i < n; i++) dst[i] = f32_to_f16_bits(src[i]);
  } else {
    for (int i = 0; i < n; i++) dst[i] = f32_to_bf16_bits(src[i]);
  }
}

void kv_round(float *x, size_t n, int type) {
  if (type == KV_F16) {
#if defined(__x86_64__)
    if (use_f16c) {
      round_f16_f16c(x, n);
      return;
    }
#endif
    for (size_t i = 0; i < n; i++) x[i] = f16_table[f32_to_f16_bits(x[i])];
  } else if (type == KV_BF16) {
    for (size_t i = 0; i < n; i++) x[i] = bf16_bits_to_f32(f32_to_bf16_bits(x[i]));
  }
}
