// Q4_K, Q5_K and Q6_K in the K-quant x16 layout (repack.c) times Q8_K activations with AVX2, for CPUs
// without AVX-512 VNNI. A 64-byte chunk of a group super-block holds four bytes of each of the
// sixteen rows; its two 32-byte halves are rows 0-7 and 8-15, one row per int32 lane of a ymm.
// The halves run one after the other over a super-block (each an eight-row kernel), so a tile's
// registers fit the sixteen ymm.
//
// Every result bit equals the AVX-512 VNNI kernel's (kernels-kquant-x16.c) and the row kernels'
// (kernels-kquant.c): per row and super-block the same exact integers isum and msum, then
// s += (double)(d·dx)·isum − (double)(dmin·dx)·msum with separate multiplies and subtract (the
// build has -ffp-contract=off; no FMA here), super-blocks in order, output (float)s. Without
// dpbusd the integer dot products come from maddubs (u8 × s8 byte pairs summed into int16) and
// madd (int16 pairs into int32, exact), with these bounds for ANY int8 activations (Q8_K's are
// in [-127, 127], but even -128 fits):
// - Q4_K: quants 0..15, so one maddubs pair is at most 2·15·128 = 3840 in magnitude (no
//   saturation); a 32-value sub-block is eight chunks per row, 8 · 3840 = 30720 ≤ 32767, so its
//   eight maddubs add up exactly in int16. One madd with the sub-block's scale (0..63) as an int16
//   pair then gives sc · Σ q·x in int32 exactly (|·| ≤ 63 · 2 · 30720 < 2^31).
// - Q5_K: quants 0..31, a maddubs pair at most 2·31·128 = 7936; four chunks add up to at most
//   31744 ≤ 32767, so a sub-block is two such int16 sums, each madd-ed with its scale.
// - Q6_K: quants 0..63, so a maddubs pair is at most 2·63·128 = 16128; two of them (two chunks,
//   eight values) add up to at most 32256 ≤ 32767 in int16. A madd with the 16-value group's
//   signed scale (int8, sign-extended to an int16 pair) gives its int32 share exactly; two such
//   shares make the group.
// The mins (Q4_K) and the −32 offset (Q6_K) are madds of the weights' int16 pairs against the
// activation words of kquant_x16_words, as the AVX-512 kernel's dpwssd.
#include "kernels.h"
#include "repack.h"

#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")

/* Activation rows per tile: their int16 and int32 sums, the unpacked chunk and masks fit the
   sixteen ymm (the double accumulators live in memory, touched once per super-block). */
#define KX_MAXN 4
#ifndef KX_PREFETCH_BLOCKS
#define KX_PREFETCH_BLOCKS 3
#endif

static inline __m256i bcast4(const int8_t *p) { return _mm256_set1_epi32(x16_quad(p)); }

/* pshufb control: byte k of every int32 lane into both int16 halves, as the low byte (signed = 0)
   or as the high byte (signed = 1: an arithmetic shift by 8 then sign-extends it). */
static inline __m256i pair_control(int k, int is_signed) {
  const int32_t lane = is_signed ? (int32_t)(0x00800080u | (uint32_t)k << 8 | (uint32_t)k << 24) : (int32_t)(0x80008000u | (uint32_t)k | (uint32_t)k << 16);
  const int32_t step = is_signed ? 0x04000400 : 0x00040004; /* + 4·i on the picking bytes of lane i of each 128-bit half */
  return _mm256_add_epi32(_mm256_set1_epi32(lane), _mm256_setr_epi32(0, step, 2 * step, 3 * step, 0, step, 2 * step, 3 * step));
}
/* Byte k of every lane, zero-extended, as an int16 pair (a Q4_K scale). */
static inline __m256i unsigned_pair(__m256i v, int k) { return _mm256_shuffle_epi8(v, pair_control(k, 0)); }
/* Byte k of every lane, sign-extended, as an int16 pair (a Q6_K scale). */
static inline __m256i signed_pair(__m256i v, int k) { return _mm256_srai_epi16(_mm256_shuffle_epi8(v, pair_control(k, 1)), 8); }

