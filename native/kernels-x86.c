// AVX-512 (with VNNI) and AVX2 kernels, compiled with per-function target options so one build
// runs on any x86-64 CPU; kernels.c picks the best at run time. Register tiles of weight rows ×
// activation rows share every load; activations stay in L1/L2 in blocks of 64 rows.
#include "kernels.h"

#if defined(__x86_64__)
#include <immintrin.h>
#include <string.h>

/* Largest register tile (weight rows × activation rows) of any kernel here; each kernel family
   picks its own shape in DEFINE_TILED (AVX-512 float: 8 × 3, the fastest measured for BF16). */
#define TILE_R 8
#define TILE_N 4
#define X_BLOCK 64

/* Decoding (one or a few activation rows), a tile streams its R weight rows from memory: R
   strided streams that the hardware prefetcher follows badly. So each row is prefetched ahead,
   one cache line per step, and near a row's end the prefetch moves on to the matching row of the
   next tile (rows are contiguous, rb apart), so the next tile starts warm. The wrap alone took a
   2-thread BF16 10240x2560 product from 38 to 53 GB/s here; rows of 16 KiB and more go 2 KiB
   ahead. */
#define STREAM_LONG_ROW 16384
static inline __attribute__((always_inline)) void prefetch_tile_rows(const uint8_t *w, size_t rb, int R, size_t offset) {
  offset += rb >= STREAM_LONG_ROW ? 2048 : 1024;
  if (offset >= rb) offset += (size_t)(R - 1) * rb;
  for (int i = 0; i < R; i++) _mm_prefetch((const char *)w + (size_t)i * rb + offset, _MM_HINT_T0);
}

/* ---------------------------------------------------------------- Q4_0 / Q8_0 in the row layout, both levels
   A Q8 block is 32 bytes, one 256-bit register at either level: the AVX-512 VNNI and AVX2 tiles
   differ only in the integer dot product of a block (DOT_U8S8, defined in each section), so the
   tile is written once here and instantiated in each section's target. The helpers below are
   compiled for AVX2, which both sections include, so they inline into either. */
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")

/* 32 weights of block b as unsigned bytes: Q4_0 nibbles 0..15 (value + 8), Q8_0 bytes xor 0x80 (value + 128). */
static inline __m256i wq_u8(const uint8_t *row, int dtype, int b, float *d) {
  if (dtype == DT_Q4_0) {
    const uint8_t *blk = row + (size_t)b * 18;
    *d = f16_table[blk[0] | (blk[1] << 8)];
    __m128i q = _mm_loadu_si128((const __m128i *)(blk + 2));
    __m128i lo = _mm_and_si128(q, _mm_set1_epi8(0x0f));
    __m128i hi = _mm_and_si128(_mm_srli_epi16(q, 4), _mm_set1_epi8(0x0f));
    return _mm256_set_m128i(hi, lo);
  }
  const uint8_t *blk = row + (size_t)b * 34;
  *d = f16_table[blk[0] | (blk[1] << 8)];
  return _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(blk + 2)), _mm256_set1_epi8((char)0x80));
}

static inline float hsum256(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_hadd_ps(s, s);
  s = _mm_hadd_ps(s, s);
  return _mm_cvtss_f32(s);
}

#pragma GCC pop_options

/* R weight rows × N activation rows of Q4_0 / Q8_0 against Q8 activation blocks: unsigned
   weights (wq_u8) times signed activations, the offset the weights carry taken off in float at
   the end (corr). Not prefetched: these row-layout tiles serve only CPUs without the x16 kernels
   (and matrices whose rows are not a multiple of 16), not tuned. */
