#ifndef GEMMA3_REPACK_H
#define GEMMA3_REPACK_H
#include <string.h>

#include "kernels.h"
size_t repacked_bytes(int dtype, int rows, int cols);
/** The x16 layout of a Q4_0 / Q8_0 matrix into `dst`; 0 (nothing written) unless rows % 16 == 0. */
int repack_x16(const uint8_t *src, uint8_t *dst, int dtype, int rows, int cols);
/** The same, rewritten in place (a group is exactly as large as its sixteen rows). */
int repack_x16_in_place(uint8_t *w, int dtype, int rows, int cols);

/* Shared by the x16 kernels of every width (kernels-x16.c, kernels-x16-avx2.c). */
/* Activation rows per pass over a group of weight rows: their Q8 blocks stay in L2. */
#define X16_ACT_CHUNK 64
/* Bytes ahead of the current group block that are prefetched (about sixteen Q4_0 groups). */
#define X16_PREFETCH_AHEAD 4608
/* The lanes [*lo, *hi) of group g (rows 16g..16g+15) inside the row range [r0, r1): the kernels
   write only those rows' outputs, so a range may start and end inside a group. */
static inline void x16_group_lanes(int g, int r0, int r1, int *lo, int *hi) {
  *lo = g * 16 < r0 ? r0 - g * 16 : 0;
  *hi = g * 16 + 16 > r1 ? r1 - g * 16 : 16;
}
/* Four activation quants as one int32, to be broadcast to every row's lane. */
static inline int32_t x16_quad(const int8_t *p) {
  int32_t v;
  memcpy(&v, p, 4);
  return v;
}
#endif
