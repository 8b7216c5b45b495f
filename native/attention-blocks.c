// The vector kernels of attention (attention.c, attention-full.c): the block kernels that score
// a pass of keys and add a pass of values for a group of query rows (AVX-512, AVX2, generic C;
// one family per head size and CPU, see attn_block_level), and the softmax's vector steps
// (attention-vec.h). Kept apart from attention.c, which plans the work: tiles, blocks, passes
// and the online softmax.
#include <math.h>
#include <stddef.h>

#include "attention.h"
#include "attention-blocks.h"
#include "attention-vec.h"
#include "kv-types.h"

#if defined(__x86_64__)
#include <immintrin.h>
#include "vecmath.h"
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
static void axpy_f32(float *y, float a, const float *x, int n) {
  __m256 av = _mm256_set1_ps(a);
  int d = 0;
  for (; d + 8 <= n; d += 8) _mm256_storeu_ps(y + d, _mm256_fmadd_ps(av, _mm256_loadu_ps(x + d), _mm256_loadu_ps(y + d)));
  for (; d < n; d++) y[d] += a * x[d];
}
/* scores[j] = exp(scores[j] - max) for j in [lo, hi]; returns their sum in double. */
static double exp_sum_f32(float *scores, int lo, int hi, float max) {
  const __m256 m = _mm256_set1_ps(max);
  __m256d sum = _mm256_setzero_pd();
  int j = lo;
  for (; j + 8 <= hi + 1; j += 8) {
    const __m256 e = exp256_ps(_mm256_sub_ps(_mm256_loadu_ps(scores + j), m));
    _mm256_storeu_ps(scores + j, e);
    sum = _mm256_add_pd(sum, _mm256_add_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(e)), _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1))));
  }
  double lanes[4];
  _mm256_storeu_pd(lanes, sum);
  double total = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
  for (; j <= hi; j++) {
    scores[j] = expf(scores[j] - max);
    total += scores[j];
  }
  return total;
}
static float max_f32(const float *s, int n) {
  __m256 m = _mm256_set1_ps(-INFINITY);
  int j = 0;
  for (; j + 8 <= n; j += 8) m = _mm256_max_ps(m, _mm256_loadu_ps(s + j));
  float lanes[8], r = -INFINITY;
  _mm256_storeu_ps(lanes, m);
  for (int l = 0; l < 8; l++) r = lanes[l] > r ? lanes[l] : r;
  for (; j < n; j++) r = s[j] > r ? s[j] : r;
  return r;
}
static void scale_f32(float *s, int n, float f) {
  const __m256 fv = _mm256_set1_ps(f);
  int j = 0;
  for (; j + 8 <= n; j += 8) _mm256_storeu_ps(s + j, _mm256_mul_ps(_mm256_loadu_ps(s + j), fv));
  for (; j < n; j++) s[j] *= f;
}

/* The AVX2 block kernels: as the AVX-512 ones with 8-lane chains (tree: lanes pairwise, then
   pairs, then the two halves), two rows by four keys at a time. */
static inline __attribute__((always_inline)) __m256 reduce8_256(const __m256 v[8]) {
  const __m256 u0 = _mm256_hadd_ps(_mm256_hadd_ps(v[0], v[1]), _mm256_hadd_ps(v[2], v[3]));
  const __m256 u1 = _mm256_hadd_ps(_mm256_hadd_ps(v[4], v[5]), _mm256_hadd_ps(v[6], v[7]));
  /* Lane n holds the sum of v[n]. */
  return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
}

static inline __attribute__((always_inline)) __m256 load_kv_256(const void *row, int d, int type) {
  if (type == KV_F16) return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)row + d)));
  if (type == KV_BF16)
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)((const uint16_t *)row + d))), 16));
  return _mm256_loadu_ps((const float *)row + d);
}