/* s[0..1] (eight rows as two quarters of doubles) += (double)(d·dx)·isum [− (double)(dmin·dx)·msum]. */
static inline __attribute__((always_inline)) void float_step(__m256 d, __m256 dmin, float dx, __m256i isum, __m256i msum, int q4, __m256d s[2]) {
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

/* Rows 8h..8h+7 of one Q4_K (q5: Q5_K) group super-block (gb) against N activation super-blocks
   x[n] (words[n]: their min words); s[n][2h], s[n][2h + 1] are those rows' doubles. */
static inline __attribute__((always_inline)) void q4k_half(const uint8_t *gb, int q5, int h, const q8k_block *const x[KX_MAXN],
                                                            const int32_t *const words[KX_MAXN], int N, __m256d s[KX_MAXN][4]) {
  const uint8_t *o = gb + 32 * h;
  /* get_scale_min_k4 for every lane's eight sub-blocks, four bytes per int32 (llama.cpp's masks). */
  const __m256i w0 = _mm256_loadu_si256((const __m256i *)(o + 64)), w1 = _mm256_loadu_si256((const __m256i *)(o + 128));
  const __m256i w2 = _mm256_loadu_si256((const __m256i *)(o + 192));
  const __m256i m6 = _mm256_set1_epi32(0x3f3f3f3f), m4x = _mm256_set1_epi32(0x0f0f0f0f), m2 = _mm256_set1_epi32(0x03030303);
  const __m256i sc_lo = _mm256_and_si256(w0, m6), mn_lo = _mm256_and_si256(w1, m6);
  const __m256i sc_hi = _mm256_or_si256(_mm256_and_si256(w2, m4x), _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(w0, 6), m2), 4));
  const __m256i mn_hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32(w2, 4), m4x), _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(w1, 6), m2), 4));
  const __m256i m4 = _mm256_set1_epi8(0x0f);
  __m256i isum[KX_MAXN];
  #pragma GCC unroll 4
  for (int n = 0; n < N; n++) isum[n] = _mm256_setzero_si256();
  /* Q5_K: sub-block j's fifth bits are bit j of the qh chunk holding the same four values, moved
     to bit 4 by a 16-bit shift (bits crossing into the other byte never land on bit 4 there). */
  const uint8_t *qh = o + 256, *qs = o + (q5 ? 768 : 256);
  const __m256i m10 = _mm256_set1_epi8(0x10);
  const int per_sum = q5 ? 4 : 8; /* chunks summed in int16 before a madd (the bounds above) */
  /* Sub-block j: the low (even j) or high (odd j) nibbles of chunks 8·(j/2) .. 8·(j/2) + 7, each
     chunk loaded once per nibble so that only one sub-block's sums are live. */
  #pragma GCC unroll 8
  for (int j = 0; j < 8; j++) {
    const int p = j / 2;
    __m256i pairs[KX_MAXN];
    #pragma GCC unroll 8
    for (int k = 0; k < 8; k++) {
      const __m256i v = _mm256_loadu_si256((const __m256i *)(qs + 64 * (8 * p + k)));
      __m256i q = j % 2 ? _mm256_and_si256(_mm256_srli_epi16(v, 4), m4) : _mm256_and_si256(v, m4);
      if (q5) {
        const __m256i b = _mm256_loadu_si256((const __m256i *)(qh + 64 * k));
        q = _mm256_or_si256(q, _mm256_and_si256(j <= 4 ? _mm256_slli_epi16(b, 4 - j) : _mm256_srli_epi16(b, j - 4), m10));
      }
      #pragma GCC unroll 4
      for (int n = 0; n < N; n++) {
        const __m256i t = _mm256_maddubs_epi16(q, bcast4(x[n]->qs + 32 * j + 4 * k));
        pairs[n] = k % per_sum ? _mm256_add_epi16(pairs[n], t) : t;
      }
      if (k % per_sum == per_sum - 1) {
        const __m256i sc = unsigned_pair(j < 4 ? sc_lo : sc_hi, j % 4);
        #pragma GCC unroll 4
        for (int n = 0; n < N; n++) isum[n] = _mm256_add_epi32(isum[n], _mm256_madd_epi16(pairs[n], sc));
      }
    }
  }
  /* The mins as int16 pairs (m0, m2), (m1, m3), (m4, m6), (m5, m7), matching words 0..3. */
  const __m256i even16 = _mm256_set1_epi32(0x00ff00ff);
  const __m256i mins[4] = {_mm256_and_si256(mn_lo, even16), _mm256_and_si256(_mm256_srli_epi32(mn_lo, 8), even16),
                           _mm256_and_si256(mn_hi, even16), _mm256_and_si256(_mm256_srli_epi32(mn_hi, 8), even16)};
  const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(gb + 16 * h)));
  const __m256 dmin = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(gb + 32 + 16 * h)));
  #pragma GCC unroll 4
  for (int n = 0; n < N; n++) {
    __m256i msum = _mm256_madd_epi16(mins[0], _mm256_set1_epi32(words[n][0]));
    #pragma GCC unroll 4
    for (int k = 1; k < 4; k++) msum = _mm256_add_epi32(msum, _mm256_madd_epi16(mins[k], _mm256_set1_epi32(words[n][k])));
    float_step(d, dmin, x[n]->d, isum[n], msum, 1, s[n] + 2 * h);
  }
}

