// Prompt products (many activation rows) of float weights (BF16, F16, F32) with AVX2: a panel of
// 16 weight rows × KC columns is converted to float32 once, transposed so that column k of the
// 16 rows is two ymm, into a buffer that stays in L1; then a register tile of 16 weight rows × 6
// activation rows runs over it for every activation row of the batch, one broadcast activation
// times two packed weight vectors per step. The conversion is paid once per weight element and
// call instead of once per tile, and the tile needs 2 loads and 6 broadcasts per 12 FMAs, no
// horizontal sums (the accumulators are 16 consecutive outputs).
//
// Rounding: every output is one float32 FMA chain over its columns in order (kept across the
// column blocks: the chain restarts from the stored partial sum), whatever the batch, the tile
// or the thread split. It is not the chain of the 8-lane dot products in kernels-x86.c (decoding
// and small batches), so the low bits differ from those by rounding; that is why this path is
// the opt-in GEMMA3_NATIVE_KERNELS=avx2-packed (matmul_rows_avx2_packed), not the default.
#include "kernels.h"

#if defined(__x86_64__)
#include <immintrin.h>
#include <string.h>

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")

#define PANEL_ROWS 16 /* weight rows per panel: two ymm of one column */
#define TILE_X 6      /* activation rows per register tile: 12 accumulators, 2 weights, 1 broadcast */
#ifndef KC
#define KC 256 /* columns per panel: 16 KiB of float32, half of L1 */
#endif
#ifndef NC
#define NC 256 /* activation rows per block: NC x KC floats (256 KiB) stay in L2 */
#endif
#ifndef X_AHEAD
#define X_AHEAD 192
#endif
#ifndef MC
#define MC 256 /* weight rows per block: the block's partial sums (NC x MC floats, 256 KiB) stay in L2 */
#endif


/* Eight 16-bit values of each of eight rows (a[i]: row i) → eight vectors of one column each,
   the rows in order: the 8 × 8 transpose in three rounds of interleaves. */
static inline void transpose8x8_epi16(__m128i a[8]) {
  __m128i t[8], u[8];
  for (int i = 0; i < 4; i++) {
    t[2 * i] = _mm_unpacklo_epi16(a[2 * i], a[2 * i + 1]);     /* columns 0-3 of rows 2i, 2i+1 */
    t[2 * i + 1] = _mm_unpackhi_epi16(a[2 * i], a[2 * i + 1]); /* columns 4-7 */
  }
  for (int h = 0; h < 2; h++) {
    /* rows 0-3 (t[0 + h], t[2 + h]) and rows 4-7 (t[4 + h], t[6 + h]), column pairs */
    u[4 * h + 0] = _mm_unpacklo_epi32(t[h], t[2 + h]);
    u[4 * h + 1] = _mm_unpackhi_epi32(t[h], t[2 + h]);
    u[4 * h + 2] = _mm_unpacklo_epi32(t[4 + h], t[6 + h]);
    u[4 * h + 3] = _mm_unpackhi_epi32(t[4 + h], t[6 + h]);
  }
  for (int h = 0; h < 2; h++)
    for (int p = 0; p < 2; p++) {
      a[4 * h + 2 * p] = _mm_unpacklo_epi64(u[4 * h + p], u[4 * h + 2 + p]);
      a[4 * h + 2 * p + 1] = _mm_unpackhi_epi64(u[4 * h + p], u[4 * h + 2 + p]);
    }
}

static inline __m256 widen16(__m128i v, int dtype) {
  if (dtype == DT_BF16) return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(v), 16));
  return _mm256_cvtph_ps(v);
}

/* Eight floats of each of eight rows → the eight columns, rows in order. */
static inline void transpose8x8_ps(__m256 r[8]) {
  __m256 t[8], u[8];
  for (int i = 0; i < 4; i++) {
    t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 2; i++) {
    u[4 * i + 0] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], _MM_SHUFFLE(1, 0, 1, 0));
    u[4 * i + 1] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], _MM_SHUFFLE(3, 2, 3, 2));
    u[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(1, 0, 1, 0));
    u[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(3, 2, 3, 2));
  }
  for (int i = 0; i < 4; i++) {
    r[i] = _mm256_permute2f128_ps(u[i], u[4 + i], 0x20);
    r[4 + i] = _mm256_permute2f128_ps(u[i], u[4 + i], 0x31);
  }
}

