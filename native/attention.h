#ifndef GEMMA3_ATTENTION_H
#define GEMMA3_ATTENTION_H
#include <stddef.h>
#include <stdint.h>

/* Index of the first element of `slot` for key/value head `head` in a blocked cache
   [ceil(slots / block), num_kv_heads, block, head_dim], block = 1 << block_shift. The one
   definition in C; kvIndex in src/backend/backend.ts is its TypeScript twin, and
   test/native-kernels.test.ts checks the two agree (through the addon's kvIndex export). */
static inline size_t kv_index(size_t slot, int head, int num_kv_heads, int head_dim, int block_shift) {
  const size_t block_index = (slot >> block_shift) * (size_t)num_kv_heads + (size_t)head;
  return ((block_index << block_shift) + (slot & (((size_t)1 << block_shift) - 1))) * (size_t)head_dim;
}

typedef struct {
  float *out;            /* [T, num_heads * head_dim] */
  const float *q;        /* [T, num_heads * head_dim] */
  const float *k_chunk;  /* [T, num_kv_heads * head_dim] */
  const float *v_chunk;
  /* [ceil(slots / block), num_kv_heads, block, head_dim], block = 1 << block_shift: one head's
     keys back to back within a block, blocks filled in order. Elements of kv_type (kv-types.h):
     floats, or f16 / bf16 bits widened to float as they are read. */
  const void *cache_k;
  const void *cache_v;
  int kv_type;
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
/* The most scratch memory one thread took in attention_run since the last reset (bytes): a
   tile of queries by a block of keys, independent of the prompt length. reset: start again at 0. */
size_t attention_scratch_peak(int reset);

/* Stores T positions' keys and values ([T, num_kv_heads * head_dim], positions start + t) into
   the blocked cache of kv_type (rounded to it); a sliding ring (ring > 0: slot = position % ring)
   keeps its last ring. */
void write_kv_run(void *cache_k, void *cache_v, int kv_type, const float *k, const float *v, int ring, int block_shift, int start, int T,
                  int num_kv_heads, int head_dim);

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
