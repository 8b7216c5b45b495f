#ifndef GEMMA3_REPACK_H
#define GEMMA3_REPACK_H
#include "kernels.h"
size_t repacked_bytes(int dtype, int rows, int cols);
void repack_x4(const uint8_t *src, uint8_t *dst, int dtype, int rows, int cols);
/** Same layout, rewritten in place (a group is exactly as large as its four rows); rows % 4 == 0. */
int repack_x4_in_place(uint8_t *w, int dtype, int rows, int cols);
#endif