static inline __attribute__((always_inline)) void scores_2x4_256(const float *const *q, int R, const void *const *k, int nk, int hd,
                                                                 float scale, float *const *out, int type, size_t pf, int decode) {
  __m256 acc[8];
  for (int i = 0; i < 8; i++) acc[i] = _mm256_setzero_ps();
  if (decode) { /* key after key, as scores_4x4_512 does for a decode step (the same FMAs per accumulator) */
    #pragma GCC unroll 4
    for (int i = 0; i < 4; i++) {
      __m256 a[2];
      for (int r = 0; r < R; r++) a[r] = _mm256_setzero_ps();
      for (int d = 0; d < hd; d += 8) {
        if (d % 16 == 0) _mm_prefetch((const char *)k[i] + (size_t)d * (type == KV_F32 ? 4 : 2) + 2 * pf, _MM_HINT_T0);
        const __m256 kv = load_kv_256(k[i], d, type);
        for (int r = 0; r < R; r++) a[r] = _mm256_fmadd_ps(_mm256_loadu_ps(q[r] + d), kv, a[r]);
      }
      for (int r = 0; r < R; r++) acc[4 * r + i] = a[r];
    }
  } else for (int d = 0; d < hd; d += 8) {
    const size_t at = (size_t)d * (type == KV_F32 ? 4 : 2) + pf;
    if (d % 16 == 0)
      for (int i = 0; i < 4; i++) _mm_prefetch((const char *)k[i] + at, _MM_HINT_T0);
    const __m256 k0 = load_kv_256(k[0], d, type), k1 = load_kv_256(k[1], d, type), k2 = load_kv_256(k[2], d, type), k3 = load_kv_256(k[3], d, type);
    for (int r = 0; r < R; r++) {
      const __m256 qv = _mm256_loadu_ps(q[r] + d);
      acc[4 * r] = _mm256_fmadd_ps(qv, k0, acc[4 * r]);
      acc[4 * r + 1] = _mm256_fmadd_ps(qv, k1, acc[4 * r + 1]);
      acc[4 * r + 2] = _mm256_fmadd_ps(qv, k2, acc[4 * r + 2]);
      acc[4 * r + 3] = _mm256_fmadd_ps(qv, k3, acc[4 * r + 3]);
    }
  }
  float sums[8];
  _mm256_storeu_ps(sums, reduce8_256(acc));
  for (int r = 0; r < R; r++)
    for (int kk = 0; kk < nk; kk++) out[r][kk] = sums[4 * r + kk] * scale;
}

static inline __attribute__((always_inline)) void scores_typed_256(const float *const *q, int rows, const void *const *k, int nk, int hd,
                                                                   float scale, float *const *out, int type, size_t pf) {
  for (int r0 = 0; r0 < rows; r0 += 2) {
    const int R = rows - r0 < 2 ? rows - r0 : 2;
    for (int k0 = 0; k0 < nk; k0 += 4) {
      const int n = nk - k0 < 4 ? nk - k0 : 4;
      const void *kq[4];
      for (int i = 0; i < 4; i++) kq[i] = k[k0 + (i < n ? i : n - 1)];
      float *o[2];
      for (int r = 0; r < R; r++) o[r] = out[r0 + r] + k0;
      if (rows <= 2 && R == 2) scores_2x4_256(q + r0, 2, kq, n, hd, scale, o, type, pf, 1);
      else if (rows <= 2) scores_2x4_256(q + r0, 1, kq, n, hd, scale, o, type, pf, 1);
      else if (R == 2) scores_2x4_256(q + r0, 2, kq, n, hd, scale, o, type, pf, 0);
      else scores_2x4_256(q + r0, 1, kq, n, hd, scale, o, type, pf, 0);
    }
  }
}

static void scores_block_256(const float *const *q, int rows, const void *const *k, int nk, int hd, float scale, float *const *out, int type, size_t pf) {
  if (type == KV_F16) scores_typed_256(q, rows, k, nk, hd, scale, out, KV_F16, pf);
  else if (type == KV_BF16) scores_typed_256(q, rows, k, nk, hd, scale, out, KV_BF16, pf);
  else scores_typed_256(q, rows, k, nk, hd, scale, out, KV_F32, pf);
}

