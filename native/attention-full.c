/* Full bidirectional attention (the SigLIP tower: every token sees every token). Keys are
   transposed per head once, so scores for 16 keys come from one FMA chain without horizontal
   sums; FULL_QB queries share every key and value load. Work items: (head, block of FULL_QB queries). */
#include "attention.h"

#include <stdlib.h>
#include <string.h>

#include "attention-vec.h"
#include "pool.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

/* Set by attention_full_init (from attention_init): the AVX-512 score and value kernels. */
static int use_avx512_full = 0;

void attention_full_init(int level) { use_avx512_full = level >= 2; }

typedef struct {
  const full_attention_args *a;
  float *kt; /* [heads][head_dim][N]: keys transposed per head */
  float *vt; /* [heads][N][head_dim]: each head's values back to back */
  pool_shares items; /* heads (full_layout_fn), then (head, block of queries) pairs (full_job_fn) */
} full_job;

/* Queries per work item: every key and value row read from cache serves this many queries. */
#define FULL_QB 16

#if defined(__x86_64__)
#pragma GCC push_options
#pragma GCC target("avx512f,avx2,fma")
/* scores[q][j] = scale · q_q · k_j for the FULL_QB queries from i0 (indices past N repeat the
   last query; their rows are computed and ignored) and all N keys, 16 keys at a time. */
static void full_scores_avx512(const full_attention_args *a, const float *kth, int h, int i0, float *scores, size_t ld) {
  const int N = a->N, hd = a->head_dim, D = a->num_heads * hd;
  const float *qrow[FULL_QB];
  for (int q = 0; q < FULL_QB; q++) qrow[q] = a->q + (size_t)(i0 + q < N ? i0 + q : N - 1) * D + (size_t)h * hd;
  for (int j = 0; j < N; j += 16) {
    const int n = N - j < 16 ? N - j : 16;
    const __mmask16 m = (__mmask16)((1u << n) - 1);
    __m512 acc[FULL_QB];
    for (int q = 0; q < FULL_QB; q++) acc[q] = _mm512_setzero_ps();
    for (int d = 0; d < hd; d++) {
      const __m512 kv = _mm512_maskz_loadu_ps(m, kth + (size_t)d * N + j);
      for (int q = 0; q < FULL_QB; q++) acc[q] = _mm512_fmadd_ps(_mm512_set1_ps(qrow[q][d]), kv, acc[q]);
    }
    for (int q = 0; q < FULL_QB; q++) _mm512_mask_storeu_ps(scores + (size_t)q * ld + j, m, _mm512_mul_ps(acc[q], _mm512_set1_ps(a->scale)));
  }
}

/* out[q] = Σ_j p[q][j] · v_j, sixteen output columns at a time with the FULL_QB sums in registers. */
static void full_values_avx512(const float *vth, const float *p, size_t ld, int N, int hd, float *out) {
  for (int d = 0; d < hd; d += 16) {
    const __mmask16 m = (__mmask16)(hd - d >= 16 ? 0xffff : (1u << (hd - d)) - 1);
    __m512 acc[FULL_QB];
    for (int q = 0; q < FULL_QB; q++) acc[q] = _mm512_setzero_ps();
    for (int j = 0; j < N; j++) {
      const __m512 v = _mm512_maskz_loadu_ps(m, vth + (size_t)j * hd + d);
      for (int q = 0; q < FULL_QB; q++) acc[q] = _mm512_fmadd_ps(_mm512_set1_ps(p[(size_t)q * ld + j]), v, acc[q]);
    }
    for (int q = 0; q < FULL_QB; q++) _mm512_mask_storeu_ps(out + (size_t)q * hd + d, m, acc[q]);
  }
}
#pragma GCC pop_options
#endif

static void full_scores_generic(const full_attention_args *a, const float *kth, int h, int i0, float *scores, size_t ld) {
  const int N = a->N, hd = a->head_dim, D = a->num_heads * hd;
  for (int q = 0; q < FULL_QB; q++) {
    const float *qr = a->q + (size_t)(i0 + q < N ? i0 + q : N - 1) * D + (size_t)h * hd;
    float *s = scores + (size_t)q * ld;
    for (int j = 0; j < N; j++) s[j] = 0.0f;
    for (int d = 0; d < hd; d++) {
      const float qd = qr[d];
      const float *kr = kth + (size_t)d * N;
      for (int j = 0; j < N; j++) s[j] += qd * kr[j];
    }
    for (int j = 0; j < N; j++) s[j] *= a->scale;
  }
}

