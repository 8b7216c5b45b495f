// The load-time check that a quantized tensor's f16 block scales are finite (a NaN or infinite
// scale turns every product it touches into NaN: the file is corrupt).
#ifndef GEMMA3_SCALE_CHECK_H
#define GEMMA3_SCALE_CHECK_H

#include <stddef.h>
#include <stdint.h>

/** The first block of `bytes` of `dtype` data (Q5_0 / Q5_1 / Q4_K / Q5_K / Q6_K) with a NaN or
    infinite f16 scale (d, Q5_1's m, the K-quants' dmin), or -1; the pool's threads scan in parallel.
    -2 for a type without such scales. */
int64_t first_nonfinite_scale_block(const uint8_t *data, size_t bytes, int dtype);

#endif