#define DEFINE_TILE_QUANT(NAME, DOT_U8S8)                                                                              \
  static inline __attribute__((always_inline)) void NAME(const uint8_t *w, size_t rb, int dtype, const q8_block *x, int nb, \
                                                         int R, int N, int stream, float out[TILE_R][TILE_N]) {        \
    (void)stream;                                                                                                      \
    const float offset = dtype == DT_Q4_0 ? 8.0f : 128.0f;                                                             \
    __m256 acc[TILE_R][TILE_N];                                                                                        \
    float corr[TILE_R][TILE_N];                                                                                        \
    for (int i = 0; i < R; i++)                                                                                        \
      for (int j = 0; j < N; j++) {                                                                                    \
        acc[i][j] = _mm256_setzero_ps();                                                                               \
        corr[i][j] = 0.0f;                                                                                             \
      }                                                                                                                \
    for (int b = 0; b < nb; b++) {                                                                                     \
      __m256i xq[TILE_N];                                                                                              \
      for (int j = 0; j < N; j++) xq[j] = _mm256_loadu_si256((const __m256i *)x[(size_t)j * nb + b].qs);              \
      for (int i = 0; i < R; i++) {                                                                                    \
        float dw;                                                                                                      \
        __m256i wu = wq_u8(w + (size_t)i * rb, dtype, b, &dw);                                                         \
        for (int j = 0; j < N; j++) {                                                                                  \
          const q8_block *xb = &x[(size_t)j * nb + b];                                                                 \
          const float scale = dw * xb->d;                                                                              \
          acc[i][j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(DOT_U8S8(wu, xq[j])), _mm256_set1_ps(scale), acc[i][j]);      \
          corr[i][j] += scale * (offset * (float)xb->sum);                                                             \
        }                                                                                                              \
      }                                                                                                                \
    }                                                                                                                  \
    for (int i = 0; i < R; i++)                                                                                        \
      for (int j = 0; j < N; j++) out[i][j] = hsum256(acc[i][j]) - corr[i][j];                                         \
  }

/* ---------------------------------------------------------------- AVX-512 float types */
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")

static inline __m512 w16_512(const uint8_t *row, int dtype, int c) {
  if (dtype == DT_BF16) {
    __m256i h = _mm256_loadu_si256((const __m256i *)(row + (size_t)c * 2));
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
  if (dtype == DT_F16) return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(row + (size_t)c * 2)));
  return _mm512_loadu_ps((const float *)row + c);
}

static inline __m512 w16_512_tail(const uint8_t *row, int dtype, int c, __mmask16 m) {
  if (dtype == DT_BF16) {
    __m256i h = _mm256_maskz_loadu_epi16(m, row + (size_t)c * 2);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
  if (dtype == DT_F16) return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, row + (size_t)c * 2));
  return _mm512_maskz_loadu_ps(m, (const float *)row + c);
}

/* R weight rows × N activation rows, dot products over all columns; `stream`: the weights come
   from memory (the first pass over them), so prefetch them (see prefetch_tile_rows). */
static inline __attribute__((always_inline)) void tile_float_512(const uint8_t *w, size_t rb, int dtype, const float *x, int cols,
                                                                 int R, int N, int stream, float out[TILE_R][TILE_N]) {
  __m512 acc[TILE_R][TILE_N];
  for (int i = 0; i < R; i++)
    for (int j = 0; j < N; j++) acc[i][j] = _mm512_setzero_ps();
  const size_t esize = dtype == DT_F32 ? 4 : 2;
  const int line = 64 / (int)esize; /* columns per cache line of weights */
  int c = 0;
  for (; c + 16 <= cols; c += 16) {
    if (stream && c % line == 0) prefetch_tile_rows(w, rb, R, (size_t)c * esize);
    __m512 xv[TILE_N];
    for (int j = 0; j < N; j++) xv[j] = _mm512_loadu_ps(x + (size_t)j * cols + c);
    for (int i = 0; i < R; i++) {
      __m512 wv = w16_512(w + (size_t)i * rb, dtype, c);
      for (int j = 0; j < N; j++) acc[i][j] = _mm512_fmadd_ps(wv, xv[j], acc[i][j]);
    }
  }
  if (c < cols) {
    __mmask16 m = (__mmask16)((1u << (cols - c)) - 1);
    __m512 xv[TILE_N];
    for (int j = 0; j < N; j++) xv[j] = _mm512_maskz_loadu_ps(m, x + (size_t)j * cols + c);
    for (int i = 0; i < R; i++) {
      __m512 wv = w16_512_tail(w + (size_t)i * rb, dtype, c, m);
      for (int j = 0; j < N; j++) acc[i][j] = _mm512_fmadd_ps(wv, xv[j], acc[i][j]);
    }
  }
  for (int i = 0; i < R; i++)
    for (int j = 0; j < N; j++) out[i][j] = _mm512_reduce_add_ps(acc[i][j]);
}

