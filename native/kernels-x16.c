// AVX-512 VNNI kernels for the interleaved x16 layouts (repack.c). Each int32 lane of a zmm is
// one weight row: per block, eight dpbusd (four quants each, the activation's four bytes
// broadcast from memory; two interleaved chains, as one chain is latency-bound) give sixteen
// rows' exact integer block dot products for one
// activation row, then one convert and one multiply-add by the two scales. Up to eight
// activation rows share every unpacked weight register. The unsigned-operand correction
// (weights offset by +8 for Q4_0, +128 for Q8_0) starts each integer sum, so a block's result
// equals the row kernels' integer dot product exactly.
#include "kernels.h"
#include "repack.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512vnni,avx512dq,avx2,fma,f16c")

#define MAXN 8
/* Bytes ahead in each row that the kernels over the row layout prefetch (tile_rows_*). */
#define ROW_LEAD_BYTES 544

static inline __m512i bcast4(const int8_t *p) { return _mm512_set1_epi32(x16_quad(p)); }

/* acc + (dw · d_x) · Σ_k w[k] · x[k], the sixteen rows' exact integer dot products with one
   activation block; `offset` (8 for Q4_0, 128 for Q8_0) is what the unsigned weights carry. */
static inline __attribute__((always_inline)) __m512 block_fma(const __m512i w[8], __m512 dw, const q8_block *xb, int offset,
                                                              __m512 acc) {
  __m512i s = _mm512_set1_epi32(-offset * xb->sum), s1 = _mm512_setzero_si512();
  for (int k = 0; k < 8; k += 2) {
    s = _mm512_dpbusd_epi32(s, w[k], bcast4(xb->qs + 4 * k));
    s1 = _mm512_dpbusd_epi32(s1, w[k + 1], bcast4(xb->qs + 4 * k + 4));
  }
  return _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(s, s1)), _mm512_mul_ps(dw, _mm512_set1_ps(xb->d)), acc);
}

/* A Q4_0 block's sixteen rows, four chunks of packed nibbles → eight of unsigned quants (low
   nibbles, quants 0-15, then high, 16-31), as block_fma takes them. */
static inline __attribute__((always_inline)) void unpack_q4(const __m512i v[4], __m512i w[8]) {
  const __m512i mask = _mm512_set1_epi8(0x0f);
  for (int c = 0; c < 4; c++) {
    w[c] = _mm512_and_si512(v[c], mask);
    w[c + 4] = _mm512_and_si512(_mm512_srli_epi16(v[c], 4), mask);
  }
}

/* acc[j] (16 rows) += Σ_b block dot products of group `g` with activation row j. */
static inline __attribute__((always_inline)) void tile_q4(const uint8_t *g, int nb, const q8_block *x, int N, __m512 acc[MAXN]) {
  for (int j = 0; j < N; j++) acc[j] = _mm512_setzero_ps();
  for (int b = 0; b < nb; b++, g += 288) {
    /* With several activation rows the loop is compute-heavy and the hardware prefetcher falls
       behind; one row is a pure stream, which it handles better alone. */
    if (N > 1) for (int l = 0; l < 288; l += 64) _mm_prefetch((const char *)g + X16_PREFETCH_AHEAD + l, _MM_HINT_T0);
    const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)g));
    __m512i v[4], w[8];
    for (int c = 0; c < 4; c++) v[c] = _mm512_loadu_si512((const void *)(g + 32 + 64 * c));
    unpack_q4(v, w);
    for (int j = 0; j < N; j++) acc[j] = block_fma(w, dw, &x[(size_t)j * nb + b], 8, acc[j]);
  }
}