static inline __attribute__((always_inline)) void values_rows_256(float *const *acc, const float *const *p, int R, const void *const *v, int nk,
                                                                  int d, int NV, int type, size_t pf) {
  __m256 o[2][4];
  for (int r = 0; r < R; r++)
    for (int u = 0; u < NV; u++) o[r][u] = _mm256_loadu_ps(acc[r] + d + 8 * u);
  for (int j = 0; j < nk; j++) {
    __m256 vv[4];
    for (int u = 0; u < NV; u++) {
      if ((d + 8 * u) % 16 == 0) _mm_prefetch((const char *)v[j] + (size_t)(d + 8 * u) * (type == KV_F32 ? 4 : 2) + pf, _MM_HINT_T0);
      vv[u] = load_kv_256(v[j], d + 8 * u, type);
    }
    for (int r = 0; r < R; r++) {
      const __m256 pr = _mm256_set1_ps(p[r][j]);
      for (int u = 0; u < NV; u++) o[r][u] = _mm256_fmadd_ps(pr, vv[u], o[r][u]);
    }
  }
  for (int r = 0; r < R; r++)
    for (int u = 0; u < NV; u++) _mm256_storeu_ps(acc[r] + d + 8 * u, o[r][u]);
}

/* acc += Σ_j p[j] · v[j] for one row of a decode step, each value row read front to back: the
   row's sums stay in L1 (sixteen ymm cannot hold them), the same FMAs in the same order as
   values_rows_256. */
static inline __attribute__((always_inline)) void values_row_sequential_256(float *acc, const float *p, const void *const *v, int nk, int hd, int type, size_t pf) {
  for (int j = 0; j < nk; j++) {
    const __m256 pj = _mm256_set1_ps(p[j]);
    for (int d = 0; d < hd; d += 8) {
      if (pf && d % 16 == 0) _mm_prefetch((const char *)v[j] + (size_t)d * (type == KV_F32 ? 4 : 2) + 2 * pf, _MM_HINT_T0);
      _mm256_storeu_ps(acc + d, _mm256_fmadd_ps(pj, load_kv_256(v[j], d, type), _mm256_loadu_ps(acc + d)));
    }
  }
}

static inline __attribute__((always_inline)) void values_typed_256(float *const *acc, const float *const *p, int rows, const void *const *v, int nk,
                                                                   int hd, int type, size_t pf) {
  if (rows <= 2) { /* a decode step */
    for (int r = 0; r < rows; r++) values_row_sequential_256(acc[r], p[r], v, nk, hd, type, r == 0 ? pf : 0);
    return;
  }
  for (int r0 = 0; r0 < rows; r0 += 2) {
    const int R = rows - r0 < 2 ? rows - r0 : 2;
    int d = 0;
    for (; d + 32 <= hd; d += 32) {
      if (R == 2) values_rows_256(acc + r0, p + r0, 2, v, nk, d, 4, type, pf);
      else values_rows_256(acc + r0, p + r0, 1, v, nk, d, 4, type, pf);
    }
    for (; d < hd; d += 8) values_rows_256(acc + r0, p + r0, R, v, nk, d, 1, type, pf);
  }
}

static void values_block_256(float *const *acc, const float *const *p, int rows, const void *const *v, int nk, int hd, int type, size_t pf) {
  if (type == KV_F16) values_typed_256(acc, p, rows, v, nk, hd, KV_F16, pf);
  else if (type == KV_BF16) values_typed_256(acc, p, rows, v, nk, hd, KV_BF16, pf);
  else values_typed_256(acc, p, rows, v, nk, hd, KV_F32, pf);
}
#pragma GCC pop_options

/* AVX-512 axpy (head sizes that are a multiple of 16) and the attention block kernels. */
#pragma GCC push_options
#pragma GCC target("avx512f,avx2,fma,f16c")
static void axpy_f32_512(float *y, float a, const float *x, int n) {
  const __m512 av = _mm512_set1_ps(a);
  for (int d = 0; d < n; d += 16) _mm512_storeu_ps(y + d, _mm512_fmadd_ps(av, _mm512_loadu_ps(x + d), _mm512_loadu_ps(y + d)));
}

