// Reference K-quant quantizers (ggml's quantize_row_q4_K_ref / _q5_K_ref / _q6_K_ref), for the converter.
#ifndef GEMMA3_QUANTIZE_KQUANT_H
#define GEMMA3_QUANTIZE_KQUANT_H

#include <stddef.h>
#include <stdint.h>

/** n floats (n % 256 == 0) → n / 256 Q4_K blocks of 144 bytes, or Q6_K blocks of 210 bytes. */
void quantize_q4_k_ref(const float *x, uint8_t *y, size_t n);
void quantize_q6_k_ref(const float *x, uint8_t *y, size_t n);
/** n / 256 Q5_K blocks of 176 bytes. */
void quantize_q5_k_ref(const float *x, uint8_t *y, size_t n);

#endif