static inline __attribute__((always_inline)) void tile_q8(const uint8_t *g, int nb, const q8_block *x, int N, __m512 acc[MAXN]) {
  for (int j = 0; j < N; j++) acc[j] = _mm512_setzero_ps();
  const __m512i flip = _mm512_set1_epi8((char)0x80);
  for (int b = 0; b < nb; b++, g += 544) {
    if (N > 1) for (int l = 0; l < 544; l += 64) _mm_prefetch((const char *)g + X16_PREFETCH_AHEAD + l, _MM_HINT_T0);
    const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)g));
    __m512i w[8];
    for (int c = 0; c < 8; c++) w[c] = _mm512_xor_si512(_mm512_loadu_si512((const void *)(g + 32 + 64 * c)), flip);
    for (int j = 0; j < N; j++) acc[j] = block_fma(w, dw, &x[(size_t)j * nb + b], 128, acc[j]);
  }
}

/* Constant N per call site so each tile is fully unrolled with its accumulators in registers. */
#define DISPATCH(TILE)                                                      \
  switch (N) {                                                              \
    case 1: TILE(gp, nb, xn, 1, acc); break;                                \
    case 2: TILE(gp, nb, xn, 2, acc); break;                                \
    case 3: TILE(gp, nb, xn, 3, acc); break;                                \
    case 4: TILE(gp, nb, xn, 4, acc); break;                                \
    case 5: TILE(gp, nb, xn, 5, acc); break;                                \
    case 6: TILE(gp, nb, xn, 6, acc); break;                                \
    case 7: TILE(gp, nb, xn, 7, acc); break;                                \
    default: TILE(gp, nb, xn, 8, acc); break;                               \
  }

/* Four 64-byte chunks, lane i = bytes 4c..4c+3 of the sixteen bytes at src + i·stride: a 16 × 4
   dword transpose (rows 4L + q gathered as 128-bit lane L of z[q], then 4 × 4 within lanes). */
static inline __attribute__((always_inline)) void transpose_16x16_regs(const uint8_t *src, size_t stride, __m512i out[4]) {
  __m512i z[4];
  for (int q = 0; q < 4; q++) {
    __m512i v = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)(src + (size_t)q * stride)));
    v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(src + (size_t)(q + 4) * stride)), 1);
    v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(src + (size_t)(q + 8) * stride)), 2);
    z[q] = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(src + (size_t)(q + 12) * stride)), 3);
  }
  const __m512i t0 = _mm512_unpacklo_epi32(z[0], z[1]), t1 = _mm512_unpackhi_epi32(z[0], z[1]);
  const __m512i t2 = _mm512_unpacklo_epi32(z[2], z[3]), t3 = _mm512_unpackhi_epi32(z[2], z[3]);
  out[0] = _mm512_unpacklo_epi64(t0, t2);
  out[1] = _mm512_unpackhi_epi64(t0, t2);
  out[2] = _mm512_unpacklo_epi64(t1, t3);
  out[3] = _mm512_unpackhi_epi64(t1, t3);
}

static inline void transpose_16x16(const uint8_t *src, size_t stride, uint8_t *dst) {
  __m512i t[4];
  transpose_16x16_regs(src, stride, t);
  for (int c = 0; c < 4; c++) _mm512_storeu_si512((void *)(dst + 64 * c), t[c]);
}

/* The sixteen rows' block scales (the first two bytes of each row's block at s, rows rb apart),
   side by side as x16 keeps them. Sixteen plain loads: the dword gather they replace cost a
   fifth of a one-row product from the row layout (Q4_0 37 -> 42 GB/s). */
static inline __attribute__((always_inline)) void gather_scales(const uint8_t *s, size_t rb, uint8_t *dst) {
  for (int r = 0; r < 16; r++) memcpy(dst + 2 * r, s + (size_t)r * rb, 2);
}

/* Each of the sixteen rows' bytes ROW_LEAD_BYTES ahead of block b at s (in the next group's rows
   once past the end): sixteen strided streams are too many for the hardware prefetcher, and
   prefetching the next group as one stream came too late for its last rows (42 -> 48 GB/s).
   At every Q8_0 block (34 bytes) and every third Q4_0 block (54 bytes): no line is skipped. */