/* One activation row (see prefetch_tile_rows): the same operations in the same order as
   tile_float_512 with N = 1, so the results are identical. Kept apart from it because taking
   each row's whole cache line before the next row measured faster here (57 vs 50 GB/s on BF16
   10240x2560) than the register tile's column-by-column order. */
static inline __attribute__((always_inline)) void tile_float_512_stream(const uint8_t *w, size_t rb, int dtype, const float *x,
                                                                        int cols, int R, float out[][TILE_N]) {
  __m512 acc[TILE_R];
  for (int i = 0; i < R; i++) acc[i] = _mm512_setzero_ps();
  const size_t esize = dtype == DT_F32 ? 4 : 2;
  const int step = 64 / (int)esize; /* columns per cache line of weights */
  int c = 0;
  for (; c + step <= cols; c += step) {
    prefetch_tile_rows(w, rb, R, (size_t)c * esize);
    for (int i = 0; i < R; i++)
      for (int h = 0; h < step; h += 16)
        acc[i] = _mm512_fmadd_ps(w16_512(w + (size_t)i * rb, dtype, c + h), _mm512_loadu_ps(x + c + h), acc[i]);
  }
  for (; c + 16 <= cols; c += 16)
    for (int i = 0; i < R; i++) acc[i] = _mm512_fmadd_ps(w16_512(w + (size_t)i * rb, dtype, c), _mm512_loadu_ps(x + c), acc[i]);
  if (c < cols) {
    __mmask16 m = (__mmask16)((1u << (cols - c)) - 1);
    const __m512 xv = _mm512_maskz_loadu_ps(m, x + c);
    for (int i = 0; i < R; i++) acc[i] = _mm512_fmadd_ps(w16_512_tail(w + (size_t)i * rb, dtype, c, m), xv, acc[i]);
  }
  for (int i = 0; i < R; i++) out[i][0] = _mm512_reduce_add_ps(acc[i]);
}

/* Activations to Q8 blocks exactly as quantize_row_q8 (kernels.c): the same float operations,
   and roundf's half-away-from-zero done as trunc(|v|) + (fraction >= 0.5), which is exact. */
void quantize_row_q8_avx512(const float *x, q8_block *y, int cols) {
  for (int b = 0; b < cols / 32; b++) {
    const __m512 v0 = _mm512_loadu_ps(x + b * 32), v1 = _mm512_loadu_ps(x + b * 32 + 16);
    const __m512 a0 = _mm512_abs_ps(v0), a1 = _mm512_abs_ps(v1);
    const float amax = _mm512_reduce_max_ps(_mm512_max_ps(a0, a1));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    const __m512 idv = _mm512_set1_ps(id), half = _mm512_set1_ps(0.5f), one = _mm512_set1_ps(1.0f);
    __m512i q[2];
    const __m512 vs[2] = {v0, v1};
    for (int h = 0; h < 2; h++) {
      const __m512 s = _mm512_mul_ps(vs[h], idv);
      const __m512 mag = _mm512_abs_ps(s);
      const __m512 t = _mm512_roundscale_ps(mag, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
      const __mmask16 up = _mm512_cmp_ps_mask(_mm512_sub_ps(mag, t), half, _CMP_GE_OQ);
      const __m512 r = _mm512_mask_add_ps(t, up, t, one);
      const __m512i ri = _mm512_cvttps_epi32(r);
      const __mmask16 neg = _mm512_cmp_ps_mask(s, _mm512_setzero_ps(), _CMP_LT_OQ);
      q[h] = _mm512_mask_sub_epi32(ri, neg, _mm512_setzero_si512(), ri);
    }
    _mm_storeu_si128((__m128i *)y[b].qs, _mm512_cvtepi32_epi8(q[0]));
    _mm_storeu_si128((__m128i *)(y[b].qs + 16), _mm512_cvtepi32_epi8(q[1]));
    y[b].sum = _mm512_reduce_add_epi32(_mm512_add_epi32(q[0], q[1]));
    y[b].d = f16_table[f32_to_f16_bits(d)];
  }
}

/* ---------------------------------------------------------------- AVX-512 VNNI quantized types */

/* VNNI: one instruction for the 32 u8 × s8 products of a block, four to a dword lane. */
static inline __m256i dot_u8s8_vnni(__m256i u, __m256i s) { return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s); }

