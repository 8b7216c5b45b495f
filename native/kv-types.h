/* The KV cache's storage types: float32, or IEEE half / bfloat16 bits rounded to nearest even
   when written and widened to float32 when read. The twins of src/backend/kv-types.ts. */
#ifndef GEMMA3_KV_TYPES_H
#define GEMMA3_KV_TYPES_H
#include <stddef.h>
#include <stdint.h>

/* The codes match the weight dtypes of kernels.h (and KV_TYPE_CODES in native-backend.ts). */
enum { KV_F32 = 0, KV_F16 = 1, KV_BF16 = 2 };

/** Kernel level from attention_init: 0 generic C (table / scalar), >= 1 F16C + AVX2. */
void kv_types_init(int level);

/** Bytes of one stored element. */
static inline size_t kv_element_bytes(int type) { return type == KV_F32 ? 4 : 2; }

/** dst[i] = the float value of src[i] (bits of `type`, KV_F16 or KV_BF16) for i < n. */
void kv_widen(float *dst, const uint16_t *src, int n, int type);
/** dst[i] = src[i] rounded to `type` (KV_F16 or KV_BF16) for i < n. */
void kv_narrow(uint16_t *dst, const float *src, int n, int type);
/** x[i] = x[i] stored as `type` and read back (KV_F32: unchanged), for i < n. */
void kv_round(float *x, size_t n, int type);
#endif