/* The end of a Q6_K half super-block for one activation row: isum less 32 · Σ_g sc_g · bsum_g
   (the −32 offset: the sixteen groups' scales as sign-extended int16 pairs against words 4..11),
   then the float step into s[0..1]. */
static inline __attribute__((always_inline)) void q6k_step(__m256 d, const uint8_t *scales, const q8k_block *x, const int32_t *words, __m256i isum,
                                                            __m256d s[2]) {
  __m256i bsc = _mm256_setzero_si256();
  #pragma GCC unroll 4
  for (int w = 0; w < 4; w++) {
    const __m256i v = _mm256_loadu_si256((const __m256i *)(scales + 64 * w));
    const __m256i even = _mm256_srai_epi16(_mm256_slli_epi16(v, 8), 8), odd = _mm256_srai_epi16(v, 8);
    bsc = _mm256_add_epi32(bsc, _mm256_madd_epi16(even, _mm256_set1_epi32(words[2 * w])));
    bsc = _mm256_add_epi32(bsc, _mm256_madd_epi16(odd, _mm256_set1_epi32(words[2 * w + 1])));
  }
  const __m256i total = _mm256_sub_epi32(isum, _mm256_slli_epi32(bsc, 5));
  float_step(d, d, x->d, total, total, 0, s);
}

/* Rows 8h..8h+7 of one Q6_K group super-block. Quarter k of part P (values 128P .. 128P + 127)
   holds values 128P + 32k + l (l < 32): quants (ql low nibble for k < 2, high for k ≥ 2, of ql
   byte 64P + 32·(k % 2) + l) | (qh byte 32P + l, bit pair k) << 4; 16-value group 8P + 2k + l / 16.
   Each group is its own pass over its four chunks (ql and qh reloaded per quarter from L1) so
   that only one group's sums are live. */