static void full_values_generic(const float *vth, const float *p, size_t ld, int N, int hd, float *out) {
  for (int x = 0; x < FULL_QB * hd; x++) out[x] = 0.0f;
  for (int j = 0; j < N; j++)
    for (int q = 0; q < FULL_QB; q++) attn_axpy(out + (size_t)q * hd, p[(size_t)q * ld + j], vth + (size_t)j * hd, hd);
}

/* Keys transposed per head and values per head back to back, the heads split across the pool. */
static void full_layout_fn(void *p, int thread) {
  full_job *job = (full_job *)p;
  const full_attention_args *a = job->a;
  const int N = a->N, hd = a->head_dim, D = a->num_heads * hd;
  for (int cursor = 0, h; (h = pool_shares_next(&job->items, thread, &cursor)) >= 0;) {
    /* 64 keys at a time: their rows stay in L1 while each of the head's columns is written out. */
    for (int j0 = 0; j0 < N; j0 += 64) {
      const int j1 = j0 + 64 < N ? j0 + 64 : N;
      for (int d = 0; d < hd; d++)
        for (int j = j0; j < j1; j++) job->kt[((size_t)h * hd + d) * N + j] = a->k[(size_t)j * D + (size_t)h * hd + d];
    }
    for (int j = 0; j < N; j++) memcpy(job->vt + ((size_t)h * N + j) * hd, a->v + (size_t)j * D + (size_t)h * hd, sizeof(float) * hd);
  }
}

static void full_job_fn(void *p, int thread) {
  full_job *job = (full_job *)p;
  const full_attention_args *a = job->a;
  const int N = a->N, hd = a->head_dim, D = a->num_heads * hd;
  const int qblocks = (N + FULL_QB - 1) / FULL_QB;
  int cursor = 0, item = pool_shares_next(&job->items, thread, &cursor);
  if (item < 0) return;
  /* Rows one cache line longer than N: the values pass reads one score of each of the FULL_QB
     rows per key, and rows N floats apart (16 KiB for 4096 patches) all fall in one L1 set. */
  const size_t ld = (size_t)N + 16;
  float *scores = (float *)malloc(sizeof(float) * FULL_QB * ld);
  float *acc = (float *)malloc(sizeof(float) * FULL_QB * (size_t)hd);
  for (; item >= 0; item = pool_shares_next(&job->items, thread, &cursor)) {
    const int h = item / qblocks, i0 = (item % qblocks) * FULL_QB;
    const int nq = N - i0 < FULL_QB ? N - i0 : FULL_QB;
    const float *kth = job->kt + (size_t)h * hd * N, *vth = job->vt + (size_t)h * N * hd;
#if defined(__x86_64__)
    if (use_avx512_full) full_scores_avx512(a, kth, h, i0, scores, ld);
    else
#endif
      full_scores_generic(a, kth, h, i0, scores, ld);
    for (int q = 0; q < FULL_QB; q++) {
      float *s = scores + (size_t)q * ld;
      const float max = attn_row_max(s, N);
      const double sum = attn_exp_sum(s, 0, N - 1, max);
      attn_row_scale(s, N, (float)(1.0 / sum));
    }
#if defined(__x86_64__)
    if (use_avx512_full) full_values_avx512(vth, scores, ld, N, hd, acc);
    else
#endif
      full_values_generic(vth, scores, ld, N, hd, acc);
    for (int q = 0; q < nq; q++) {
      float *o = a->out + (size_t)(i0 + q) * D + (size_t)h * hd;
      for (int d = 0; d < hd; d++) o[d] = acc[(size_t)q * hd + d];
    }
  }
  free(scores);
  free(acc);
}

int attention_full_run(const full_attention_args *a) {
  const int N = a->N, hd = a->head_dim, D = a->num_heads * hd;
  float *kt = (float *)malloc(sizeof(float) * (size_t)N * D);
  float *vt = (float *)malloc(sizeof(float) * (size_t)N * D);
  if (!kt || !vt) {
    free(kt);
    free(vt);
    return 0;
  }
  full_job job; /* not zeroed: its shares are big */
  job.a = a;
  job.kt = kt;
  job.vt = vt;
  pool_shares_init(&job.items, a->num_heads);
  pool_run(full_layout_fn, &job);
  pool_shares_init(&job.items, a->num_heads * ((N + FULL_QB - 1) / FULL_QB));
  pool_run(full_job_fn, &job);
  free(kt);
  free(vt);
  return 1;
}