DEFINE_TILE_QUANT(tile_quant_512, dot_u8s8_vnni)

#define DEFINE_TILED(NAME, TILE_FN, XTYPE, XROW_ELEMS, TR, TN)                                                           \
  void NAME(const matmul_args *a, int r0, int r1) {                                                                    \
    const size_t rb = row_bytes(a->dtype, a->cols);                                                                    \
    const XTYPE *x = (const XTYPE *)a->x;                                                                              \
    const size_t xrow = XROW_ELEMS;                                                                                    \
    float t[TILE_R][TILE_N];                                                                                           \
    for (int nb0 = 0; nb0 < a->batch; nb0 += X_BLOCK) {                                                                \
      const int nb1 = nb0 + X_BLOCK < a->batch ? nb0 + X_BLOCK : a->batch;                                             \
      for (int r = r0; r < r1; r += (TR)) {                                                                            \
        const int R = r1 - r < (TR) ? r1 - r : (TR);                                                                   \
        const uint8_t *wr = a->w + (size_t)r * rb;                                                                     \
        for (int n = nb0; n < nb1; n += (TN)) {                                                                        \
          const int N = nb1 - n < (TN) ? nb1 - n : (TN);                                                               \
          const XTYPE *xn = x + (size_t)n * xrow;                                                                      \
          const int first = n == nb0 && a->batch <= 8; /* decoding a few rows: weights from memory */                \
          if (R == (TR) && N == (TN)) TILE_FN(wr, rb, a->dtype, xn, COLS_ARG, TR, TN, first, t);                      \
          else if (R == (TR) && N == 1) TILE_FN(wr, rb, a->dtype, xn, COLS_ARG, TR, 1, first, t);                     \
          else if (R == (TR) && N == 2) TILE_FN(wr, rb, a->dtype, xn, COLS_ARG, TR, 2, first, t);                     \
          else if (R == (TR)) TILE_FN(wr, rb, a->dtype, xn, COLS_ARG, TR, N, first, t);                               \
          else TILE_FN(wr, rb, a->dtype, xn, COLS_ARG, R, N, first, t);                                               \
          for (int i = 0; i < R; i++)                                                                                  \
            for (int j = 0; j < N; j++) a->out[(size_t)(n + j) * a->out_stride + (r + i - a->row_start)] = t[i][j];    \
        }                                                                                                              \
      }                                                                                                                \
    }                                                                                                                  \
  }

/* One activation row over float weights: tiles of 8 rows (4 for rows of 16 KiB and more, which
   went 46 -> 53 GB/s on 2560x10240 that way), each a run of TILE_FN's streaming form. */
#define DEFINE_STREAM(NAME, TILE_FN)                                                                                   \
  static void NAME(const matmul_args *a, int r0, int r1) {                                                             \
    const size_t rb = row_bytes(a->dtype, a->cols);                                                                    \
    const int tile = rb >= STREAM_LONG_ROW ? 4 : 8;                                                                    \
    float t[TILE_R][TILE_N];                                                                                           \
    for (int r = r0; r < r1; r += tile) {                                                                              \
      const int R = r1 - r < tile ? r1 - r : tile;                                                                     \
      const uint8_t *wr = a->w + (size_t)r * rb;                                                                       \
      if (R == 8) TILE_FN(wr, rb, a->dtype, (const float *)a->x, a->cols, 8, t);                                       \
      else if (R == 4) TILE_FN(wr, rb, a->dtype, (const float *)a->x, a->cols, 4, t);                                  \
      else TILE_FN(wr, rb, a->dtype, (const float *)a->x, a->cols, R, t);                                              \
      for (int i = 0; i < R; i++) a->out[r + i - a->row_start] = t[i][0];                                              \
    }                                                                                                                  \
  }