/* The block kernels of attention_run. Every score is one 16-lane FMA chain over the head's
   dimensions, summed by the same halving tree (lane i + i+8, + i+4, + i+2, + i+1) whichever
   tile, row group or key quad it is computed in, so a query's bits never depend on how the
   prompt was cut. Sixteen chains at once (four rows by four keys): each load serves four FMAs. */
static inline __attribute__((always_inline)) __m512 reduce16_512(const __m512 v[16]) {
  __m512 w[8], x[4], y[2];
  for (int p = 0; p < 8; p++)
    w[p] = _mm512_add_ps(_mm512_shuffle_f32x4(v[2 * p], v[2 * p + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                         _mm512_shuffle_f32x4(v[2 * p], v[2 * p + 1], _MM_SHUFFLE(3, 2, 3, 2)));
  for (int p = 0; p < 4; p++)
    x[p] = _mm512_add_ps(_mm512_shuffle_f32x4(w[2 * p], w[2 * p + 1], _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm512_shuffle_f32x4(w[2 * p], w[2 * p + 1], _MM_SHUFFLE(3, 1, 3, 1)));
  for (int p = 0; p < 2; p++)
    y[p] = _mm512_add_ps(_mm512_shuffle_ps(x[2 * p], x[2 * p + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                         _mm512_shuffle_ps(x[2 * p], x[2 * p + 1], _MM_SHUFFLE(3, 2, 3, 2)));
  /* Lane 4g + p holds the sum of v[4p + g]. */
  return _mm512_add_ps(_mm512_shuffle_ps(y[0], y[1], _MM_SHUFFLE(2, 0, 2, 0)), _mm512_shuffle_ps(y[0], y[1], _MM_SHUFFLE(3, 1, 3, 1)));
}

/* Sixteen elements from d of a key or value row stored as `type` (kv-types.h), as floats:
   widening is exact, so converting as the row is read gives a widened row's results. */
static inline __attribute__((always_inline)) __m512 load_kv_512(const void *row, int d, int type) {
  if (type == KV_F16) return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)((const uint16_t *)row + d)));
  if (type == KV_BF16)
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)((const uint16_t *)row + d))), 16));
  return _mm512_loadu_ps((const float *)row + d);
}

/* out[r][kk] = scale · q[r] · k[kk] for R rows and four keys (the first nk stored). Each
   accumulator's FMAs run over d in order either way; only the order of the loads differs. */
