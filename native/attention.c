// Attention of a chunk of queries over cached keys plus the chunk's own keys: the twin of
// src/backend/js-attention.ts. Work items are (key/value head, token) pairs, head-major, split
// across the pool; each covers the query heads of its group. The cache is blocked and
// head-major within a block (attention.h), so one head's keys and values stream block by block.
#include "attention.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "kv-types.h"
#include "pool.h"

#if defined(__x86_64__)
#include <immintrin.h>
#include "vecmath.h"
#pragma GCC push_options
#pragma GCC target("avx2,fma")
/* Four independent accumulators: a head's dot product is latency-bound with one. */
static float dot_f32(const float *a, const float *b, int n) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps(), acc2 = _mm256_setzero_ps(), acc3 = _mm256_setzero_ps();
  int d = 0;
  for (; d + 32 <= n; d += 32) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + d), _mm256_loadu_ps(b + d), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + d + 8), _mm256_loadu_ps(b + d + 8), acc1);
    acc2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + d + 16), _mm256_loadu_ps(b + d + 16), acc2);
    acc3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + d + 24), _mm256_loadu_ps(b + d + 24), acc3);
  }
  for (; d + 8 <= n; d += 8) acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + d), _mm256_loadu_ps(b + d), acc0);
  const __m256 acc = _mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3));
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
#pragma GCC pop_options

/* AVX-512 forms of dot and axpy for head sizes that are a multiple of 64 (Gemma 3's 256). */
#pragma GCC push_options
#pragma GCC target("avx512f,avx2,fma")
static float dot_f32_512(const float *a, const float *b, int n) {
  __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps(), acc2 = _mm512_setzero_ps(), acc3 = _mm512_setzero_ps();
  for (int d = 0; d < n; d += 64) {
    acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + d), _mm512_loadu_ps(b + d), acc0);
    acc1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + d + 16), _mm512_loadu_ps(b + d + 16), acc1);
    acc2 = _mm512_fmadd_ps(_mm512_loadu_ps(a + d + 32), _mm512_loadu_ps(b + d + 32), acc2);
    acc3 = _mm512_fmadd_ps(_mm512_loadu_ps(a + d + 48), _mm512_loadu_ps(b + d + 48), acc3);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc0, acc1), _mm512_add_ps(acc2, acc3)));
}
static void axpy_f32_512(float *y, float a, const float *x, int n) {
  const __m512 av = _mm512_set1_ps(a);
  for (int d = 0; d < n; d += 16) _mm512_storeu_ps(y + d, _mm512_fmadd_ps(av, _mm512_loadu_ps(x + d), _mm512_loadu_ps(y + d)));
}
#pragma GCC pop_options
#endif
/* Set once by attention_init from the addon's kernel choice (GEMMA3_NATIVE_KERNELS included). */
static int have_avx2 = 0;
static int have_avx512 = 0;
static int use_avx512_full = 0;

