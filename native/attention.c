// Attention of a chunk of queries over cached keys plus the chunk's own keys: the twin of
// src/backend/js-attention.ts. Work items are (key/value head, tile of queries) pairs, head-major,
// split across the pool; each covers the query heads of its group. (The SigLIP tower's unmasked
// attention is in attention-full.c.) The cache is blocked and
// head-major within a block (attention.h), so one head's keys and values stream block by block.
// The vector kernels a pass runs are in attention-blocks.c.
#include "attention.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "attention-blocks.h"
#include "attention-vec.h"
#include "kv-types.h"
#include "pool.h"

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

/* Keys (or values) handled per pass: their float rows (widened for a 16-bit cache) stay in L1
   while every row of the tile uses them. */
#define ATTN_PASS 16

/* Flash-attention style: a work item is one key/value head and a tile of queries; keys and
   values stream once per tile, block by block (ATTN_BLOCK positions, aligned to absolute
   positions), and each query row keeps a running max, sum and output (online softmax). Scratch
   is O(tile x block + tile x head_dim) per thread, whatever the prompt length. A query's
   arithmetic depends only on its own key range and the blocks' fixed boundaries, never on its
   tile or on how the prompt was cut into chunks: the block kernels compute each score and each
   output element the same way in every row group, and a key outside a row's range adds
   0 · v (exactly nothing) to its output. */
/* One query row's online-softmax step for the keys s[from..to] of a block (scores, replaced by
   their exps): a larger max rescales the row's earlier output and sum; the block's exps join the sum. */
static void online_step(float *s, int from, int to, float *max, double *sum, float *o, int hd) {
  float block_max = -INFINITY;
  for (int j = from; j <= to; j++) block_max = s[j] > block_max ? s[j] : block_max;
  if (block_max > *max) {
    if (*max != -INFINITY) { /* earlier blocks' terms, rescaled to the new max */
      const float c = expf(*max - block_max);
      attn_row_scale(o, hd, c);
      *sum *= c;
    }
    *max = block_max;
  }
  *sum += attn_exp_sum(s, from, to, *max);
}

/* Rows of positions j0..j0+n-1 for head kvh (keys or values), all from the chunk (floats) or
   all from the cache: as stored for the SIMD kernels (which convert as they read), widened
   into `buf` (n rows) for generic C. Returns the rows' type. */
static int pass_rows(const attention_args *a, const void *cache, const float *chunk, int kvh, int j0, int n, int slot, int level, float *buf,
                     const void **rows) {
  const int hd = a->head_dim;
  if (j0 >= a->start) {
    for (int i = 0; i < n; i++) rows[i] = chunk + (size_t)(j0 + i - a->start) * a->num_kv_heads * hd + (size_t)kvh * hd;
    return KV_F32;
  }
  const size_t element = kv_element_bytes(a->kv_type);
  for (int i = 0; i < n; i++) {
    const char *raw = (const char *)cache + kv_index((size_t)slot, kvh, a->num_kv_heads, hd, a->block_shift) * element;
    if (level > 0 || a->kv_type == KV_F32) rows[i] = raw;
    else {
      kv_widen(buf + (size_t)i * hd, (const uint16_t *)raw, hd, a->kv_type);
      rows[i] = buf + (size_t)i * hd;
    }
    if (++slot == a->ring) slot = 0; /* slots advance with positions, no division per key */
  }
  return level > 0 ? a->kv_type : KV_F32;
}

/* Keys of the pass from js (at most ATTN_PASS, up to j1): never across the chunk's start, so a
   pass reads one kind of row. */
/* Bytes from a row of the pass at js to the same row a pass later (within a cache block or the
   chunk; elsewhere a prefetch that misses does no harm). */
static size_t pass_ahead(const attention_args *a, int js) {
  const size_t hd = (size_t)a->head_dim;
  return js >= a->start ? ATTN_PASS * (size_t)a->num_kv_heads * hd * 4 : ATTN_PASS * hd * kv_element_bytes(a->kv_type);
}

static int pass_length(const attention_args *a, int js, int j1) {
  int n = j1 - js + 1 < ATTN_PASS ? j1 - js + 1 : ATTN_PASS;
  if (js < a->start && js + n > a->start) n = a->start - js;
  return n;
}