/* Sixteen 16-bit columns of eight rows (from `rows`, column c) to dst + j·16 (column j, the eight
   rows in order), in both 128-bit lanes at once (columns 0-7 low, 8-15 high): two rounds of
   interleaves, then BF16 widens by interleaving zeros below (no third round: each half-column
   goes straight to its place) and F16 pairs the halves for F16C. 48 shuffles for 128 values
   against 80 in 128-bit registers (0.26 -> 0.20 cycles a value, hot in cache). */
static inline void pack_16_columns(const uint8_t *rows, size_t rb, int dtype, int c, float *dst) {
  __m256i a[8], t[8], u[8];
  for (int i = 0; i < 8; i++) a[i] = _mm256_loadu_si256((const __m256i *)(rows + (size_t)i * rb + (size_t)c * 2));
  for (int i = 0; i < 4; i++) {
    t[2 * i] = _mm256_unpacklo_epi16(a[2 * i], a[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_epi16(a[2 * i], a[2 * i + 1]);
  }
  for (int h = 0; h < 2; h++) {
    /* u[4h + p]: rows 0-3 of columns 4h + 2p and 4h + 2p + 1 (and 8 on, high lane); u[4h + 2 + p]: rows 4-7 */
    u[4 * h + 0] = _mm256_unpacklo_epi32(t[h], t[2 + h]);
    u[4 * h + 1] = _mm256_unpackhi_epi32(t[h], t[2 + h]);
    u[4 * h + 2] = _mm256_unpacklo_epi32(t[4 + h], t[6 + h]);
    u[4 * h + 3] = _mm256_unpackhi_epi32(t[4 + h], t[6 + h]);
  }
  const __m256i zero = _mm256_setzero_si256();
  for (int h = 0; h < 2; h++)
    for (int p = 0; p < 2; p++) {
      const int j = 4 * h + 2 * p;
      const __m256i top = u[4 * h + p], bottom = u[4 * h + 2 + p];
      if (dtype == DT_BF16) {
        const __m256 top0 = _mm256_castsi256_ps(_mm256_unpacklo_epi16(zero, top)), top1 = _mm256_castsi256_ps(_mm256_unpackhi_epi16(zero, top));
        const __m256 bot0 = _mm256_castsi256_ps(_mm256_unpacklo_epi16(zero, bottom)), bot1 = _mm256_castsi256_ps(_mm256_unpackhi_epi16(zero, bottom));
        _mm256_store_ps(dst + j * PANEL_ROWS, _mm256_permute2f128_ps(top0, bot0, 0x20));
        _mm256_store_ps(dst + (j + 8) * PANEL_ROWS, _mm256_permute2f128_ps(top0, bot0, 0x31));
        _mm256_store_ps(dst + (j + 1) * PANEL_ROWS, _mm256_permute2f128_ps(top1, bot1, 0x20));
        _mm256_store_ps(dst + (j + 9) * PANEL_ROWS, _mm256_permute2f128_ps(top1, bot1, 0x31));
      } else {
        const __m256i v0 = _mm256_unpacklo_epi64(top, bottom), v1 = _mm256_unpackhi_epi64(top, bottom);
        _mm256_store_ps(dst + j * PANEL_ROWS, _mm256_cvtph_ps(_mm256_castsi256_si128(v0)));
        _mm256_store_ps(dst + (j + 8) * PANEL_ROWS, _mm256_cvtph_ps(_mm256_extracti128_si256(v0, 1)));
        _mm256_store_ps(dst + (j + 1) * PANEL_ROWS, _mm256_cvtph_ps(_mm256_castsi256_si128(v1)));
        _mm256_store_ps(dst + (j + 9) * PANEL_ROWS, _mm256_cvtph_ps(_mm256_extracti128_si256(v1, 1)));
      }
    }
}

/* panel[k * 16 + i] = weight (row i, column c0 + k) as float32, k < kc; rows from R on are zero. */
static void pack_panel(const uint8_t *w, size_t rb, int dtype, int R, int c0, int kc, float *panel) {
  int k = 0;
  if (R == PANEL_ROWS && dtype != DT_F32)
    for (; k + 16 <= kc; k += 16)
      for (int half = 0; half < 2; half++) pack_16_columns(w + (size_t)(8 * half) * rb, rb, dtype, c0 + k, panel + (size_t)k * PANEL_ROWS + 8 * half);
  if (R == PANEL_ROWS) {
    for (; k + 8 <= kc; k += 8)
      for (int half = 0; half < 2; half++) {
        const uint8_t *rows = w + (size_t)(8 * half) * rb;
        float *dst = panel + (size_t)k * PANEL_ROWS + 8 * half;
        if (dtype == DT_F32) {
          __m256 r[8];
          for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_ps((const float *)(rows + (size_t)i * rb) + c0 + k);
          transpose8x8_ps(r);
          for (int j = 0; j < 8; j++) _mm256_store_ps(dst + j * PANEL_ROWS, r[j]);
        } else {
          __m128i a[8];
          for (int i = 0; i < 8; i++) a[i] = _mm_loadu_si128((const __m128i *)(rows + (size_t)i * rb + (size_t)(c0 + k) * 2));
          transpose8x8_epi16(a);
          for (int j = 0; j < 8; j++) _mm256_store_ps(dst + j * PANEL_ROWS, widen16(a[j], dtype));
        }
      }
  }
  for (; k < kc; k++)
    for (int i = 0; i < PANEL_ROWS; i++) panel[(size_t)k * PANEL_ROWS + i] = i < R ? weight_scalar(w + (size_t)i * rb, dtype, c0 + k) : 0.0f;
}

/* The register tile: activation rows j < N (x + j·xs) times the panel's 16 weight rows into
   out + j·os (16 floats each), the chain over the panel's kc columns started from zero (first
   column block) or from the stored partial sums. N is a constant at every call. */
static inline __attribute__((always_inline)) void tile_16xN(const float *panel, int kc, const float *x, size_t xs, int N, float *out,
                                                            size_t os, int first) {
  __m256 acc[TILE_X][2];
  for (int j = 0; j < N; j++) {
    acc[j][0] = first ? _mm256_setzero_ps() : _mm256_loadu_ps(out + (size_t)j * os);
    acc[j][1] = first ? _mm256_setzero_ps() : _mm256_loadu_ps(out + (size_t)j * os + 8);
  }
  int k = 0;
  /* Sixteen columns (a cache line of each activation row) at a time, the activations fetched
     X_AHEAD columns ahead: six streams from L2 went 97 -> 106 GFLOP per second that way (the
     tile alone, the activations in L2). */
  for (; k + 16 <= kc;) {
    for (int j = 0; j < N; j++) _mm_prefetch((const char *)(x + (size_t)j * xs + k + X_AHEAD), _MM_HINT_T0);
    for (int e = k + 16; k < e; k++) {
      const __m256 w0 = _mm256_load_ps(panel + (size_t)k * PANEL_ROWS), w1 = _mm256_load_ps(panel + (size_t)k * PANEL_ROWS + 8);
      for (int j = 0; j < N; j++) {
        const __m256 xb = _mm256_broadcast_ss(x + (size_t)j * xs + k);
        acc[j][0] = _mm256_fmadd_ps(w0, xb, acc[j][0]);
        acc[j][1] = _mm256_fmadd_ps(w1, xb, acc[j][1]);
      }
    }
  }
  for (; k < kc; k++) {
    const __m256 w0 = _mm256_load_ps(panel + (size_t)k * PANEL_ROWS), w1 = _mm256_load_ps(panel + (size_t)k * PANEL_ROWS + 8);
    for (int j = 0; j < N; j++) {
      const __m256 xb = _mm256_broadcast_ss(x + (size_t)j * xs + k);
      acc[j][0] = _mm256_fmadd_ps(w0, xb, acc[j][0]);
      acc[j][1] = _mm256_fmadd_ps(w1, xb, acc[j][1]);
    }
  }
  for (int j = 0; j < N; j++) {
    _mm256_storeu_ps(out + (size_t)j * os, acc[j][0]);
    _mm256_storeu_ps(out + (size_t)j * os + 8, acc[j][1]);
  }
}

/* The last activation rows of a block (N < 6), at their own width. */
static void tile_rest(const float *panel, int kc, const float *x, size_t xs, int N, float *out, size_t os, int first) {
  switch (N) {
    case 1: tile_16xN(panel, kc, x, xs, 1, out, os, first); break;
    case 2: tile_16xN(panel, kc, x, xs, 2, out, os, first); break;
    case 3: tile_16xN(panel, kc, x, xs, 3, out, os, first); break;
    case 4: tile_16xN(panel, kc, x, xs, 4, out, os, first); break;
    default: tile_16xN(panel, kc, x, xs, 5, out, os, first); break;
  }
}

/* A panel of fewer than 16 weight rows (the end of a row range): the tiles on a copy of the
   outputs 16 wide, the rows past R computed on zero weights and dropped. */
static void tiles_short_panel(const float *panel, int kc, const float *x, size_t xs, int N, float *out, size_t os, int R, int first) {
  float t[TILE_X][PANEL_ROWS] __attribute__((aligned(32))) = {{0}};
  for (int n = 0; n < N; n += TILE_X) {
    const int tn = N - n < TILE_X ? N - n : TILE_X;
    for (int j = 0; j < tn; j++)
      if (!first) memcpy(t[j], out + (size_t)(n + j) * os, (size_t)R * sizeof(float));
    if (tn == TILE_X) tile_16xN(panel, kc, x + (size_t)n * xs, xs, TILE_X, t[0], PANEL_ROWS, first);
    else tile_rest(panel, kc, x + (size_t)n * xs, xs, tn, t[0], PANEL_ROWS, first);
    for (int j = 0; j < tn; j++) memcpy(out + (size_t)(n + j) * os, t[j], (size_t)R * sizeof(float));
  }
}

/* Prefetches a share of a panel's weights (16 rows × kc columns at w): lines [from, to) of them,
   taken row by row at each column line. */
static inline void prefetch_panel(const uint8_t *w, size_t rb, int from, int to) {
  for (int line = from; line < to; line++)
    _mm_prefetch((const char *)w + (size_t)(line % PANEL_ROWS) * rb + (size_t)(line / PANEL_ROWS) * 64, _MM_HINT_T0);
}

void matmul_float_packed_avx2(const matmul_args *a, int r0, int r1) {
  const size_t rb = row_bytes(a->dtype, a->cols);
  const float *x = (const float *)a->x;
  const size_t xs = (size_t)a->cols, os = (size_t)a->out_stride;
  const size_t esize = a->dtype == DT_F32 ? 4 : 2;
  float panel[KC * PANEL_ROWS] __attribute__((aligned(64)));
  for (int n0 = 0; n0 < a->batch; n0 += NC) {
    const int n1 = n0 + NC < a->batch ? n0 + NC : a->batch;
    const int tiles = (n1 - n0 + TILE_X - 1) / TILE_X;
    for (int m0 = r0; m0 < r1; m0 += MC) {
      const int m1 = m0 + MC < r1 ? m0 + MC : r1;
      for (int c0 = 0; c0 < a->cols; c0 += KC) {
        const int kc = a->cols - c0 < KC ? a->cols - c0 : KC;
        for (int r = m0; r < m1; r += PANEL_ROWS) {
          const int R = m1 - r < PANEL_ROWS ? m1 - r : PANEL_ROWS;
          pack_panel(a->w + (size_t)r * rb, rb, a->dtype, R, c0, kc, panel);
          /* The next panel's weights (the next 16 rows, or the block's first rows at the next
             columns, or the next block's), fetched a share per tile while this one is multiplied:
             its rows are 16 short runs far apart, which the hardware prefetcher does not foresee. */
          int next_r = r + PANEL_ROWS, next_c = c0;
          if (next_r >= m1) next_r = m0, next_c = c0 + KC;
          if (next_c >= a->cols) next_r = m1, next_c = 0;
          const uint8_t *next = next_r < r1 ? a->w + (size_t)next_r * rb + (size_t)next_c * esize : NULL;
          const int lines = (int)(((size_t)(a->cols - next_c < KC ? a->cols - next_c : KC) * esize + 63) / 64) * PANEL_ROWS;
          const int share = (lines + tiles - 1) / tiles;
          int line = 0;
          float *o = a->out + (r - a->row_start);
          const int first = c0 == 0;
          if (R < PANEL_ROWS) {
            tiles_short_panel(panel, kc, x + (size_t)n0 * xs + c0, xs, n1 - n0, o + (size_t)n0 * os, os, R, first);
            continue;
          }
          int n = n0;
          for (; n + TILE_X <= n1; n += TILE_X, line += share) {
            if (next) prefetch_panel(next, rb, line, line + share < lines ? line + share : lines);
            /* the next tile's partial sums, from L2 or beyond */
            if (!first && n + 2 * TILE_X <= n1)
              for (int j = 0; j < TILE_X; j++) _mm_prefetch((const char *)(o + (size_t)(n + TILE_X + j) * os), _MM_HINT_T0);
            tile_16xN(panel, kc, x + (size_t)n * xs + c0, xs, TILE_X, o + (size_t)n * os, os, first);
          }
          if (n < n1) tile_rest(panel, kc, x + (size_t)n * xs + c0, xs, n1 - n, o + (size_t)n * os, os, first);
        }
      }
    }
  }
}

#pragma GCC pop_options

#else
void matmul_float_packed_avx2(const matmul_args *a, int r0, int r1) { matmul_rows_generic(a, r0, r1); }
#endif
