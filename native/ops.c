// Element-wise and per-row ops of a decoder layer (GeGLU, RMSNorm, norm + residual add): the
// twins of src/backend/js-ops.ts, rounding to float32 at the same points. Rows split across the pool
// when there is enough work to pay for waking it.
#include "ops.h"

#include <math.h>

#include "pool.h"
#include "vecmath.h"

static int use_avx2 = 0;

void ops_init(int avx2) { use_avx2 = avx2; }

/* Below this many elements the caller's thread does the work alone. */
#define PARALLEL_MIN 32768

/* ---- GeGLU: 0.5 z (1 + tanh u) = z / (1 + exp(-2u)), u = √(2/π)(z + 0.044715 z³). The logistic
   form has no cancellation for negative z, so a vector exp gives float-accurate results. */

static void gelu_generic(float *gate, const float *up, size_t i0, size_t i1) {
  const float k = 0.7978845608028654f;
  for (size_t i = i0; i < i1; i++) {
    const float z = gate[i];
    gate[i] = 0.5f * z * (1.0f + tanhf(k * (z + 0.044715f * z * z * z))) * (up ? up[i] : 1.0f);
  }
}

#if defined(__x86_64__)
__attribute__((target("avx2,fma"))) static void gelu_avx2(float *gate, const float *up, size_t i0, size_t i1) {
  const __m256 k2 = _mm256_set1_ps(-2.0f * 0.7978845608028654f), c = _mm256_set1_ps(0.044715f), one = _mm256_set1_ps(1.0f);
  size_t i = i0;
  for (; i + 8 <= i1; i += 8) {
    const __m256 z = _mm256_loadu_ps(gate + i);
    const __m256 inner = _mm256_fmadd_ps(_mm256_mul_ps(c, z), _mm256_mul_ps(z, z), z);
    const __m256 e = exp256_ps(_mm256_mul_ps(k2, inner));
    const __m256 g = _mm256_div_ps(z, _mm256_add_ps(one, e));
    _mm256_storeu_ps(gate + i, up ? _mm256_mul_ps(g, _mm256_loadu_ps(up + i)) : g);
  }
  gelu_generic(gate, up, i, i1);
}
#endif

/* Elements per item of a pooled GeGLU: a multiple of 8, so only the last item has a scalar tail. */
#define GELU_ITEM 8192

typedef struct {
  float *gate;
  const float *up;
  size_t n;
  pool_shares items;
} gelu_job;

static void gelu_range(float *gate, const float *up, size_t i0, size_t i1) {
#if defined(__x86_64__)
  if (use_avx2) {
    gelu_avx2(gate, up, i0, i1);
    return;
  }
#endif
  gelu_generic(gate, up, i0, i1);
}

static void gelu_job_fn(void *p, int thread) {
  gelu_job *j = (gelu_job *)p;
  for (int cursor = 0, item; (item = pool_shares_next(&j->items, thread, &cursor)) >= 0;) {
    const size_t i0 = (size_t)item * GELU_ITEM;
    gelu_range(j->gate, j->up, i0, i0 + GELU_ITEM < j->n ? i0 + GELU_ITEM : j->n);
  }
}

void gelu_tanh_mul_run(float *gate, const float *up, size_t n) {
  if (n < PARALLEL_MIN) {
    gelu_range(gate, up, 0, n);
    return;
  }
  gelu_job j; /* not zeroed: its shares are big, and set here */
  j.gate = gate;
  j.up = up;
  j.n = n;
  pool_shares_init(&j.items, (int)((n + GELU_ITEM - 1) / GELU_ITEM));
  pool_run(gelu_job_fn, &j);
}

/* ---- RMSNorm. The sum of squares runs in double like the TypeScript twin (whose numbers are
   doubles); only the summation order differs. */

static double sum_squares_generic(const float *x, int n) {
  double s = 0.0;
  for (int i = 0; i < n; i++) s += (double)x[i] * x[i];
  return s;
}

#if defined(__x86_64__)
__attribute__((target("avx2,fma"))) static double sum_squares_avx2(const float *x, int n) {
  __m256d a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd();
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256d lo = _mm256_cvtps_pd(_mm_loadu_ps(x + i)), hi = _mm256_cvtps_pd(_mm_loadu_ps(x + i + 4));
    a0 = _mm256_fmadd_pd(lo, lo, a0);
    a1 = _mm256_fmadd_pd(hi, hi, a1);
  }
  double lanes[4];
  _mm256_storeu_pd(lanes, _mm256_add_pd(a0, a1));
  double s = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
  for (; i < n; i++) s += (double)x[i] * x[i];
  return s;
}
#endif

typedef struct {
  float *out;
  const float *x, *scale;
  double eps;
  int rows, n, accumulate;
  pool_shares items; /* one row each */
} norm_job;

static void norm_rows(const norm_job *j, int r0, int r1) {
  const int n = j->n;
  for (int r = r0; r < r1; r++) {
    const float *x = j->x + (size_t)r * n;
    float *out = j->out + (size_t)r * n;
#if defined(__x86_64__)
    const double ss = use_avx2 ? sum_squares_avx2(x, n) : sum_squares_generic(x, n);
#else
    const double ss = sum_squares_generic(x, n);
#endif
    const float inv = (float)(1.0 / sqrt((double)(float)((double)(float)(ss / n) + j->eps)));
    /* Two float multiplies, each rounded, then the add: the twin's Math.fround points. */
    if (j->accumulate) {
      for (int i = 0; i < n; i++) out[i] = out[i] + (x[i] * inv) * j->scale[i];
    } else {
      for (int i = 0; i < n; i++) out[i] = (x[i] * inv) * j->scale[i];
    }
  }
}

static void norm_job_fn(void *p, int thread) {
  norm_job *j = (norm_job *)p;
  for (int cursor = 0, row; (row = pool_shares_next(&j->items, thread, &cursor)) >= 0;) norm_rows(j, row, row + 1);
}

void rms_norm_run(float *out, const float *x, const float *scale, double eps, int rows, int n, int accumulate) {
  norm_job j; /* not zeroed: its shares are big */
  j.out = out;
  j.x = x;
  j.scale = scale;
  j.eps = eps;
  j.rows = rows;
  j.n = n;
  j.accumulate = accumulate;
  if ((size_t)rows * n < PARALLEL_MIN || rows == 1) {
    norm_rows(&j, 0, rows);
    return;
  }
  pool_shares_init(&j.items, rows);
  pool_run(norm_job_fn, &j);
}