static inline __attribute__((always_inline)) void q6k_half(const uint8_t *gb, int h, const q8k_block *const x[KX_MAXN],
                                                            const int32_t *const words[KX_MAXN], int N, __m256d s[KX_MAXN][4]) {
  const uint8_t *o = gb + 32 * h;
  const uint8_t *scales = o + 32, *triples = o + 288; /* per (P, c): ql chunk, ql chunk + 32 bytes, qh chunk (repack.c) */
  const __m256i m4 = _mm256_set1_epi8(0x0f), m30 = _mm256_set1_epi8(0x30);
  __m256i isum[KX_MAXN];
  #pragma GCC unroll 4
  for (int n = 0; n < N; n++) isum[n] = _mm256_setzero_si256();
  #pragma GCC unroll 2
  for (int P = 0; P < 2; P++) {
    #pragma GCC unroll 4
    for (int k = 0; k < 4; k++) {
      #pragma GCC unroll 2
      for (int i = 0; i < 2; i++) {
        const int group = 8 * P + 2 * k + i;
        const __m256i sc = signed_pair(_mm256_loadu_si256((const __m256i *)(scales + 64 * (group / 4))), group % 4);
        #pragma GCC unroll 2
        for (int e = 0; e < 2; e++) { /* chunks c = 4i + 2e, 4i + 2e + 1: eight values, summed in int16 */
          __m256i pairs[KX_MAXN];
          #pragma GCC unroll 2
          for (int u = 0; u < 2; u++) {
            const int c = 4 * i + 2 * e + u;
            const uint8_t *t = triples + 192 * (8 * P + c);
            const __m256i a = _mm256_loadu_si256((const __m256i *)(t + 64 * (k % 2)));
            const __m256i b = _mm256_loadu_si256((const __m256i *)(t + 128));
            const __m256i nib = k < 2 ? _mm256_and_si256(a, m4) : _mm256_and_si256(_mm256_srli_epi16(a, 4), m4);
            const __m256i top = k == 0 ? _mm256_slli_epi16(b, 4) : k == 1 ? _mm256_slli_epi16(b, 2) : k == 2 ? b : _mm256_srli_epi16(b, 2);
            const __m256i q = _mm256_or_si256(nib, _mm256_and_si256(top, m30));
            #pragma GCC unroll 4
            for (int n = 0; n < N; n++) {
              const __m256i t = _mm256_maddubs_epi16(q, bcast4(x[n]->qs + 128 * P + 32 * k + 4 * c));
              pairs[n] = u ? _mm256_add_epi16(pairs[n], t) : t;
            }
          }
          #pragma GCC unroll 4
          for (int n = 0; n < N; n++) isum[n] = _mm256_add_epi32(isum[n], _mm256_madd_epi16(pairs[n], sc));
        }
      }
    }
  }
  const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(gb + 16 * h)));
  #pragma GCC unroll 4
  for (int n = 0; n < N; n++) q6k_step(d, scales, x[n], words[n], isum[n], s[n] + 2 * h);
}

/* One activation row (decode): the same sums as q6k_half with N = 1, but each (ql, ql + 32, qh)
   chunk triple is loaded once and unpacked into all four of its quarters, which feed the four
   groups 8P + 2k + i at once. q6k_half's order (a group at a time, its chunks reloaded from L1)
   keeps few sums live for several rows, but for one row the compiler merges those reloads and
   spills the chunks instead: 11 instructions per 32 quants, against about 8.5 here. */