static void matmul_float_512(const matmul_args *a, int r0, int r1);
static void matmul_quant_512(const matmul_args *a, int r0, int r1);
#define COLS_ARG a->cols
DEFINE_TILED(matmul_float_512, tile_float_512, float, (size_t)a->cols, 8, 3)
#undef COLS_ARG
#define COLS_ARG (a->cols / 32)
DEFINE_TILED(matmul_quant_512, tile_quant_512, q8_block, (size_t)(a->cols / 32), 4, 4)
#undef COLS_ARG

DEFINE_STREAM(stream_float_512, tile_float_512_stream)

void matmul_rows_avx512(const matmul_args *a, int r0, int r1) {
  if (a->dtype == DT_Q8_0 || a->dtype == DT_Q4_0) matmul_quant_512(a, r0, r1);
  else if (a->batch == 1) stream_float_512(a, r0, r1);
  else matmul_float_512(a, r0, r1);
}

#pragma GCC pop_options

/* ---------------------------------------------------------------- AVX2 */
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")

static inline __m256 w8_256(const uint8_t *row, int dtype, int c) {
  if (dtype == DT_BF16) {
    __m128i h = _mm_loadu_si128((const __m128i *)(row + (size_t)c * 2));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
  if (dtype == DT_F16) return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(row + (size_t)c * 2)));
  return _mm256_loadu_ps((const float *)row + c);
}


/* As tile_float_512. Not written once for both widths as the quantized tiles are: the vector
   widths differ (16 floats there, 8 here), and with them the column tail (a masked load there,
   scalar products here) and the reduction, so one generic tile would change one level's bits. */
static inline __attribute__((always_inline)) void tile_float_256(const uint8_t *w, size_t rb, int dtype, const float *x, int cols,
                                                                 int R, int N, int stream, float out[TILE_R][TILE_N]) {
  __m256 acc[TILE_R][TILE_N];
  for (int i = 0; i < R; i++)
    for (int j = 0; j < N; j++) acc[i][j] = _mm256_setzero_ps();
  const size_t esize = dtype == DT_F32 ? 4 : 2;
  const int line = 64 / (int)esize;
  int c = 0;
  for (; c + 8 <= cols; c += 8) {
    if (stream && c % line == 0) prefetch_tile_rows(w, rb, R, (size_t)c * esize);
    __m256 xv[TILE_N];
    for (int j = 0; j < N; j++) xv[j] = _mm256_loadu_ps(x + (size_t)j * cols + c);
    for (int i = 0; i < R; i++) {
      __m256 wv = w8_256(w + (size_t)i * rb, dtype, c);
      for (int j = 0; j < N; j++) acc[i][j] = _mm256_fmadd_ps(wv, xv[j], acc[i][j]);
    }
  }
  for (int i = 0; i < R; i++)
    for (int j = 0; j < N; j++) {
      float s = hsum256(acc[i][j]);
      for (int cc = c; cc < cols; cc++) s += weight_scalar(w + (size_t)i * rb, dtype, cc) * x[(size_t)j * cols + cc];
      out[i][j] = s;
    }
}

/* One activation row (see prefetch_tile_rows; 24 -> 60 GB/s on BF16 10240x2560 with these
   kernels forced): the same operations in the same order as tile_float_256 with N = 1. */
static inline __attribute__((always_inline)) void tile_float_256_stream(const uint8_t *w, size_t rb, int dtype, const float *x,
                                                                        int cols, int R, float out[][TILE_N]) {
  __m256 acc[TILE_R];
  for (int i = 0; i < R; i++) acc[i] = _mm256_setzero_ps();
  const size_t esize = dtype == DT_F32 ? 4 : 2;
  const int step = 64 / (int)esize; /* columns per cache line of weights */
  int c = 0;
  for (; c + step <= cols; c += step) {
    prefetch_tile_rows(w, rb, R, (size_t)c * esize);
    for (int i = 0; i < R; i++)
      for (int h = 0; h < step; h += 8) acc[i] = _mm256_fmadd_ps(w8_256(w + (size_t)i * rb, dtype, c + h), _mm256_loadu_ps(x + c + h), acc[i]);
  }
  for (; c + 8 <= cols; c += 8)
    for (int i = 0; i < R; i++) acc[i] = _mm256_fmadd_ps(w8_256(w + (size_t)i * rb, dtype, c), _mm256_loadu_ps(x + c), acc[i]);
  for (int i = 0; i < R; i++) {
    float s = hsum256(acc[i]);
    for (int cc = c; cc < cols; cc++) s += weight_scalar(w + (size_t)i * rb, dtype, cc) * x[cc];
    out[i][0] = s;
  }
}

