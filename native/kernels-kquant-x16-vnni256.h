// The body of the 256-bit VNNI K-quant x16 kernels (kernels-kquant-x16-vnni256.c includes it once
// per encoding): kernels-kquant-x16-avx2.c's half super-blocks with each chunk's maddubs (and the
// int16 sums and madd by the scale after them) replaced by one dpbusd (u8 quants × s8
// activations, four products summed straight into int32: no int16 bounds to respect), then one
// multiply of a sub-block's (Q4_K, Q5_K) or 16-value group's (Q6_K) int32 sum by its scale, as
// the AVX-512 kernel (kernels-kquant-x16.c). The same exact integers, the same float step
// (kquant-x16-256.h): the same bits.
//
// Before including: KXV_NAME (the kernel's name) and KXV_DPBUSD (the intrinsic), inside a
// #pragma GCC target that enables it.

#define KXV_JOIN2(a, b) a##b
#define KXV_JOIN(a, b) KXV_JOIN2(a, b)
#define KXV_FN(suffix) KXV_JOIN(KXV_NAME, suffix)

/* Byte k of every int32 lane as an int32, zero-extended (a Q4_K scale) or sign-extended (Q6_K). */
static inline __m256i KXV_FN(_byte_lane)(__m256i v, int k) {
  return k == 3 ? _mm256_srli_epi32(v, 24) : _mm256_and_si256(_mm256_srli_epi32(v, 8 * k), _mm256_set1_epi32(0xff));
}
static inline __m256i KXV_FN(_signed_byte_lane)(__m256i v, int k) { return _mm256_srai_epi32(_mm256_slli_epi32(v, 24 - 8 * k), 24); }

/* Rows 8h..8h+7 of one Q4_K (q5: Q5_K) group super-block against N activation super-blocks. */
static inline __attribute__((always_inline)) void KXV_FN(_q4k_half)(const uint8_t *gb, int q5, int h, const q8k_block *const x[KX_MAXN],
                                                                    const int32_t *const words[KX_MAXN], int N, __m256d s[KX_MAXN][4]) {
  const uint8_t *o = gb + 32 * h;
  const kx_q4k_scales sc4 = kx_unpack_q4k_scales(o);
  const uint8_t *qh = o + 256, *qs = o + (q5 ? 768 : 256);
  __m256i isum[KX_MAXN];
  #pragma GCC unroll 4
  for (int n = 0; n < N; n++) isum[n] = _mm256_setzero_si256();
  /* Sub-block j: the low (even j) or high (odd j) nibbles of chunks 8·(j/2) .. 8·(j/2) + 7. */
  #pragma GCC unroll 8
  for (int j = 0; j < 8; j++) {
    __m256i g[KX_MAXN];
    #pragma GCC unroll 4
    for (int n = 0; n < N; n++) g[n] = _mm256_setzero_si256();
    #pragma GCC unroll 8
    for (int k = 0; k < 8; k++) {
      const __m256i q = kx_q4k_chunk(qs, qh, q5, j, k);
      #pragma GCC unroll 4
      for (int n = 0; n < N; n++) g[n] = KXV_DPBUSD(g[n], q, kx_bcast4(x[n]->qs + 32 * j + 4 * k));
    }
    const __m256i sc = KXV_FN(_byte_lane)(j < 4 ? sc4.sc_lo : sc4.sc_hi, j % 4);
    #pragma GCC unroll 4
    for (int n = 0; n < N; n++) isum[n] = _mm256_add_epi32(isum[n], _mm256_mullo_epi32(g[n], sc));
  }
  const kx_q4k_tail tail = kx_q4k_tail_of(gb, h, &sc4);
  #pragma GCC unroll 4
  for (int n = 0; n < N; n++) kx_q4k_step(&tail, x[n], words[n], isum[n], s[n] + 2 * h);
}

/* Rows 8h..8h+7 of one Q6_K group super-block (the layout of kernels-kquant-x16-avx2.c's
   q6k_half): a 16-value group at a time, its four chunks reloaded from L1 per quarter. */