static inline __attribute__((always_inline)) void q6k_half_one_row(const uint8_t *gb, int h, const q8k_block *x, const int32_t *words, __m256d s[4]) {
  const uint8_t *o = gb + 32 * h;
  const uint8_t *scales = o + 32, *triples = o + 288;
  const __m256i m4 = _mm256_set1_epi8(0x0f), m30 = _mm256_set1_epi8(0x30);
  __m256i isum = _mm256_setzero_si256();
  #pragma GCC unroll 2
  for (int P = 0; P < 2; P++) {
    #pragma GCC unroll 2
    for (int i = 0; i < 2; i++) {
      /* Group 8P + 2k + i's scale is byte (2k + i) % 4 of scale chunk 2P + k / 2. */
      const __m256i lo = _mm256_loadu_si256((const __m256i *)(scales + 64 * (2 * P))), hi = _mm256_loadu_si256((const __m256i *)(scales + 64 * (2 * P + 1)));
      const __m256i sc[4] = {signed_pair(lo, i), signed_pair(lo, 2 + i), signed_pair(hi, i), signed_pair(hi, 2 + i)};
      #pragma GCC unroll 2
      for (int e = 0; e < 2; e++) {
        /* Chunks c0 = 4i + 2e and c0 + 1 (eight values of each row, summed in int16). */
        const int c0 = 4 * i + 2 * e;
        const uint8_t *t0 = triples + 192 * (8 * P + c0), *t1 = t0 + 192;
        const __m256i a00 = _mm256_loadu_si256((const __m256i *)t0), a01 = _mm256_loadu_si256((const __m256i *)(t0 + 64));
        const __m256i b0 = _mm256_loadu_si256((const __m256i *)(t0 + 128));
        const __m256i a10 = _mm256_loadu_si256((const __m256i *)t1), a11 = _mm256_loadu_si256((const __m256i *)(t1 + 64));
        const __m256i b1 = _mm256_loadu_si256((const __m256i *)(t1 + 128));
        #pragma GCC unroll 4
        for (int k = 0; k < 4; k++) {
          __m256i pairs = _mm256_setzero_si256();
          #pragma GCC unroll 2
          for (int u = 0; u < 2; u++) {
            const __m256i a = u ? (k % 2 ? a11 : a10) : (k % 2 ? a01 : a00), b = u ? b1 : b0;
            const __m256i nib = k < 2 ? _mm256_and_si256(a, m4) : _mm256_and_si256(_mm256_srli_epi16(a, 4), m4);
            const __m256i top = k == 0 ? _mm256_slli_epi16(b, 4) : k == 1 ? _mm256_slli_epi16(b, 2) : k == 2 ? b : _mm256_srli_epi16(b, 2);
            const __m256i q = _mm256_or_si256(nib, _mm256_and_si256(top, m30));
            const __m256i p = _mm256_maddubs_epi16(q, bcast4(x->qs + 128 * P + 32 * k + 4 * (c0 + u)));
            pairs = u ? _mm256_add_epi16(pairs, p) : p;
          }
          isum = _mm256_add_epi32(isum, _mm256_madd_epi16(pairs, sc[k]));
          /* Opaque: otherwise the compiler reassociates the 32 additions into a tree whose
             leaves all stay live, and spills them (and the broadcasts) to the stack. */
          __asm__("" : "+x"(isum));
        }
      }
    }
  }
  q6k_step(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(gb + 16 * h))), scales, x, words, isum, s + 2 * h);
}

/* Group `gp` (nb super-blocks) against activation rows xn[0..N) (words: theirs, KX16_WORDS per
   super-block, at this type's offset); `prefetch`: software prefetch KX_PREFETCH_BLOCKS
   super-blocks ahead. */
enum { KX_Q4_K, KX_Q5_K, KX_Q6_K };

static inline __attribute__((always_inline)) void kx_tile(const uint8_t *gp, int nb, int kind, const q8k_block *xn, const int32_t *words, int N,
                                                           int prefetch, __m256d s[KX_MAXN][4]) {
  const size_t group_block = 16 * (size_t)(kind == KX_Q4_K ? Q4_K_BLOCK_BYTES : kind == KX_Q5_K ? Q5_K_BLOCK_BYTES : Q6_K_BLOCK_BYTES);
  #pragma GCC unroll 4
  for (int n = 0; n < N; n++) s[n][0] = s[n][1] = s[n][2] = s[n][3] = _mm256_setzero_pd();
  for (int b = 0; b < nb; b++) {
    const uint8_t *gb = gp + (size_t)b * group_block;
    if (prefetch) for (size_t l = 0; l < group_block; l += 64) _mm_prefetch((const char *)gb + KX_PREFETCH_BLOCKS * group_block + l, _MM_HINT_T0);
    const q8k_block *x[KX_MAXN];
    const int32_t *w[KX_MAXN];
    #pragma GCC unroll 4
    for (int n = 0; n < N; n++) {
      x[n] = xn + (size_t)n * nb + b;
      w[n] = words + ((size_t)n * nb + b) * KX16_WORDS;
    }
    /* Two halves of eight rows; each row's doubles still see the super-blocks in order. */
    #pragma GCC unroll 1
    for (int h = 0; h < 2; h++) {
      /* Opaque to the compiler: otherwise it hoists both halves' activation broadcasts out of this
         loop, and with no registers left for them they go through the stack (Q4_K, 64 rows:
         107 -> 125 GFLOP/CPU-s without that). */
      const q8k_block *xh[KX_MAXN];
      #pragma GCC unroll 4
      for (int n = 0; n < N; n++) {
        xh[n] = x[n];
        __asm__("" : "+r"(xh[n]));
      }
      if (kind == KX_Q6_K && N == 1) q6k_half_one_row(gb, h, xh[0], w[0], s[0]);
      else if (kind == KX_Q6_K) q6k_half(gb, h, xh, w, N, s);
      else q4k_half(gb, kind == KX_Q5_K, h, xh, w, N, s);
    }
  }
}