/* AVX2 has no VNNI: widen to int16 with maddubs (u8 × s8 pairs), then madd. maddubs saturates
   at int16: the u8 operand is split so each pair stays ≤ 2·127·128 in magnitude. */
static inline __m256i dot_u8s8_maddubs(__m256i u, __m256i s) {
  const __m256i ones = _mm256_set1_epi16(1);
  const __m256i lo7 = _mm256_and_si256(u, _mm256_set1_epi8(0x7f));
  const __m256i hi1 = _mm256_and_si256(u, _mm256_set1_epi8((char)0x80));
  return _mm256_add_epi32(_mm256_madd_epi16(_mm256_maddubs_epi16(lo7, s), ones), _mm256_madd_epi16(_mm256_maddubs_epi16(hi1, s), ones));
}

DEFINE_TILE_QUANT(tile_quant_256, dot_u8s8_maddubs)

static void matmul_float_256(const matmul_args *a, int r0, int r1);
static void matmul_quant_256(const matmul_args *a, int r0, int r1);
#define COLS_ARG a->cols
/* 4 weight rows x 3 activation rows: twelve accumulators, four widened weight vectors and one
   activation vector fill the sixteen ymm; 4 x 4 spilled (BF16 prompt 59 -> 77 GFLOP per CPU-second). */
DEFINE_TILED(matmul_float_256, tile_float_256, float, (size_t)a->cols, 4, 3)
#undef COLS_ARG
#define COLS_ARG (a->cols / 32)
DEFINE_TILED(matmul_quant_256, tile_quant_256, q8_block, (size_t)(a->cols / 32), 4, 4)
#undef COLS_ARG

DEFINE_STREAM(stream_float_256, tile_float_256_stream)

/* GEMMA3_NATIVE_KERNELS=avx2-packed: float prompts of 16 or more activation rows go through
   packed panels (kernels-packed-avx2.c), BF16 1 thread 85-96 instead of 63-79 GFLOP per
   CPU-second. Not the default: a packed output is one FMA chain where the tiles and the decode
   kernel sum 8 lanes, so a token's low bits would depend on whether it came in a prompt of 16+
   rows, alone or in a smaller batch, and a reused prompt cache would no longer give the bits of
   a fresh computation. Measured: batch 8 packed 36 vs tiled 58, batch 16 even (52-57 both). */
#define PACKED_MIN_BATCH 16

void matmul_rows_avx2_packed(const matmul_args *a, int r0, int r1) {
  if (a->dtype != DT_Q8_0 && a->dtype != DT_Q4_0 && a->batch >= PACKED_MIN_BATCH) matmul_float_packed_avx2(a, r0, r1);
  else matmul_rows_avx2(a, r0, r1);
}

void matmul_rows_avx2(const matmul_args *a, int r0, int r1) {
  if (a->dtype == DT_Q8_0 || a->dtype == DT_Q4_0) matmul_quant_256(a, r0, r1);
  else if (a->batch == 1) stream_float_256(a, r0, r1);
  else matmul_float_256(a, r0, r1);
}

#pragma GCC pop_options

#else
void matmul_rows_avx2(const matmul_args *a, int r0, int r1) { matmul_rows_generic(a, r0, r1); }
void matmul_rows_avx2_packed(const matmul_args *a, int r0, int r1) { matmul_rows_generic(a, r0, r1); }
void matmul_rows_avx512(const matmul_args *a, int r0, int r1) { matmul_rows_generic(a, r0, r1); }
#endif
