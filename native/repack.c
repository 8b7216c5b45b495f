// Interleaved ("x16") layouts of Q4_0 / Q8_0 matrices for the AVX-512 VNNI kernels
// (kernels-x16.c): sixteen rows' blocks side by side so that each 64-byte load holds four
// consecutive quants of each of the sixteen rows, one row per int32 lane.
// Group g (rows 16g..16g+15), block b:
//   f16 d[16]                        the sixteen rows' scales
//   Q4_0x16: chunk c = 0..3 of 64 bytes: lane i = bytes 4c..4c+3 of row i's qs[16]
//            (low nibbles: quants 4c..4c+3, high nibbles: quants 16+4c..16+4c+3)
//   Q8_0x16: chunk c = 0..7 of 64 bytes: lane i = quants 4c..4c+3 of row i
// A group block is exactly as large as the sixteen blocks it holds (288 / 544 bytes), so a
// matrix can be rewritten in place; only matrices with rows % 16 == 0 are repacked.
#include "repack.h"

#include <stdlib.h>
#include <string.h>

#define GROUP_ROWS 16

size_t repacked_bytes(int dtype, int rows, int cols) {
  return row_bytes(dtype, cols) * (size_t)rows;
}

/* One group: `rows16` (the sixteen rows back to back) into `dst`. */
static void repack_group(const uint8_t *rows16, uint8_t *dst, int qbytes, int nb) {
  const int block = qbytes + 2, group_block = 32 + GROUP_ROWS * qbytes;
  const size_t row_bytes = (size_t)nb * block;
  for (int b = 0; b < nb; b++) {
    uint8_t *d = dst + (size_t)b * group_block;
    for (int i = 0; i < GROUP_ROWS; i++) {
      const uint8_t *s = rows16 + (size_t)i * row_bytes + (size_t)b * block;
      d[2 * i] = s[0];
      d[2 * i + 1] = s[1];
      for (int c = 0; c < qbytes / 4; c++) memcpy(d + 32 + 64 * c + 4 * i, s + 2 + 4 * c, 4);
    }
  }
}

int repack_x16(const uint8_t *src, uint8_t *dst, int dtype, int rows, int cols) {
  if (rows % GROUP_ROWS != 0) return 0;
  const int nb = cols / 32, qbytes = dtype == DT_Q4_0 ? 16 : 32;
  const size_t group_bytes = GROUP_ROWS * row_bytes(dtype, cols);
  for (int g = 0; g < rows / GROUP_ROWS; g++) repack_group(src + g * group_bytes, dst + g * group_bytes, qbytes, nb);
  return 1;
}

int repack_x16_in_place(uint8_t *w, int dtype, int rows, int cols) {
  if (rows % GROUP_ROWS != 0) return 0;
  const int nb = cols / 32, qbytes = dtype == DT_Q4_0 ? 16 : 32;
  const size_t group_bytes = GROUP_ROWS * row_bytes(dtype, cols);
  uint8_t *tmp = (uint8_t *)malloc(group_bytes);
  if (!tmp) return 0;
  /* One thread: page faults on one mapping from two threads were three times slower here. */
  for (int g = 0; g < rows / GROUP_ROWS; g++) {
    uint8_t *group = w + (size_t)g * group_bytes;
    memcpy(tmp, group, group_bytes);
    repack_group(tmp, group, qbytes, nb);
  }
  free(tmp);
  return 1;
}
