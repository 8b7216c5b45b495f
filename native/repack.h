#ifndef GEMMA3_REPACK_H
#define GEMMA3_REPACK_H
#include "kernels.h"
size_t repacked_bytes(int dtype, int rows, int cols);
/** The x16 layout of a Q4_0 / Q8_0 matrix into `dst`; 0 (nothing written) unless rows % 16 == 0. */
int repack_x16(const uint8_t *src, uint8_t *dst, int dtype, int rows, int cols);
/** The same, rewritten in place (a group is exactly as large as its sixteen rows). */
int repack_x16_in_place(uint8_t *w, int dtype, int rows, int cols);
#endif
