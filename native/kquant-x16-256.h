// What the 256-bit K-quant x16 kernels share (kernels-kquant-x16-avx2.c, whose comment gives the
// layout and the integer bounds, and kernels-kquant-x16-vnni256.c): activation broadcasts, the
// scale and min unpacking, the −32 offset of Q6_K, the float step, and the driver that runs a
// kernel's half super-blocks (eight rows each) over tiles of up to KX_MAXN activation rows.
// Include inside a #pragma GCC target with at least avx2,fma,f16c.
#ifndef GEMMA3_KQUANT_X16_256_H
#define GEMMA3_KQUANT_X16_256_H

#include <immintrin.h>

#include "kernels.h"
#include "repack.h"

/* Activation rows per tile: their sums, the unpacked chunk and masks fit the sixteen ymm (the
   double accumulators live in memory, touched once per super-block). */
#define KX_MAXN 4
#ifndef KX_PREFETCH_BLOCKS
#define KX_PREFETCH_BLOCKS 3
#endif

enum { KX_Q4_K, KX_Q5_K, KX_Q6_K };

static inline __m256i kx_bcast4(const int8_t *p) { return _mm256_set1_epi32(x16_quad(p)); }

/* pshufb control: byte k of every int32 lane into both int16 halves, as the low byte (signed = 0)
   or as the high byte (signed = 1: an arithmetic shift by 8 then sign-extends it). */
static inline __m256i kx_pair_control(int k, int is_signed) {
  const int32_t lane = is_signed ? (int32_t)(0x00800080u | (uint32_t)k << 8 | (uint32_t)k << 24) : (int32_t)(0x80008000u | (uint32_t)k | (uint32_t)k << 16);
  const int32_t step = is_signed ? 0x04000400 : 0x00040004; /* + 4·i on the picking bytes of lane i of each 128-bit half */
  return _mm256_add_epi32(_mm256_set1_epi32(lane), _mm256_setr_epi32(0, step, 2 * step, 3 * step, 0, step, 2 * step, 3 * step));
}
/* Byte k of every lane, zero-extended, as an int16 pair (a Q4_K scale). */
static inline __m256i kx_unsigned_pair(__m256i v, int k) { return _mm256_shuffle_epi8(v, kx_pair_control(k, 0)); }
/* Byte k of every lane, sign-extended, as an int16 pair (a Q6_K scale). */
static inline __m256i kx_signed_pair(__m256i v, int k) { return _mm256_srai_epi16(_mm256_shuffle_epi8(v, kx_pair_control(k, 1)), 8); }

/* A half super-block's Q4_K / Q5_K scales and mins, four bytes per int32 lane (row): sub-blocks
   0-3 in lo, 4-7 in hi (get_scale_min_k4 with llama.cpp's masks), from the scale words at o + 64. */
typedef struct {
  __m256i sc_lo, sc_hi, mn_lo, mn_hi;
} kx_q4k_scales;

static inline __attribute__((always_inline)) kx_q4k_scales kx_unpack_q4k_scales(const uint8_t *o) {
  const __m256i w0 = _mm256_loadu_si256((const __m256i *)(o + 64)), w1 = _mm256_loadu_si256((const __m256i *)(o + 128));
  const __m256i w2 = _mm256_loadu_si256((const __m256i *)(o + 192));
  const __m256i m6 = _mm256_set1_epi32(0x3f3f3f3f), m4x = _mm256_set1_epi32(0x0f0f0f0f), m2 = _mm256_set1_epi32(0x03030303);
  kx_q4k_scales s;
  s.sc_lo = _mm256_and_si256(w0, m6);
  s.mn_lo = _mm256_and_si256(w1, m6);
  s.sc_hi = _mm256_or_si256(_mm256_and_si256(w2, m4x), _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(w0, 6), m2), 4));
  s.mn_hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32(w2, 4), m4x), _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(w1, 6), m2), 4));
  return s;
}

/* The quants of sub-block j (value pair j / 2, low nibbles for even j, high for odd) in chunk k
   of a Q4_K / Q5_K half super-block, four per lane (row). Q5_K: sub-block j's fifth bits are bit
   j of the qh chunk holding the same four values, moved to bit 4 by a 16-bit shift (bits crossing
   into the other byte never land on bit 4 there). */
static inline __attribute__((always_inline)) __m256i kx_q4k_chunk(const uint8_t *qs, const uint8_t *qh, int q5, int j, int k) {
  const __m256i m4 = _mm256_set1_epi8(0x0f);
  const __m256i v = _mm256_loadu_si256((const __m256i *)(qs + 64 * (8 * (j / 2) + k)));
  __m256i q = j % 2 ? _mm256_and_si256(_mm256_srli_epi16(v, 4), m4) : _mm256_and_si256(v, m4);
  if (q5) {
    const __m256i b = _mm256_loadu_si256((const __m256i *)(qh + 64 * k));
    q = _mm256_or_si256(q, _mm256_and_si256(j <= 4 ? _mm256_slli_epi16(b, 4 - j) : _mm256_srli_epi16(b, j - 4), _mm256_set1_epi8(0x10)));
  }
  return q;
}

/* Quarter k of a Q6_K chunk triple (a0: ql chunk, a1: ql chunk + 32 bytes, b: qh chunk): the
   quants of values 32k + l, (ql low nibble for k < 2, high for k >= 2, of a0 or a1 by k % 2) |
   (qh bit pair k) << 4, four per lane (row). */