/* Always inlined at call sites with a constant kind: one kernel per type, its branches folded. */
static inline __attribute__((always_inline)) void kx_rows(const matmul_args *a, int r0, int r1, int kind) {
  const int nb = a->cols / QK_K;
  const size_t group_bytes = 16 * row_bytes(a->dtype, a->cols);
  const q8k_block *x = (const q8k_block *)a->x;
  __m256d s[KX_MAXN][4];
  for (int c0 = 0; c0 < a->batch; c0 += X16_ACT_CHUNK) {
    const int c1 = a->batch - c0 < X16_ACT_CHUNK ? a->batch : c0 + X16_ACT_CHUNK;
    for (int g = r0 / 16; g * 16 < r1; g++) {
      const uint8_t *gp = a->w + (size_t)g * group_bytes;
      int lo, hi;
      x16_group_lanes(g, r0, r1, &lo, &hi);
      for (int n = c0; n < c1; n += KX_MAXN) {
        const int N = c1 - n < KX_MAXN ? c1 - n : KX_MAXN;
        const q8k_block *xn = x + (size_t)n * nb;
        const int32_t *wn = a->kx_words + (size_t)n * nb * KX16_WORDS + (kind == KX_Q6_K ? 4 : 0);
        /* The first pass over a group reads it from memory. A single activation row streams
           fast enough for the hardware prefetcher, and a burst of software prefetches at each
           super-block only stalls it (from a 168 MB matrix, one thread: Q4_K 28 -> 24 GB/s,
           Q6_K 21 -> 12); several rows fall behind it (Q4_K, 4 rows: 92 -> 104 GFLOP/s). */
        const int prefetch = n == c0 && N > 1;
        switch (N) {
          case 1: kx_tile(gp, nb, kind, xn, wn, 1, prefetch, s); break;
          case 2: kx_tile(gp, nb, kind, xn, wn, 2, prefetch, s); break;
          case 3: kx_tile(gp, nb, kind, xn, wn, 3, prefetch, s); break;
          default: kx_tile(gp, nb, kind, xn, wn, 4, prefetch, s); break;
        }
        float *o = a->out + (g * 16 - a->row_start);
        for (int j = 0; j < N; j++) {
          float lanes[16];
          #pragma GCC unroll 4
          for (int q = 0; q < 4; q++) _mm_storeu_ps(lanes + 4 * q, _mm256_cvtpd_ps(s[j][q]));
          for (int i = lo; i < hi; i++) o[(size_t)(n + j) * a->out_stride + i] = lanes[i];
        }
      }
    }
  }
}

void matmul_rows_kquant_x16_avx2(const matmul_args *a, int r0, int r1) {
  if (a->dtype == DT_Q4_K_X16) kx_rows(a, r0, r1, KX_Q4_K);
  else if (a->dtype == DT_Q5_K_X16) kx_rows(a, r0, r1, KX_Q5_K);
  else kx_rows(a, r0, r1, KX_Q6_K);
}

#pragma GCC pop_options
#else
void matmul_rows_kquant_x16_avx2(const matmul_args *a, int r0, int r1) { (void)a; (void)r0; (void)r1; }
#endif
