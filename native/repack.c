// Interleaved ("x4") layouts of Q4_0 / Q8_0 matrices for the AVX-512 kernels: four rows' blocks
// side by side, so one 64-byte load feeds four rows and the four scales are one 8-byte load.
// Group g, block b (rows 4g..4g+3, padded with zero rows at the end):
//   Q4_0x4: f16 d[4] | qs[4][16]  (72 bytes, the same size as four Q4_0 blocks)
//   Q8_0x4: f16 d[4] | qs[4][32]  (136 bytes)
#include "repack.h"

#include <stdlib.h>
#include <string.h>

size_t repacked_bytes(int dtype, int rows, int cols) {
  const size_t groups = (size_t)(rows + 3) / 4, nb = (size_t)cols / 32;
  return groups * nb * (dtype == DT_Q4_0 ? 72 : 136);
}

void repack_x4(const uint8_t *src, uint8_t *dst, int dtype, int rows, int cols) {
  const int nb = cols / 32;
  const int block = dtype == DT_Q4_0 ? 18 : 34, qbytes = block - 2, group_block = 8 + 4 * qbytes;
  const size_t row_bytes = (size_t)nb * block;
  memset(dst, 0, repacked_bytes(dtype, rows, cols));
  for (int r = 0; r < rows; r++) {
    const int g = r / 4, i = r % 4;
    for (int b = 0; b < nb; b++) {
      const uint8_t *s = src + (size_t)r * row_bytes + (size_t)b * block;
      uint8_t *d = dst + ((size_t)g * nb + b) * group_block;
      memcpy(d + 2 * i, s, 2);
      memcpy(d + 8 + (size_t)i * qbytes, s + 2, (size_t)qbytes);
    }
  }
}

/* One group of four rows, from `rows4` (the four rows back to back) into `dst`. QBYTES is a
   compile-time constant so the copies inline. */
#define REPACK_GROUP(QBYTES)                                                              \
  do {                                                                                   \
    const int block = (QBYTES) + 2, group_block = 8 + 4 * (QBYTES);                       \
    for (int b = 0; b < nb; b++) {                                                       \
      uint8_t *d = dst + (size_t)b * group_block;                                        \
      for (int i = 0; i < 4; i++) {                                                      \
        const uint8_t *s = rows4 + (size_t)i * row_bytes + (size_t)b * block;             \
        d[2 * i] = s[0];                                                                 \
        d[2 * i + 1] = s[1];                                                             \
        memcpy(d + 8 + i * (QBYTES), s + 2, (QBYTES));                                   \
      }                                                                                  \
    }                                                                                    \
  } while (0)

typedef struct {
  uint8_t *w;
  int dtype, rows, cols;
  int failed;
} repack_job;

/* Groups are independent; a job may cover a share of them. */
static void repack_job_fn(void *p, int thread, int nthreads) {
  repack_job *j = (repack_job *)p;
  const int nb = j->cols / 32, groups = j->rows / 4;
  const size_t row_bytes = (size_t)nb * (j->dtype == DT_Q4_0 ? 18 : 34), group_bytes = 4 * row_bytes;
  const int per = (groups + nthreads - 1) / nthreads;
  const int g0 = thread * per, g1 = g0 + per < groups ? g0 + per : groups;
  if (g0 >= g1) return;
  uint8_t *tmp = (uint8_t *)malloc(group_bytes);
  if (!tmp) {
    j->failed = 1;
    return;
  }
  uint8_t *w = j->w;
  const int dtype = j->dtype;
  for (int g = g0; g < g1; g++) {
    uint8_t *dst = w + (size_t)g * group_bytes;
    const uint8_t *rows4 = tmp;
    memcpy(tmp, dst, group_bytes);
    if (dtype == DT_Q4_0) REPACK_GROUP(16);
    else REPACK_GROUP(32);
  }
  free(tmp);
}

int repack_x4_in_place(uint8_t *w, int dtype, int rows, int cols) {
  if (rows % 4 != 0) return 0;
  repack_job j = {w, dtype, rows, cols, 0};
  /* One thread: page faults on one mapping from two threads were three times slower here. */
  repack_job_fn(&j, 0, 1);
  return !j.failed;
}