void attention_init(int level) {
  kv_types_init(level);
#if defined(__x86_64__)
  have_avx2 = level >= 1;
  have_avx512 = level >= 2;
  use_avx512_full = level >= 2;
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

static float dot(const float *a, const float *b, int n) {
#if defined(__x86_64__)
  if (have_avx512 && n % 64 == 0) return dot_f32_512(a, b, n);
  if (have_avx2) return dot_f32(a, b, n);
#endif
  return dot_generic(a, b, n);
}
static void axpy(float *y, float a, const float *x, int n) {
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
static double exp_sum(float *scores, int lo, int hi, float max) {
#if defined(__x86_64__)
  if (have_avx2) return exp_sum_f32(scores, lo, hi, max);
#endif
  return exp_sum_generic(scores, lo, hi, max);
}
/* The largest of s[0..n) (exact in any order) and s[j] *= f: the softmax steps around exp_sum. */
static float row_max(const float *s, int n) {
#if defined(__x86_64__)
  if (have_avx2) return max_f32(s, n);
#endif
  float max = -INFINITY;
  for (int j = 0; j < n; j++) if (s[j] > max) max = s[j];
  return max;
}
static void row_scale(float *s, int n, float f) {
#if defined(__x86_64__)
  if (have_avx2) {
    scale_f32(s, n, f);
    return;
  }
#endif
  for (int j = 0; j < n; j++) s[j] *= f;
}

/* Row of `slot` for key/value head `kvh` in the blocked cache layout (attention.h), as floats:
   the cache's own memory for KV_F32, else `scratch` with the row widened into it. `raw` is
   where the stored row lies (for prefetching). */
static inline const float *kv_row(const attention_args *a, const void *base, int slot, int kvh, float *scratch, const char **raw) {
  const size_t at = kv_index((size_t)slot, kvh, a->num_kv_heads, a->head_dim, a->block_shift);
  if (a->kv_type == KV_F32) {
    *raw = (const char *)((const float *)base + at);
    return (const float *)base + at;
  }
  const uint16_t *row = (const uint16_t *)base + at;
  *raw = (const char *)row;
  kv_widen(scratch, row, a->head_dim, a->kv_type);
  return scratch;
}

void write_kv_run(void *cache_k, void *cache_v, int kv_type, const float *k, const float *v, int ring, int block_shift, int start, int T,
                  int num_kv_heads, int head_dim) {
  const size_t kv_dim = (size_t)num_kv_heads * head_dim, row = (size_t)head_dim * 4;
  const int first = ring > 0 && T > ring ? T - ring : 0;
  for (int t = first; t < T; t++) {
    const size_t slot = ring > 0 ? (size_t)(start + t) % ring : (size_t)(start + t);
    for (int h = 0; h < num_kv_heads; h++) {
      const size_t at = kv_index(slot, h, num_kv_heads, head_dim, block_shift);
      const float *kr = k + (size_t)t * kv_dim + (size_t)h * head_dim, *vr = v + (size_t)t * kv_dim + (size_t)h * head_dim;
      if (kv_type == KV_F32) {
        memcpy((float *)cache_k + at, kr, row);
        memcpy((float *)cache_v + at, vr, row);
      } else {
        kv_narrow((uint16_t *)cache_k + at, kr, head_dim, kv_type);
        kv_narrow((uint16_t *)cache_v + at, vr, head_dim, kv_type);
      }
    }
  }
}

/* Query heads that share a key/value head (grouped-query attention) are handled together, so
   each cached key and value row is read once for all of them. */
#define MAX_GROUP 16
/* Queries per tile (at most): every key and value row read serves this many tokens' group of
   query heads. Keys per block: the unit of the online softmax, aligned to absolute positions. */
#define ATTN_TILE 16
#define ATTN_PREFETCH_ROWS 4
#define ATTN_BLOCK 64

/* The largest scratch one thread has taken for attention_run since the last reset (bytes). */
static _Atomic size_t scratch_peak = 0;

size_t attention_scratch_peak(int reset) {
  const size_t peak = atomic_load(&scratch_peak);
  if (reset) atomic_store(&scratch_peak, 0);
  return peak;
}

typedef struct {
  const attention_args *a;
  int tile;          /* queries per tile */
  int tiles;         /* ceil(T / tile) */
  pool_shares items; /* (key/value head, query tile) pairs, head-major */
} attention_job;

/* Keys [lo, hi] of token t: causal, the sliding window, widened to the token's image span. */
static void key_range(const attention_args *a, int t, int *lo_out, int *hi_out) {
  const int pos = a->start + t;
  int lo = a->window > 0 ? (pos - a->window + 1 > 0 ? pos - a->window + 1 : 0) : 0;
  int hi = pos;
  if (a->span_start && a->span_start[t] >= 0) {
    if (a->start + a->span_start[t] < lo) lo = a->start + a->span_start[t];
    if (a->start + a->span_end[t] > hi) hi = a->start + a->span_end[t];
  }
  *lo_out = lo;
  *hi_out = hi;
}

/* The key or value row of position j for head kvh: the chunk's own for positions from `start`,
   else the cache's at `slot` (widened into `one` for a 16-bit type). */
static inline const float *row_at(const attention_args *a, const void *cache, const float *chunk, int kvh, int j, int slot, float *one) {
  const int hd = a->head_dim;
  if (j >= a->start) {
    const float *r = chunk + (size_t)(j - a->start) * a->num_kv_heads * hd + (size_t)kvh * hd;
    for (int l = 0; l < hd * 4; l += 64) __builtin_prefetch((const char *)r + ATTN_PREFETCH_ROWS * hd * 4 + l);
    return r;
  }
  const char *raw;
  const float *r = kv_row(a, cache, slot, kvh, one, &raw);
  /* Rows ahead of this one, in the order they will be read: keeps the stream going. */
  const int row_bytes = hd * (int)kv_element_bytes(a->kv_type);
  for (int l = 0; l < row_bytes; l += 64) __builtin_prefetch(raw + ATTN_PREFETCH_ROWS * row_bytes + l);
  return r;
}

/* Flash-attention style: a work item is one key/value head and a tile of queries; keys and
   values stream once per tile, block by block (ATTN_BLOCK positions, aligned to absolute
   positions), and each query row keeps a running max, sum and output (online softmax). Scratch
   is O(tile x block + tile x head_dim) per thread, whatever the prompt length. A query's
   arithmetic depends only on its own key range and the blocks' fixed boundaries, never on its
   tile or on how the prompt was cut into chunks. */
/* One query row's online-softmax step for the keys s[from..to] of a block (scores, replaced by
   their exps): a larger max rescales the row's earlier output and sum; the block's exps join the sum. */
static void online_step(float *s, int from, int to, float *max, double *sum, float *o, int hd) {
  float block_max = -INFINITY;
  for (int j = from; j <= to; j++) block_max = s[j] > block_max ? s[j] : block_max;
  if (block_max > *max) {
    if (*max != -INFINITY) { /* earlier blocks' terms, rescaled to the new max */
      const float c = expf(*max - block_max);
      row_scale(o, hd, c);
      *sum *= c;
    }
    *max = block_max;
  }
  *sum += exp_sum(s, from, to, *max);
}

static void attention_job_fn(void *p, int thread) {
  attention_job *job = (attention_job *)p;
  const attention_args *a = job->a;
  const int group = a->num_heads / a->num_kv_heads;
  int cursor = 0, item = pool_shares_next(&job->items, thread, &cursor);
  if (item < 0) return; /* nothing left: no scratch to allocate */
  const int hd = a->head_dim;
  const int q_dim = a->num_heads * hd;
  const int rows_max = job->tile * group;
  const size_t floats = (size_t)rows_max * ATTN_BLOCK + (size_t)rows_max * hd + (size_t)rows_max + hd;
  const size_t bytes = sizeof(float) * floats + sizeof(double) * (size_t)rows_max + sizeof(int) * 3 * (size_t)rows_max;
  char *scratch = (char *)malloc(bytes);
  if (!scratch) return; /* the caller sees no output written; cannot happen at these sizes */
  for (size_t seen = atomic_load(&scratch_peak); bytes > seen && !atomic_compare_exchange_weak(&scratch_peak, &seen, bytes);) {
  }
  double *sum = (double *)scratch;                       /* [rows] running softmax denominators */
  float *scores = (float *)(sum + rows_max);              /* [rows][ATTN_BLOCK] */
  float *acc = scores + (size_t)rows_max * ATTN_BLOCK;    /* [rows][hd] running outputs */
  float *max = acc + (size_t)rows_max * hd;               /* [rows] running maxima */
  float *one = max + rows_max;                            /* [hd] a 16-bit cache row widened */
  int *active = (int *)(one + hd);                        /* rows with keys in the block */
  int *row_from = active + rows_max, *row_to = row_from + rows_max;
  int lo[ATTN_TILE], hi[ATTN_TILE];
  /* Head-major order: consecutive items read the same head's keys and values, which stay in cache. */
  for (; item >= 0; item = pool_shares_next(&job->items, thread, &cursor)) {
    const int kvh = item / job->tiles;
    const int t0 = (item % job->tiles) * job->tile;
    const int nq = a->T - t0 < job->tile ? a->T - t0 : job->tile;
    int tile_lo = a->start + a->T, tile_hi = -1;
    for (int r = 0; r < nq; r++) {
      key_range(a, t0 + r, &lo[r], &hi[r]);
      if (lo[r] < tile_lo) tile_lo = lo[r];
      if (hi[r] > tile_hi) tile_hi = hi[r];
    }
    for (int x = 0; x < nq * group; x++) {
      max[x] = -INFINITY;
      sum[x] = 0.0;
    }
    memset(acc, 0, sizeof(float) * (size_t)nq * group * hd);
    /* Query row x = r * group + g: token t0 + r, head kvh * group + g (the group's heads are adjacent). */
#define QROW(x) (a->q + (size_t)(t0 + (x) / group) * q_dim + ((size_t)kvh * group + (x) % group) * hd)
    for (int b0 = tile_lo - tile_lo % ATTN_BLOCK; b0 <= tile_hi; b0 += ATTN_BLOCK) {
      const int j0 = b0 > tile_lo ? b0 : tile_lo;
      const int j1 = b0 + ATTN_BLOCK - 1 < tile_hi ? b0 + ATTN_BLOCK - 1 : tile_hi;
      /* Each query's keys within the block; none: its state stays as it is. */
      int n_active = 0;
      for (int r = 0; r < nq; r++) {
        const int from = lo[r] > j0 ? lo[r] : j0, to = hi[r] < j1 ? hi[r] : j1;
        if (from > to) continue;
        for (int g = 0; g < group; g++) {
          const int x = r * group + g;
          active[n_active++] = x;
          row_from[x] = from;
          row_to[x] = to;
        }
      }
      /* Each key and value row is read (and widened) once for all the rows that see it. */
      const int first_slot = a->ring > 0 ? j0 % a->ring : j0;
      for (int j = j0, slot = first_slot; j <= j1; j++) {
        const float *k = row_at(a, a->cache_k, a->k_chunk, kvh, j, slot, one);
        if (++slot == a->ring) slot = 0; /* slots advance with positions, no division per key */
        for (int i = 0; i < n_active; i++) {
          const int x = active[i];
          if (j >= row_from[x] && j <= row_to[x]) scores[(size_t)x * ATTN_BLOCK + (j - b0)] = dot(QROW(x), k, hd) * a->scale;
        }
      }
      for (int i = 0; i < n_active; i++) {
        const int x = active[i];
        online_step(scores + (size_t)x * ATTN_BLOCK, row_from[x] - b0, row_to[x] - b0, &max[x], &sum[x], acc + (size_t)x * hd, hd);
      }
      for (int j = j0, slot = first_slot; j <= j1; j++) {
        const float *v = row_at(a, a->cache_v, a->v_chunk, kvh, j, slot, one);
        if (++slot == a->ring) slot = 0;
        for (int i = 0; i < n_active; i++) {
          const int x = active[i];
          if (j >= row_from[x] && j <= row_to[x]) axpy(acc + (size_t)x * hd, scores[(size_t)x * ATTN_BLOCK + (j - b0)], v, hd);
        }
      }
    }
#undef QROW
    for (int r = 0; r < nq; r++) {
      float *o = a->out + (size_t)(t0 + r) * q_dim + (size_t)kvh * group * hd;
      for (int g = 0; g < group; g++) {
        const int x = r * group + g;
        const float inv = (float)(1.0 / sum[x]);
        for (int d = 0; d < hd; d++) o[(size_t)g * hd + d] = acc[(size_t)x * hd + d] * inv;
      }
    }
  }
  free(scratch);
}

void attention_run(const attention_args *a) {
  attention_job job; /* not zeroed: its shares are big */
  job.a = a;
  /* Tiles as large as ATTN_TILE while every thread still gets two items; the size never changes
     a result (see attention_job_fn). */
  const int want = 2 * pool_threads();
  int tile = ATTN_TILE;
  while (tile > 1 && a->num_kv_heads * ((a->T + tile - 1) / tile) < want) tile /= 2;
  job.tile = tile;
  job.tiles = (a->T + tile - 1) / tile;
  pool_shares_init(&job.items, job.tiles * a->num_kv_heads);
  pool_run(attention_job_fn, &job);
}

/* ------------------------------------------------------------------------------------------
   Full bidirectional attention (the SigLIP tower: every token sees every token). Keys are
   transposed per head once, so scores for 16 keys come from one FMA chain without horizontal
   sums; four queries share every key and value load. Work items: (head, block of 4 queries). */

typedef struct {
  const full_attention_args *a;
  float *kt; /* [heads][head_dim][N]: keys transposed per head */
  float *vt; /* [heads][N][head_dim]: each head's values back to back */
  pool_shares items; /* heads (full_layout_fn), then (head, block of queries) pairs (full_job_fn) */
} full_job;

#if defined(__x86_64__)
/* Queries per work item: every key and value row read from cache serves this many queries. */
#define FULL_QB 16

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
    for (int q = 0; q < FULL_QB; q++) axpy(out + (size_t)q * hd, p[(size_t)q * ld + j], vth + (size_t)j * hd, hd);
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
      const float max = row_max(s, N);
      const double sum = exp_sum(s, 0, N - 1, max);
      row_scale(s, N, (float)(1.0 / sum));
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