static inline __attribute__((always_inline)) void scores_4x4_512(const float *const *q, int R, const void *const *k, int nk, int hd,
                                                                 float scale, float *const *out, int type, size_t pf) {
  __m512 acc[16];
  for (int i = 0; i < 16; i++) acc[i] = _mm512_setzero_ps();
  if (R <= 2) {
    /* A decode step (a query head pair): key after key, each row front to back, which the
       hardware prefetcher follows; four rows read side by side left it behind (one thread over a
       178 MB f32 cache, with the values pass below: 9.7 -> 14 GB/s). Software prefetch two passes
       ahead. */
    #pragma GCC unroll 4
    for (int i = 0; i < 4; i++) {
      __m512 a[2];
      for (int r = 0; r < R; r++) a[r] = _mm512_setzero_ps();
      for (int d = 0; d < hd; d += 16) {
        if (d % 32 == 0) _mm_prefetch((const char *)k[i] + (size_t)d * (type == KV_F32 ? 4 : 2) + 2 * pf, _MM_HINT_T0);
        const __m512 kv = load_kv_512(k[i], d, type);
        for (int r = 0; r < R; r++) a[r] = _mm512_fmadd_ps(_mm512_loadu_ps(q[r] + d), kv, a[r]);
      }
      for (int r = 0; r < R; r++) acc[4 * r + i] = a[r];
    }
  } else {
    /* Prompt tiles: each load of a key serves four rows. */
    for (int d = 0; d < hd; d += 16) {
      const size_t at = (size_t)d * (type == KV_F32 ? 4 : 2) + pf; /* the same bytes of the rows a pass ahead */
      for (int i = 0; i < 4; i++) _mm_prefetch((const char *)k[i] + at, _MM_HINT_T0);
      const __m512 k0 = load_kv_512(k[0], d, type), k1 = load_kv_512(k[1], d, type), k2 = load_kv_512(k[2], d, type), k3 = load_kv_512(k[3], d, type);
      for (int r = 0; r < R; r++) {
        const __m512 qv = _mm512_loadu_ps(q[r] + d);
        acc[4 * r] = _mm512_fmadd_ps(qv, k0, acc[4 * r]);
        acc[4 * r + 1] = _mm512_fmadd_ps(qv, k1, acc[4 * r + 1]);
        acc[4 * r + 2] = _mm512_fmadd_ps(qv, k2, acc[4 * r + 2]);
        acc[4 * r + 3] = _mm512_fmadd_ps(qv, k3, acc[4 * r + 3]);
      }
    }
  }
  float sums[16];
  _mm512_storeu_ps(sums, reduce16_512(acc));
  for (int r = 0; r < R; r++)
    for (int kk = 0; kk < nk; kk++) out[r][kk] = sums[4 * kk + r] * scale;
}

static inline __attribute__((always_inline)) void scores_typed_512(const float *const *q, int rows, const void *const *k, int nk, int hd,
                                                                   float scale, float *const *out, int type, size_t pf) {
  for (int r0 = 0; r0 < rows; r0 += 4) {
    const int R = rows - r0 < 4 ? rows - r0 : 4;
    for (int k0 = 0; k0 < nk; k0 += 4) {
      const int n = nk - k0 < 4 ? nk - k0 : 4;
      const void *kq[4];
      for (int i = 0; i < 4; i++) kq[i] = k[k0 + (i < n ? i : n - 1)];
      float *o[4];
      for (int r = 0; r < R; r++) o[r] = out[r0 + r] + k0;
      switch (R) {
        case 4: scores_4x4_512(q + r0, 4, kq, n, hd, scale, o, type, pf); break;
        case 3: scores_4x4_512(q + r0, 3, kq, n, hd, scale, o, type, pf); break;
        case 2: scores_4x4_512(q + r0, 2, kq, n, hd, scale, o, type, pf); break;
        default: scores_4x4_512(q + r0, 1, kq, n, hd, scale, o, type, pf); break;
      }
    }
  }
}

static void scores_block_512(const float *const *q, int rows, const void *const *k, int nk, int hd, float scale, float *const *out, int type, size_t pf) {
  if (type == KV_F16) scores_typed_512(q, rows, k, nk, hd, scale, out, KV_F16, pf);
  else if (type == KV_BF16) scores_typed_512(q, rows, k, nk, hd, scale, out, KV_BF16, pf);
  else scores_typed_512(q, rows, k, nk, hd, scale, out, KV_F32, pf);
}

/* acc[r] += Σ_j p[r][j] · v[j], each element one FMA after another in key order (axpy's
   arithmetic), for R rows and NV vectors of the head at a time, the sums held in registers. */
static inline __attribute__((always_inline)) void values_rows_512(float *const *acc, const float *const *p, int R, const void *const *v, int nk,
                                                                  int d, int NV, int type, size_t pf) {
  __m512 o[4][4];
  for (int r = 0; r < R; r++)
    for (int u = 0; u < NV; u++) o[r][u] = _mm512_loadu_ps(acc[r] + d + 16 * u);
  for (int j = 0; j < nk; j++) {
    __m512 vv[4];
    for (int u = 0; u < NV; u++) {
      _mm_prefetch((const char *)v[j] + (size_t)(d + 16 * u) * (type == KV_F32 ? 4 : 2) + pf, _MM_HINT_T0);
      vv[u] = load_kv_512(v[j], d + 16 * u, type);
    }
    for (int r = 0; r < R; r++) {
      const __m512 pr = _mm512_set1_ps(p[r][j]);
      for (int u = 0; u < NV; u++) o[r][u] = _mm512_fmadd_ps(pr, vv[u], o[r][u]);
    }
  }
  for (int r = 0; r < R; r++)
    for (int u = 0; u < NV; u++) _mm512_storeu_ps(acc[r] + d + 16 * u, o[r][u]);
}

