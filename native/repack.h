#ifndef GEMMA3_REPACK_H
#define GEMMA3_REPACK_H
#include "kernels.h"
size_t repacked_bytes(int dtype, int rows, int cols);
void repack_x4(const uint8_t *src, uint8_t *dst, int dtype, int rows, int cols);
#endif
