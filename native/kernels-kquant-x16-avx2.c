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

#include "kquant-x16-256.h"


/* Rows 8h..8h+7 of one Q4_K (q5: Q5_K) group super-block (gb) against N activation super-blocks
   x[n] (words[n]: their min words); s[n][2h], s[n][2h + 1] are those rows' doubles. */
static inline __attribute__((always_inline)) void q4k_half(const uint8_t *gb, int q5, int h, const q8k_block *const x[KX_MAXN],
                                                            const int32_t *const words[KX_MAXN], int N, __m256d s[KX_MAXN][4]) {
  const uint8_t *o = gb + 32 * h;
  const kx_q4k_scales sc4 = kx_unpack_q4k_scales(o);
  __m256i isum[KX_MAXN];
  #pragma GCC unroll 4
  for (int n = 0; n < N; n++) isum[n] = _mm256_setzero_si256();
  const uint8_t *qh = o + 256, *qs = o + (q5 ? 768 : 256);
  const int per_sum = q5 ? 4 : 8; /* chunks summed in int16 before a madd (the bounds above) */
  /* Sub-block j: the low (even j) or high (odd j) nibbles of chunks 8·(j/2) .. 8·(j/2) + 7, each
     chunk loaded once per nibble so that only one sub-block's sums are live. */
  #pragma GCC unroll 8
  for (int j = 0; j < 8; j++) {
    __m256i pairs[KX_MAXN];
    #pragma GCC unroll 8
    for (int k = 0; k < 8; k++) {
      const __m256i q = kx_q4k_chunk(qs, qh, q5, j, k);
      #pragma GCC unroll 4
      for (int n = 0; n < N; n++) {
        const __m256i t = _mm256_maddubs_epi16(q, kx_bcast4(x[n]->qs + 32 * j + 4 * k));
        pairs[n] = k % per_sum ? _mm256_add_epi16(pairs[n], t) : t;
      }
      if (k % per_sum == per_sum - 1) {
        const __m256i sc = kx_unsigned_pair(j < 4 ? sc4.sc_lo : sc4.sc_hi, j % 4);
        #pragma GCC unroll 4
        for (int n = 0; n < N; n++) isum[n] = _mm256_add_epi32(isum[n], _mm256_madd_epi16(pairs[n], sc));
      }
    }
  }
  const kx_q4k_tail tail = kx_q4k_tail_of(gb, h, &sc4);
  #pragma GCC unroll 4
  for (int n = 0; n < N; n++) kx_q4k_step(&tail, x[n], words[n], isum[n], s[n] + 2 * h);
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
        const __m256i sc = kx_signed_pair(_mm256_loadu_si256((const __m256i *)(scales + 64 * (group / 4))), group % 4);
        #pragma GCC unroll 2
        for (int e = 0; e < 2; e++) { /* chunks c = 4i + 2e, 4i + 2e + 1: eight values, summed in int16 */
          __m256i pairs[KX_MAXN];
          #pragma GCC unroll 2
          for (int u = 0; u < 2; u++) {
            const int c = 4 * i + 2 * e + u;
            const uint8_t *t = triples + 192 * (8 * P + c);
            const __m256i a = _mm256_loadu_si256((const __m256i *)(t + 64 * (k % 2)));
            const __m256i q = kx_q6k_quarter(a, a, _mm256_loadu_si256((const __m256i *)(t + 128)), k);
            #pragma GCC unroll 4
            for (int n = 0; n < N; n++) {
              const __m256i t = _mm256_maddubs_epi16(q, kx_bcast4(x[n]->qs + 128 * P + 32 * k + 4 * c));
              pairs[n] = u ? _mm256_add_epi16(pairs[n], t) : t;
            }
          }
          #pragma GCC unroll 4
          for (int n = 0; n < N; n++) isum[n] = _mm256_add_epi32(isum[n], _mm256_madd_epi16(pairs[n], sc));
        }
      }
    }
  }
  const __m256 d = kx_q6k_d(gb, h);
  #pragma GCC unroll 4
  for (int n = 0; n < N; n++) kx_q6k_step(gb, h, d, x[n], words[n], isum[n], s[n] + 2 * h);
}

/* One activation row (decode): the same sums as q6k_half with N = 1, but each (ql, ql + 32, qh)
   chunk triple is loaded once and unpacked into all four of its quarters, which feed the four
   groups 8P + 2k + i at once. q6k_half's order (a group at a time, its chunks reloaded from L1)
   keeps few sums live for several rows, but for one row the compiler merges those reloads and
   spills the chunks instead: 11 instructions per 32 quants, against about 8.5 here. */
static inline __attribute__((always_inline)) void q6k_half_one_row(const uint8_t *gb, int h, const q8k_block *x, const int32_t *words, __m256d s[4]) {
  const uint8_t *o = gb + 32 * h;
  const uint8_t *scales = o + 32, *triples = o + 288;
  __m256i isum = _mm256_setzero_si256();
  #pragma GCC unroll 2
  for (int P = 0; P < 2; P++) {
    #pragma GCC unroll 2
    for (int i = 0; i < 2; i++) {
      /* Group 8P + 2k + i's scale is byte (2k + i) % 4 of scale chunk 2P + k / 2. */
      const __m256i lo = _mm256_loadu_si256((const __m256i *)(scales + 64 * (2 * P))), hi = _mm256_loadu_si256((const __m256i *)(scales + 64 * (2 * P + 1)));
      const __m256i sc[4] = {kx_signed_pair(lo, i), kx_signed_pair(lo, 2 + i), kx_signed_pair(hi, i), kx_signed_pair(hi, 2 + i)};
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
            const __m256i q = u ? kx_q6k_quarter(a10, a11, b1, k) : kx_q6k_quarter(a00, a01, b0, k);
            const __m256i p = _mm256_maddubs_epi16(q, kx_bcast4(x->qs + 128 * P + 32 * k + 4 * (c0 + u)));
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
  kx_q6k_step(gb, h, kx_q6k_d(gb, h), x, words, isum, s + 2 * h);
}

#define KXD_NAME matmul_rows_kquant_x16_avx2
#define KXD_Q4K_HALF q4k_half
#define KXD_Q6K_HALF q6k_half
#define KXD_Q6K_ONE_ROW q6k_half_one_row
#include "kquant-x16-driver-256.h"
#undef KXD_NAME
#undef KXD_Q4K_HALF
#undef KXD_Q6K_HALF
#undef KXD_Q6K_ONE_ROW

#pragma GCC pop_options
#else
void matmul_rows_kquant_x16_avx2(const matmul_args *a, int r0, int r1) { (void)a; (void)r0; (void)r1; }
#endif