/* acc += Σ_j p[j] · v[j] for one row, 256 elements at a time held in registers, so the value
   rows are read front to back (the same FMAs in the same order as values_rows_512); the second
   row of a pair reads them again from L1. */
static inline __attribute__((always_inline)) void values_row_sequential_512(float *acc, const float *p, const void *const *v, int nk, int hd, int type, size_t pf) {
  int d = 0;
  for (; d + 256 <= hd; d += 256) {
    __m512 o[16];
    for (int u = 0; u < 16; u++) o[u] = _mm512_loadu_ps(acc + d + 16 * u);
    for (int j = 0; j < nk; j++) {
      const __m512 pj = _mm512_set1_ps(p[j]);
      for (int u = 0; u < 16; u++) {
        if (pf && u % 2 == 0) _mm_prefetch((const char *)v[j] + (size_t)(d + 16 * u) * (type == KV_F32 ? 4 : 2) + 2 * pf, _MM_HINT_T0);
        o[u] = _mm512_fmadd_ps(pj, load_kv_512(v[j], d + 16 * u, type), o[u]);
      }
    }
    for (int u = 0; u < 16; u++) _mm512_storeu_ps(acc + d + 16 * u, o[u]);
  }
  for (; d < hd; d += 16) values_rows_512(&acc, &p, 1, v, nk, d, 1, type, 0);
}

static inline __attribute__((always_inline)) void values_typed_512(float *const *acc, const float *const *p, int rows, const void *const *v, int nk,
                                                                   int hd, int type, size_t pf) {
  if (rows <= 2) { /* a decode step */
    for (int r = 0; r < rows; r++) values_row_sequential_512(acc[r], p[r], v, nk, hd, type, r == 0 ? pf : 0);
    return;
  }
  for (int r0 = 0; r0 < rows; r0 += 4) {
    const int R = rows - r0 < 4 ? rows - r0 : 4;
    int d = 0;
    for (; d + 64 <= hd; d += 64) {
      switch (R) {
        case 4: values_rows_512(acc + r0, p + r0, 4, v, nk, d, 4, type, pf); break;
        case 3: values_rows_512(acc + r0, p + r0, 3, v, nk, d, 4, type, pf); break;
        case 2: values_rows_512(acc + r0, p + r0, 2, v, nk, d, 4, type, pf); break;
        default: values_rows_512(acc + r0, p + r0, 1, v, nk, d, 4, type, pf); break;
      }
    }
    for (; d < hd; d += 16) values_rows_512(acc + r0, p + r0, R, v, nk, d, 1, type, pf);
  }
}

static void values_block_512(float *const *acc, const float *const *p, int rows, const void *const *v, int nk, int hd, int type, size_t pf) {
  if (type == KV_F16) values_typed_512(acc, p, rows, v, nk, hd, KV_F16, pf);
  else if (type == KV_BF16) values_typed_512(acc, p, rows, v, nk, hd, KV_BF16, pf);
  else values_typed_512(acc, p, rows, v, nk, hd, KV_F32, pf);
}
#pragma GCC pop_options
#endif
/* Set once by attention_init from the addon's kernel choice (GEMMA3_NATIVE_KERNELS included). */
static int have_avx2 = 0;
static int have_avx512 = 0;

void attention_init(int level) {
  kv_types_init(level);
  attention_full_init(level);
#if defined(__x86_64__)
  have_avx2 = level >= 1;
  have_avx512 = level >= 2;
#else
  (void)level;
#endif
}