static inline __attribute__((always_inline)) void prefetch_rows_ahead(const uint8_t *s, size_t rb, int b, int nb, int block) {
  if (block == 18 && b % 3 != 0) return;
  const int lead = ROW_LEAD_BYTES / block;
  const uint8_t *ahead = s + (size_t)lead * block + (b + lead < nb ? 0 : 15 * rb);
  for (int r = 0; r < 16; r++) _mm_prefetch((const char *)ahead + (size_t)r * rb, _MM_HINT_T0);
}

/* One group of sixteen rows in the row layout → its x16 form (repack.c's, byte for byte): into
   the scratch of prompts over a file mapping, or into a background copy. */
static void repack_group_simd(const uint8_t *rows16, uint8_t *dst, int q4, int nb) {
  const int block = q4 ? 18 : 34, group_block = q4 ? 288 : 544;
  const size_t rb = (size_t)nb * block;
  for (int b = 0; b < nb; b++) {
    const uint8_t *s = rows16 + (size_t)b * block;
    uint8_t *d = dst + (size_t)b * group_block;
    prefetch_rows_ahead(s, rb, b, nb, block);
    gather_scales(s, rb, d);
    transpose_16x16(s + 2, rb, d + 32);
    if (!q4) transpose_16x16(s + 18, rb, d + 32 + 256);
  }
}

/* Per thread: one group rearranged at a time, for matrices still in the row layout. */
static _Thread_local uint8_t *group_scratch = NULL;
static _Thread_local size_t group_scratch_bytes = 0;
static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static void make_scratch_key(void) { pthread_key_create(&scratch_key, free); }

static uint8_t *x16_scratch(size_t bytes) {
  if (bytes > group_scratch_bytes) {
    pthread_once(&scratch_once, make_scratch_key);
    free(group_scratch);
    group_scratch = (uint8_t *)aligned_alloc(64, (bytes + 63) / 64 * 64);
    group_scratch_bytes = group_scratch ? bytes : 0;
    pthread_setspecific(scratch_key, group_scratch); /* freed when the thread ends */
  }
  return group_scratch;
}

/* The sixteen rows' scales of the row layout's block at s, widened as tile_q4 / tile_q8 do. */
static inline __attribute__((always_inline)) __m512 row_scales(const uint8_t *s, size_t rb) {
  uint16_t scales[16] __attribute__((aligned(32)));
  gather_scales(s, rb, (uint8_t *)scales);
  return _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)scales));
}

/* Up to eight activation rows over a group still in the row layout (decoding from a file
   mapping): each block is rearranged in registers and used at once, with no scratch; the same
   values and operations as tile_q4 / tile_q8 over the repacked group, so every result bit is
   the same. */
static inline __attribute__((always_inline)) void tile_rows_q4(const uint8_t *rows16, int nb, const q8_block *x, int N, __m512 acc[MAXN]) {
  const size_t rb = (size_t)nb * 18;
  for (int j = 0; j < N; j++) acc[j] = _mm512_setzero_ps();
  for (int b = 0; b < nb; b++) {
    const uint8_t *s = rows16 + (size_t)b * 18;
    prefetch_rows_ahead(s, rb, b, nb, 18);
    const __m512 dw = row_scales(s, rb);
    __m512i v[4], w[8];
    transpose_16x16_regs(s + 2, rb, v);
    unpack_q4(v, w);
    for (int j = 0; j < N; j++) acc[j] = block_fma(w, dw, &x[(size_t)j * nb + b], 8, acc[j]);
  }
}

static inline __attribute__((always_inline)) void tile_rows_q8(const uint8_t *rows16, int nb, const q8_block *x, int N, __m512 acc[MAXN]) {
  const size_t rb = (size_t)nb * 34;
  const __m512i flip = _mm512_set1_epi8((char)0x80);
  for (int j = 0; j < N; j++) acc[j] = _mm512_setzero_ps();
  for (int b = 0; b < nb; b++) {
    const uint8_t *s = rows16 + (size_t)b * 34;
    prefetch_rows_ahead(s, rb, b, nb, 34);
    const __m512 dw = row_scales(s, rb);
    __m512i w[8];
    transpose_16x16_regs(s + 2, rb, w);
    transpose_16x16_regs(s + 18, rb, w + 4);
    for (int c = 0; c < 8; c++) w[c] = _mm512_xor_si512(w[c], flip);
    for (int j = 0; j < N; j++) acc[j] = block_fma(w, dw, &x[(size_t)j * nb + b], 128, acc[j]);
  }
}

