// Attention of a chunk of queries over cached keys plus the chunk's own keys: the twin of
// src/model/attention.ts. Work items are (token, head) pairs split across the pool.
#include "attention.h"

#include <math.h>
#include <stdlib.h>

#include "pool.h"

#if defined(__x86_64__)
#include <immintrin.h>
#pragma GCC push_options
#pragma GCC target("avx2,fma")
static float dot_f32(const float *a, const float *b, int n) {
  __m256 acc = _mm256_setzero_ps();
  int d = 0;
  for (; d + 8 <= n; d += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + d), _mm256_loadu_ps(b + d), acc);
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
  s = _mm_hadd_ps(s, s);
  s = _mm_hadd_ps(s, s);
  float r = _mm_cvtss_f32(s);
  for (; d < n; d++) r += a[d] * b[d];
  return r;
}
static void axpy_f32(float *y, float a, const float *x, int n) {
  __m256 av = _mm256_set1_ps(a);
  int d = 0;
  for (; d + 8 <= n; d += 8) _mm256_storeu_ps(y + d, _mm256_fmadd_ps(av, _mm256_loadu_ps(x + d), _mm256_loadu_ps(y + d)));
  for (; d < n; d++) y[d] += a * x[d];
}
#pragma GCC pop_options
static int have_avx2 = -1;
#endif

static float dot_generic(const float *a, const float *b, int n) {
  float r = 0.0f;
  for (int d = 0; d < n; d++) r += a[d] * b[d];
  return r;
}
static void axpy_generic(float *y, float a, const float *x, int n) {
  for (int d = 0; d < n; d++) y[d] += a * x[d];
}

static float dot(const float *a, const float *b, int n) {
#if defined(__x86_64__)
  if (have_avx2) return dot_f32(a, b, n);
#endif
  return dot_generic(a, b, n);
}
static void axpy(float *y, float a, const float *x, int n) {
#if defined(__x86_64__)
  if (have_avx2) {
    axpy_f32(y, a, x, n);
    return;
  }
#endif
  axpy_generic(y, a, x, n);
}

static void attention_job(void *p, int thread, int nthreads) {
  const attention_args *a = (const attention_args *)p;
  const int items = a->T * a->num_heads;
  const int per = (items + nthreads - 1) / nthreads;
  const int i0 = thread * per;
  const int i1 = i0 + per < items ? i0 + per : items;
  if (i0 >= i1) return;
  const int group = a->num_heads / a->num_kv_heads;
  const int hd = a->head_dim;
  const int q_dim = a->num_heads * hd;
  const int kv_dim = a->num_kv_heads * hd;
  float *scores = (float *)malloc(sizeof(float) * (size_t)(a->start + a->T));
  float *acc = (float *)malloc(sizeof(float) * (size_t)hd);
  for (int item = i0; item < i1; item++) {
    const int t = item / a->num_heads;
    const int h = item % a->num_heads;
    const int pos = a->start + t;
    int lo = a->window > 0 ? (pos - a->window + 1 > 0 ? pos - a->window + 1 : 0) : 0;
    int hi = pos;
    if (a->span_start && a->span_start[t] >= 0) {
      if (a->start + a->span_start[t] < lo) lo = a->start + a->span_start[t];
      if (a->start + a->span_end[t] > hi) hi = a->start + a->span_end[t];
    }
    const float *q = a->q + (size_t)t * q_dim + (size_t)h * hd;
    const int kvo = (h / group) * hd;
    float max = -INFINITY;
    for (int j = lo; j <= hi; j++) {
      const float *k = j < a->start ? a->cache_k + (size_t)(a->ring > 0 ? j % a->ring : j) * kv_dim + kvo
                                    : a->k_chunk + (size_t)(j - a->start) * kv_dim + kvo;
      float s = dot(q, k, hd) * a->scale;
      scores[j] = s;
      if (s > max) max = s;
    }
    double sum = 0.0;
    for (int j = lo; j <= hi; j++) {
      float e = expf(scores[j] - max);
      scores[j] = e;
      sum += e;
    }
    const float inv = (float)(1.0 / sum);
    for (int d = 0; d < hd; d++) acc[d] = 0.0f;
    for (int j = lo; j <= hi; j++) {
      const float *v = j < a->start ? a->cache_v + (size_t)(a->ring > 0 ? j % a->ring : j) * kv_dim + kvo
                                    : a->v_chunk + (size_t)(j - a->start) * kv_dim + kvo;
      axpy(acc, scores[j] * inv, v, hd);
    }
    float *o = a->out + (size_t)t * q_dim + (size_t)h * hd;
    for (int d = 0; d < hd; d++) o[d] = acc[d];
  }
  free(scores);
  free(acc);
}

void attention_run(const attention_args *a) {
#if defined(__x86_64__)
  if (have_avx2 < 0) {
    __builtin_cpu_init();
    have_avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }
#endif
  pool_run(attention_job, (void *)a);
}
