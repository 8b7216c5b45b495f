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
//
// Q4_K / Q5_K / Q6_K ("K-quant x16", kernels-kquant-x16*.c): the same idea per 256-value super-block.
// Each field of the stored super-block becomes chunks of sixteen lanes, lane i holding row i's
// next `lane` bytes of that field (2 for the f16 scales, 4 otherwise), the fields one after the
// other in the order of the tables below. A group super-block is as large as its sixteen
// super-blocks (2304 / 2816 / 3360 bytes):
//   Q4_K: d[16] | dmin[16] | scales: 3 chunks | qs: 32 chunks (chunk c: qs bytes 4c..4c+3, whose
//         low nibbles are values 64(c/8) + 4(c%8).. and high nibbles the same + 32)
//   Q5_K: Q4_K's fields with qh: 8 chunks (chunk c: qh bytes 4c..4c+3, the fifth bits of values
//         l = 4c..4c+3 in each 64-value pair of sub-blocks) between scales and qs
//   Q6_K: d[16] | scales: 4 chunks (int8, four per lane) | then for the value halves h = 0, 1 and
//         c = 0..7, three chunks in the order the kernels read them: ql bytes 64h + 4c.. (values
//         128h + 4c.., + 64 in the high nibbles), ql bytes 64h + 32 + 4c.. (+ 32, + 96), qh bytes
//         32h + 4c.. (their two high bits each): one sequential stream (decoding with two
//         threads ran behind on the three strided fields: 29 -> 34 GB/s, A/B on a busy machine)
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

/* One field (or span) of a stored super-block: where it starts and how long it is there, and the bytes per lane. */
typedef struct {
  int offset, bytes, lane;
} kquant_field;

static const kquant_field Q4K_FIELDS[] = {{0, 2, 2}, {2, 2, 2}, {4, 12, 4}, {16, 128, 4}};
#define Q6K_TRIPLE(h, c) {64 * (h) + 4 * (c), 4, 4}, {64 * (h) + 32 + 4 * (c), 4, 4}, {128 + 32 * (h) + 4 * (c), 4, 4}
#define Q6K_HALF(h) Q6K_TRIPLE(h, 0), Q6K_TRIPLE(h, 1), Q6K_TRIPLE(h, 2), Q6K_TRIPLE(h, 3), Q6K_TRIPLE(h, 4), Q6K_TRIPLE(h, 5), \
                    Q6K_TRIPLE(h, 6), Q6K_TRIPLE(h, 7)
static const kquant_field Q6K_FIELDS[] = {{208, 2, 2}, {192, 16, 4}, Q6K_HALF(0), Q6K_HALF(1)};
static const kquant_field Q5K_FIELDS[] = {{0, 2, 2}, {2, 2, 2}, {4, 12, 4}, {16, 32, 4}, {48, 128, 4}};

static const kquant_field *kquant_fields(int dtype, int *count) {
  *count = dtype == DT_Q5_K ? 5 : dtype == DT_Q4_K ? 4 : (int)(sizeof(Q6K_FIELDS) / sizeof(Q6K_FIELDS[0]));
  return dtype == DT_Q4_K ? Q4K_FIELDS : dtype == DT_Q5_K ? Q5K_FIELDS : Q6K_FIELDS;
}

/* Sixteen rows' super-block b (rows rb bytes apart, from `rows16`) into the group super-block at dst. */
static void repack_kquant_superblock(const uint8_t *rows16, size_t rb, int b, size_t block, const kquant_field *f, int nf, uint8_t *dst) {
  for (int k = 0; k < nf; k++) {
    for (int i = 0; i < GROUP_ROWS; i++) {
      const uint8_t *s = rows16 + (size_t)i * rb + (size_t)b * block + f[k].offset;
      /* Constant-size copies (plain moves; a variable size is a call per lane: 4x slower loads). */
      if (f[k].lane == 2) {
        for (int c = 0; c < f[k].bytes / 2; c++) memcpy(dst + c * GROUP_ROWS * 2 + i * 2, s + c * 2, 2);
      } else {
        for (int c = 0; c < f[k].bytes / 4; c++) memcpy(dst + c * GROUP_ROWS * 4 + i * 4, s + c * 4, 4);
      }
    }
    dst += GROUP_ROWS * f[k].bytes;
  }
}

static void repack_kquant_group(const uint8_t *rows16, uint8_t *dst, int dtype, int cols) {
  int nf;
  const kquant_field *f = kquant_fields(dtype, &nf);
  const size_t block = row_bytes(dtype, QK_K), rb = row_bytes(dtype, cols);
  for (int b = 0; b < cols / QK_K; b++) repack_kquant_superblock(rows16, rb, b, block, f, nf, dst + (size_t)b * GROUP_ROWS * block);
}

static int is_kquant_source(int dtype) { return dtype == DT_Q4_K || dtype == DT_Q5_K || dtype == DT_Q6_K; }
static int is_x16_source(int dtype) { return dtype == DT_Q4_0 || dtype == DT_Q8_0 || is_kquant_source(dtype); }

/* Group g's sixteen rows (`src`) into `dst`, whichever family the type belongs to. */
static void repack_any_group(const uint8_t *src, uint8_t *dst, int dtype, int cols) {
  if (is_kquant_source(dtype)) repack_kquant_group(src, dst, dtype, cols);
  else repack_group(src, dst, dtype == DT_Q4_0 ? 16 : 32, cols / 32);
}

int repack_x16(const uint8_t *src, uint8_t *dst, int dtype, int rows, int cols) {
  if (rows % GROUP_ROWS != 0 || !is_x16_source(dtype)) return 0;
  const size_t group_bytes = GROUP_ROWS * row_bytes(dtype, cols);
  for (int g = 0; g < rows / GROUP_ROWS; g++) repack_any_group(src + g * group_bytes, dst + g * group_bytes, dtype, cols);
  return 1;
}

int repack_x16_in_place(uint8_t *w, int dtype, int rows, int cols) {
  if (rows % GROUP_ROWS != 0 || !is_x16_source(dtype)) return 0;
  const size_t group_bytes = GROUP_ROWS * row_bytes(dtype, cols);
  uint8_t *tmp = (uint8_t *)malloc(group_bytes);
  if (!tmp) return 0;
  /* One thread: page faults on one mapping from two threads were three times slower here. */
  for (int g = 0; g < rows / GROUP_ROWS; g++) {
    uint8_t *group = w + (size_t)g * group_bytes;
    memcpy(tmp, group, group_bytes);
    repack_any_group(tmp, group, dtype, cols);
  }
  free(tmp);
  return 1;
}
