// The scale check of every K-quant / Q5 tensor at load reads one 2-byte field (or two) per block
// of the whole file: in JavaScript 0.3-0.6 s for a 4B Q6_K, here the pool's threads stream it.
#include "scale-check.h"

#include <stdatomic.h>

#include "kernels.h"
#include "pool.h"

#define SLICE_BLOCKS 8192

typedef struct {
  const uint8_t *data;
  int64_t blocks;
  size_t block_bytes;
  int high0, high1; /* the high bytes of the (at most two) scale fields */
  pool_shares slices;
  _Atomic int64_t first; /* the lowest bad block found, INT64_MAX while none */
} scale_scan;

static void scan_fn(void *arg, int thread) {
  scale_scan *j = (scale_scan *)arg;
  for (int cursor = 0, slice; (slice = pool_shares_next(&j->slices, thread, &cursor)) >= 0;) {
    const int64_t b0 = (int64_t)slice * SLICE_BLOCKS;
    if (b0 > atomic_load_explicit(&j->first, memory_order_relaxed)) continue;
    const int64_t b1 = b0 + SLICE_BLOCKS < j->blocks ? b0 + SLICE_BLOCKS : j->blocks;
    const uint8_t *p = j->data + (size_t)b0 * j->block_bytes;
    for (int64_t b = b0; b < b1; b++, p += j->block_bytes) {
      /* Exponent bits all ones: ±Infinity or NaN. */
      if ((p[j->high0] & 0x7c) != 0x7c && (p[j->high1] & 0x7c) != 0x7c) continue;
      int64_t seen = atomic_load(&j->first);
      while (b < seen && !atomic_compare_exchange_weak(&j->first, &seen, b)) {}
      break;
    }
  }
}

int64_t first_nonfinite_scale_block(const uint8_t *data, size_t bytes, int dtype) {
  scale_scan j; /* not zeroed: its shares are big */
  switch (dtype) {
    case DT_Q5_0: j.block_bytes = Q5_0_BLOCK_BYTES, j.high0 = 1, j.high1 = 1; break;
    case DT_Q5_1: j.block_bytes = Q5_1_BLOCK_BYTES, j.high0 = 1, j.high1 = 3; break;
    case DT_Q4_K: j.block_bytes = Q4_K_BLOCK_BYTES, j.high0 = 1, j.high1 = 3; break;
    case DT_Q5_K: j.block_bytes = Q5_K_BLOCK_BYTES, j.high0 = 1, j.high1 = 3; break;
    case DT_Q6_K: j.block_bytes = Q6_K_BLOCK_BYTES, j.high0 = 209, j.high1 = 209; break;
    default: return -2;
  }
  j.data = data;
  j.blocks = (int64_t)(bytes / j.block_bytes);
  atomic_init(&j.first, INT64_MAX);
  pool_shares_init(&j.slices, (int)((j.blocks + SLICE_BLOCKS - 1) / SLICE_BLOCKS));
  pool_run(scan_fn, &j);
  const int64_t first = atomic_load(&j.first);
  return first == INT64_MAX ? -1 : first;
}
