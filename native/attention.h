#ifndef GEMMA3_ATTENTION_H
#define GEMMA3_ATTENTION_H
#include <stdint.h>

typedef struct {
  float *out;            /* [T, num_heads * head_dim] */
  const float *q;        /* [T, num_heads * head_dim] */
  const float *k_chunk;  /* [T, num_kv_heads * head_dim] */
  const float *v_chunk;
  /* [ceil(slots / block), num_kv_heads, block, head_dim], block = 1 << block_shift: one head's
     keys back to back within a block, blocks filled in order. */
  const float *cache_k;
  const float *cache_v;
  int slots;
  int block_shift;
  int ring;              /* ring size of a sliding layer, 0 for global (slot = position) */
  int start, T;
  int num_heads, num_kv_heads, head_dim;
  float scale;
  int window;            /* 0: no sliding window */
  const int32_t *span_start, *span_end; /* image blocks, chunk-relative, -1 for text; may be NULL */
} attention_args;

/** Kernel level chosen by the addon: 0 generic C, 1 AVX2 + FMA, 2 AVX-512. */
void attention_init(int level);
void attention_run(const attention_args *a);

/* Every token attends to every token (no mask, no cache): q, k, v, out are [N, num_heads * head_dim]. */
typedef struct {
  float *out;
  const float *q, *k, *v;
  int N, num_heads, head_dim;
  float scale;
} full_attention_args;

/** Returns 0 when out of memory. */
int attention_full_run(const full_attention_args *a);
#endif