/* from_rows: the matrix is in the row layout. Up to MAXN activation rows (decoding) rearrange
   each block in registers (tile_rows_*); more (prompts) rearrange each group into a per-thread
   scratch as it is reached, once per chunk of activation rows. Either way the arithmetic, and
   every result bit, is the x16 kernel's: a matrix served from a file mapping computes exactly
   what its repacked copy would. */
static void x16_groups(const matmul_args *a, int r0, int r1, int from_rows) {
  const int nb = a->cols / 32;
  const int q4 = a->dtype == DT_Q4_0_X16 || a->dtype == DT_Q4_0;
  const size_t group_bytes = (size_t)nb * (q4 ? 288 : 544);
  const int in_registers = from_rows && a->batch <= MAXN;
  uint8_t *scratch = from_rows && !in_registers ? x16_scratch(group_bytes) : NULL;
  if (from_rows && !in_registers && !scratch) {
    matmul_rows_avx512(a, r0, r1);
    return;
  }
  const q8_block *x = (const q8_block *)a->x;
  __m512 acc[MAXN];
  for (int c0 = 0; c0 < a->batch; c0 += X16_ACT_CHUNK) {
    const int c1 = a->batch - c0 < X16_ACT_CHUNK ? a->batch : c0 + X16_ACT_CHUNK;
    for (int g = r0 / 16; g * 16 < r1; g++) {
      const uint8_t *gp = a->w + (size_t)g * group_bytes;
      int lo, hi; /* a masked store keeps the group's other rows untouched */
      x16_group_lanes(g, r0, r1, &lo, &hi);
      const __mmask16 keep = (__mmask16)(((1u << hi) - 1) & ~((1u << lo) - 1));
      if (scratch) {
        repack_group_simd(gp, scratch, q4, nb);
        gp = scratch;
      }
      for (int n = c0; n < c1; n += MAXN) {
        const int N = c1 - n < MAXN ? c1 - n : MAXN;
        const q8_block *xn = x + (size_t)n * nb;
        if (in_registers && q4) {
          DISPATCH(tile_rows_q4)
        } else if (in_registers) {
          DISPATCH(tile_rows_q8)
        } else if (q4) {
          DISPATCH(tile_q4)
        } else {
          DISPATCH(tile_q8)
        }
        float *o = a->out + (g * 16 - a->row_start);
        for (int j = 0; j < N; j++) _mm512_mask_storeu_ps(o + (size_t)(n + j) * a->out_stride, keep, acc[j]);
      }
    }
  }
}

void matmul_rows_x16(const matmul_args *a, int r0, int r1) { x16_groups(a, r0, r1, 0); }

void matmul_rows_x16_from_rows(const matmul_args *a, int r0, int r1) { x16_groups(a, r0, r1, 1); }

void repack_x16_simd(const uint8_t *src, uint8_t *dst, int dtype, int rows, int cols) {
  const int nb = cols / 32, q4 = dtype == DT_Q4_0;
  const size_t group_bytes = (size_t)nb * (q4 ? 288 : 544);
  for (int g = 0; g < rows / 16; g++) repack_group_simd(src + (size_t)g * group_bytes, dst + (size_t)g * group_bytes, q4, nb);
}

#pragma GCC pop_options
#else
void matmul_rows_x16(const matmul_args *a, int r0, int r1) { (void)a; (void)r0; (void)r1; }
void matmul_rows_x16_from_rows(const matmul_args *a, int r0, int r1) { (void)a; (void)r0; (void)r1; }
void repack_x16_simd(const uint8_t *src, uint8_t *dst, int dtype, int rows, int cols) {
  (void)src; (void)dst; (void)dtype; (void)rows; (void)cols;
}
#endif