static inline __attribute__((always_inline)) __m256i kx_q6k_quarter(__m256i a0, __m256i a1, __m256i b, int k) {
  const __m256i m4 = _mm256_set1_epi8(0x0f), m30 = _mm256_set1_epi8(0x30);
  const __m256i a = k % 2 ? a1 : a0;
  const __m256i nib = k < 2 ? _mm256_and_si256(a, m4) : _mm256_and_si256(_mm256_srli_epi16(a, 4), m4);
  const __m256i top = k == 0 ? _mm256_slli_epi16(b, 4) : k == 1 ? _mm256_slli_epi16(b, 2) : k == 2 ? b : _mm256_srli_epi16(b, 2);
  return _mm256_or_si256(nib, _mm256_and_si256(top, m30));
}

/* s[0..1] (eight rows as two quarters of doubles) += (double)(d·dx)·isum [− (double)(dmin·dx)·msum]. */
static inline __attribute__((always_inline)) void kx_float_step(__m256 d, __m256 dmin, float dx, __m256i isum, __m256i msum, int q4, __m256d s[2]) {
  const __m256 dxv = _mm256_set1_ps(dx);
  const __m256 f = _mm256_mul_ps(d, dxv);
  const __m256 g = q4 ? _mm256_mul_ps(dmin, dxv) : f;
  #pragma GCC unroll 2
  for (int q = 0; q < 2; q++) {
    const __m128 fq = q ? _mm256_extractf128_ps(f, 1) : _mm256_castps256_ps128(f);
    const __m128i iq = q ? _mm256_extracti128_si256(isum, 1) : _mm256_castsi256_si128(isum);
    __m256d t = _mm256_mul_pd(_mm256_cvtps_pd(fq), _mm256_cvtepi32_pd(iq));
    if (q4) {
      const __m128 gq = q ? _mm256_extractf128_ps(g, 1) : _mm256_castps256_ps128(g);
      const __m128i mq = q ? _mm256_extracti128_si256(msum, 1) : _mm256_castsi256_si128(msum);
      t = _mm256_sub_pd(t, _mm256_mul_pd(_mm256_cvtps_pd(gq), _mm256_cvtepi32_pd(mq)));
    }
    s[q] = _mm256_add_pd(s[q], t);
  }
}

/* What the end of a Q4_K / Q5_K half super-block needs for every activation row, prepared once:
   the mins as int16 pairs (m0, m2), (m1, m3), (m4, m6), (m5, m7), matching words 0..3, and the
   rows' d and dmin. */
typedef struct {
  __m256i mins[4];
  __m256 d, dmin;
} kx_q4k_tail;

static inline __attribute__((always_inline)) kx_q4k_tail kx_q4k_tail_of(const uint8_t *gb, int h, const kx_q4k_scales *sc) {
  const __m256i even16 = _mm256_set1_epi32(0x00ff00ff);
  kx_q4k_tail t;
  t.mins[0] = _mm256_and_si256(sc->mn_lo, even16);
  t.mins[1] = _mm256_and_si256(_mm256_srli_epi32(sc->mn_lo, 8), even16);
  t.mins[2] = _mm256_and_si256(sc->mn_hi, even16);
  t.mins[3] = _mm256_and_si256(_mm256_srli_epi32(sc->mn_hi, 8), even16);
  t.d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(gb + 16 * h)));
  t.dmin = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(gb + 32 + 16 * h)));
  return t;
}

/* The end of a Q4_K / Q5_K half super-block for one activation row: the mins against its words
   0..3, then the float step into s[0..1]. */
static inline __attribute__((always_inline)) void kx_q4k_step(const kx_q4k_tail *t, const q8k_block *x, const int32_t *words, __m256i isum, __m256d s[2]) {
  __m256i msum = _mm256_madd_epi16(t->mins[0], _mm256_set1_epi32(words[0]));
  #pragma GCC unroll 4
  for (int k = 1; k < 4; k++) msum = _mm256_add_epi32(msum, _mm256_madd_epi16(t->mins[k], _mm256_set1_epi32(words[k])));
  kx_float_step(t->d, t->dmin, x->d, isum, msum, 1, s);
}

/* Rows 8h..8h+7's d of a Q6_K group super-block. */
static inline __m256 kx_q6k_d(const uint8_t *gb, int h) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(gb + 16 * h))); }

/* The end of a Q6_K half super-block for one activation row: isum less 32 · Σ_g sc_g · bsum_g
   (the −32 offset: the sixteen groups' scales as sign-extended int16 pairs against words 4..11),
   then the float step into s[0..1] (d: kx_q6k_d). */
static inline __attribute__((always_inline)) void kx_q6k_step(const uint8_t *gb, int h, __m256 d, const q8k_block *x, const int32_t *words, __m256i isum,
                                                               __m256d s[2]) {
  const uint8_t *scales = gb + 32 * h + 32;
  __m256i bsc = _mm256_setzero_si256();
  #pragma GCC unroll 4
  for (int w = 0; w < 4; w++) {
    const __m256i v = _mm256_loadu_si256((const __m256i *)(scales + 64 * w));
    const __m256i even = _mm256_srai_epi16(_mm256_slli_epi16(v, 8), 8), odd = _mm256_srai_epi16(v, 8);
    bsc = _mm256_add_epi32(bsc, _mm256_madd_epi16(even, _mm256_set1_epi32(words[2 * w])));
    bsc = _mm256_add_epi32(bsc, _mm256_madd_epi16(odd, _mm256_set1_epi32(words[2 * w + 1])));
  }
  const __m256i total = _mm256_sub_epi32(isum, _mm256_slli_epi32(bsc, 5));
  kx_float_step(d, d, x->d, total, total, 0, s);
}

#endif