static void attention_job_fn(void *p, int thread) {
  attention_job *job = (attention_job *)p;
  const attention_args *a = job->a;
  const int group = a->num_heads / a->num_kv_heads;
  int cursor = 0, item = pool_shares_next(&job->items, thread, &cursor);
  if (item < 0) return; /* nothing left: no scratch to allocate */
  const int hd = a->head_dim;
  const int q_dim = a->num_heads * hd;
  const int level = attn_block_level(hd);
  const int rows_max = job->tile * group;
  const size_t floats = (size_t)rows_max * ATTN_BLOCK + (size_t)rows_max * hd + (size_t)rows_max + (size_t)ATTN_PASS * hd;
  const size_t pointers = (size_t)4 * rows_max + 2 * ATTN_PASS;
  const size_t bytes = sizeof(double) * (size_t)rows_max + sizeof(void *) * pointers + sizeof(float) * floats + sizeof(int) * 3 * (size_t)rows_max;
  char *scratch = (char *)malloc(bytes);
  if (!scratch) return; /* the caller sees no output written; cannot happen at these sizes */
  for (size_t seen = atomic_load(&scratch_peak); bytes > seen && !atomic_compare_exchange_weak(&scratch_peak, &seen, bytes);) {
  }
  double *sum = (double *)scratch;                        /* [rows] running softmax denominators */
  const float **q_of = (const float **)(sum + rows_max);  /* [rows] each active row's query */
  float **score_of = (float **)(q_of + rows_max);         /* [rows] where its scores for this pass go */
  float **acc_of = score_of + rows_max;                   /* [rows] its running output */
  const float **p_of = (const float **)(acc_of + rows_max); /* [rows] its exps for this pass */
  const void **kv_rows = (const void **)(p_of + rows_max); /* [ATTN_PASS] key or value rows of a pass */
  float *scores = (float *)(kv_rows + 2 * ATTN_PASS);    /* [rows][ATTN_BLOCK] */
  float *acc = scores + (size_t)rows_max * ATTN_BLOCK;    /* [rows][hd] running outputs */
  float *max = acc + (size_t)rows_max * hd;               /* [rows] running maxima */
  float *widened = max + rows_max;                        /* [ATTN_PASS][hd] 16-bit cache rows widened */
  int *active = (int *)(widened + (size_t)ATTN_PASS * hd); /* rows with keys in the block */
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
    for (int b0 = tile_lo - tile_lo % ATTN_BLOCK; b0 <= tile_hi; b0 += ATTN_BLOCK) {
      const int j0 = b0 > tile_lo ? b0 : tile_lo;
      const int j1 = b0 + ATTN_BLOCK - 1 < tile_hi ? b0 + ATTN_BLOCK - 1 : tile_hi;
      /* Each query's keys within the block; none: its state stays as it is. Row x = r * group + g
         is token t0 + r, head kvh * group + g (the group's heads are adjacent). */
      int n_active = 0;
      for (int r = 0; r < nq; r++) {
        const int from = lo[r] > j0 ? lo[r] : j0, to = hi[r] < j1 ? hi[r] : j1;
        if (from > to) continue;
        for (int g = 0; g < group; g++) {
          const int x = r * group + g;
          q_of[n_active] = a->q + (size_t)(t0 + r) * q_dim + ((size_t)kvh * group + g) * hd;
          acc_of[n_active] = acc + (size_t)x * hd;
          active[n_active++] = x;
          row_from[x] = from;
          row_to[x] = to;
        }
      }
      if (n_active == 0) continue;
      const int first_slot = a->ring > 0 ? j0 % a->ring : j0;
      /* Scores of every active row for the block's keys, a pass of keys at a time; each key row
         is read (and widened) once for all the rows. Keys outside a row's range are computed
         and never used. */
      for (int js = j0, n; js <= j1; js += n) {
        n = pass_length(a, js, j1);
        const int slot = a->ring > 0 ? (first_slot + (js - j0)) % a->ring : js;
        const int type = pass_rows(a, a->cache_k, a->k_chunk, kvh, js, n, slot, level, widened, kv_rows);
        for (int i = 0; i < n_active; i++) score_of[i] = scores + (size_t)active[i] * ATTN_BLOCK + (js - b0);
        attn_scores_block(level, q_of, n_active, kv_rows, n, hd, a->scale, score_of, type, pass_ahead(a, js));
      }
      for (int i = 0; i < n_active; i++) {
        const int x = active[i];
        float *s = scores + (size_t)x * ATTN_BLOCK;
        online_step(s, row_from[x] - b0, row_to[x] - b0, &max[x], &sum[x], acc + (size_t)x * hd, hd);
        /* Keys outside the row's range weigh nothing in the values pass. */
        for (int j = j0; j < row_from[x]; j++) s[j - b0] = 0.0f;
        for (int j = row_to[x] + 1; j <= j1; j++) s[j - b0] = 0.0f;
      }
      for (int js = j0, n; js <= j1; js += n) {
        n = pass_length(a, js, j1);
        const int slot = a->ring > 0 ? (first_slot + (js - j0)) % a->ring : js;
        const int type = pass_rows(a, a->cache_v, a->v_chunk, kvh, js, n, slot, level, widened, kv_rows);
        for (int i = 0; i < n_active; i++) p_of[i] = scores + (size_t)active[i] * ATTN_BLOCK + (js - b0);
        attn_values_block(level, acc_of, p_of, n_active, kv_rows, n, hd, type, pass_ahead(a, js));
      }
    }
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