static inline __attribute__((always_inline)) void KXV_FN(_q6k_half)(const uint8_t *gb, int h, const q8k_block *const x[KX_MAXN],
                                                                    const int32_t *const words[KX_MAXN], int N, __m256d s[KX_MAXN][4]) {
  const uint8_t *o = gb + 32 * h;
  const uint8_t *scales = o + 32, *triples = o + 288;
  __m256i isum[KX_MAXN];
  #pragma GCC unroll 4
  for (int n = 0; n < N; n++) isum[n] = _mm256_setzero_si256();
  #pragma GCC unroll 2
  for (int P = 0; P < 2; P++) {
    #pragma GCC unroll 4
    for (int k = 0; k < 4; k++) {
      #pragma GCC unroll 2
      for (int i = 0; i < 2; i++) {
        __m256i g[KX_MAXN];
        #pragma GCC unroll 4
        for (int n = 0; n < N; n++) g[n] = _mm256_setzero_si256();
        #pragma GCC unroll 4
        for (int c = 4 * i; c < 4 * i + 4; c++) {
          const uint8_t *t = triples + 192 * (8 * P + c);
          const __m256i a = _mm256_loadu_si256((const __m256i *)(t + 64 * (k % 2)));
          const __m256i q = kx_q6k_quarter(a, a, _mm256_loadu_si256((const __m256i *)(t + 128)), k);
          #pragma GCC unroll 4
          for (int n = 0; n < N; n++) g[n] = KXV_DPBUSD(g[n], q, kx_bcast4(x[n]->qs + 128 * P + 32 * k + 4 * c));
        }
        const int group = 8 * P + 2 * k + i;
        const __m256i sc = KXV_FN(_signed_byte_lane)(_mm256_loadu_si256((const __m256i *)(scales + 64 * (group / 4))), group % 4);
        #pragma GCC unroll 4
        for (int n = 0; n < N; n++) isum[n] = _mm256_add_epi32(isum[n], _mm256_mullo_epi32(g[n], sc));
      }
    }
  }
  const __m256 d = kx_q6k_d(gb, h);
  #pragma GCC unroll 4
  for (int n = 0; n < N; n++) kx_q6k_step(gb, h, d, x[n], words[n], isum[n], s[n] + 2 * h);
}

/* One activation row (decode): each chunk triple is loaded once and unpacked into its four
   quarters, which feed the four groups 8P + 2k + i at once. */
static inline __attribute__((always_inline)) void KXV_FN(_q6k_one_row)(const uint8_t *gb, int h, const q8k_block *x, const int32_t *words, __m256d s[4]) {
  const uint8_t *o = gb + 32 * h;
  const uint8_t *scales = o + 32, *triples = o + 288;
  __m256i isum = _mm256_setzero_si256();
  #pragma GCC unroll 2
  for (int P = 0; P < 2; P++) {
    #pragma GCC unroll 2
    for (int i = 0; i < 2; i++) {
      __m256i g[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256()};
      #pragma GCC unroll 4
      for (int c = 4 * i; c < 4 * i + 4; c++) {
        const uint8_t *t = triples + 192 * (8 * P + c);
        const __m256i a0 = _mm256_loadu_si256((const __m256i *)t), a1 = _mm256_loadu_si256((const __m256i *)(t + 64));
        const __m256i b = _mm256_loadu_si256((const __m256i *)(t + 128));
        #pragma GCC unroll 4
        for (int k = 0; k < 4; k++) g[k] = KXV_DPBUSD(g[k], kx_q6k_quarter(a0, a1, b, k), kx_bcast4(x->qs + 128 * P + 32 * k + 4 * c));
      }
      /* Group 8P + 2k + i's scale is byte (2k + i) % 4 of scale chunk 2P + k / 2. */
      #pragma GCC unroll 4
      for (int k = 0; k < 4; k++) {
        const __m256i v = _mm256_loadu_si256((const __m256i *)(scales + 64 * (2 * P + k / 2)));
        isum = _mm256_add_epi32(isum, _mm256_mullo_epi32(g[k], KXV_FN(_signed_byte_lane)(v, (2 * k + i) % 4)));
      }
    }
  }
  kx_q6k_step(gb, h, kx_q6k_d(gb, h), x, words, isum, s + 2 * h);
}

#define KXD_NAME KXV_NAME
#define KXD_Q4K_HALF KXV_FN(_q4k_half)
#define KXD_Q6K_HALF KXV_FN(_q6k_half)
#define KXD_Q6K_ONE_ROW KXV_FN(_q6k_one_row)
#include "kquant-x16-driver-256.h"
#undef KXD_NAME
#undef KXD_Q4K_HALF
#undef KXD_Q6K_HALF
#undef KXD_Q6K_ONE_ROW

#undef KXV_FN
#undef KXV_JOIN
#undef KXV_JOIN2