static float dot_generic(const float *a, const float *b, int n) {
  float r = 0.0f;
  for (int d = 0; d < n; d++) r += a[d] * b[d];
  return r;
}
static void axpy_generic(float *y, float a, const float *x, int n) {
  for (int d = 0; d < n; d++) y[d] += a * x[d];
}
static double exp_sum_generic(float *scores, int lo, int hi, float max) {
  double sum = 0.0;
  for (int j = lo; j <= hi; j++) {
    scores[j] = expf(scores[j] - max);
    sum += scores[j];
  }
  return sum;
}

void attn_axpy(float *y, float a, const float *x, int n) {
#if defined(__x86_64__)
  if (have_avx512 && n % 16 == 0) {
    axpy_f32_512(y, a, x, n);
    return;
  }
  if (have_avx2) {
    axpy_f32(y, a, x, n);
    return;
  }
#endif
  axpy_generic(y, a, x, n);
}
double attn_exp_sum(float *scores, int lo, int hi, float max) {
#if defined(__x86_64__)
  if (have_avx2) return exp_sum_f32(scores, lo, hi, max);
#endif
  return exp_sum_generic(scores, lo, hi, max);
}
/* The largest of s[0..n) (exact in any order) and s[j] *= f: the softmax steps around exp_sum. */
float attn_row_max(const float *s, int n) {
#if defined(__x86_64__)
  if (have_avx2) return max_f32(s, n);
#endif
  float max = -INFINITY;
  for (int j = 0; j < n; j++) if (s[j] > max) max = s[j];
  return max;
}
void attn_row_scale(float *s, int n, float f) {
#if defined(__x86_64__)
  if (have_avx2) {
    scale_f32(s, n, f);
    return;
  }
#endif
  for (int j = 0; j < n; j++) s[j] *= f;
}

/* The kernel family for a head size: 2 AVX-512, 1 AVX2, 0 generic C. Fixed per model and CPU,
   so the prompt and decode paths always share their arithmetic. */
int attn_block_level(int hd) {
#if defined(__x86_64__)
  if (have_avx512 && hd % 16 == 0) return 2;
  if (have_avx2 && hd % 8 == 0) return 1;
#endif
  (void)hd;
  return 0;
}

/* out[r][kk] = scale · q[r] · k[kk], rows r < rows, keys kk < nk. */
/* Key rows k[kk] are stored as `type`; generic C reads them widened to floats (type KV_F32). */
/* pf: how far ahead (bytes) the rows of the next pass lie, for prefetching as the kernels read. */
void attn_scores_block(int level, const float *const *q, int rows, const void *const *k, int nk, int hd, float scale, float *const *out, int type,
                         size_t pf) {
#if defined(__x86_64__)
  if (level == 2) {
    scores_block_512(q, rows, k, nk, hd, scale, out, type, pf);
    return;
  }
  if (level == 1) {
    scores_block_256(q, rows, k, nk, hd, scale, out, type, pf);
    return;
  }
#endif
  (void)level;
  (void)type;
  (void)pf;
  for (int r = 0; r < rows; r++)
    for (int kk = 0; kk < nk; kk++) out[r][kk] = dot_generic(q[r], (const float *)k[kk], hd) * scale;
}

/* acc[r] += Σ_j p[r][j] · v[j], keys in order. */
void attn_values_block(int level, float *const *acc, const float *const *p, int rows, const void *const *v, int nk, int hd, int type, size_t pf) {
#if defined(__x86_64__)
  if (level == 2) {
    values_block_512(acc, p, rows, v, nk, hd, type, pf);
    return;
  }
  if (level == 1) {
    values_block_256(acc, p, rows, v, nk, hd, type, pf);
    return;
  }
#endif
  (void)level;
  (void)type;
  (void)pf;
  for (int r = 0; r < rows; r++)
    for (int j = 0; j < nk; j++) axpy_generic(acc[r], p[r][j], (const float *)v[j], hd);
}
