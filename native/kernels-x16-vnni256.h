// The body of the 256-bit VNNI kernels for the x16 layouts (kernels-x16-vnni256.c includes it
// once per encoding): kernels-x16-avx2.c's tiles with each maddubs + madd pair replaced by one
// dpbusd (u8 × s8, four products summed straight into int32). The same exact integer per row
// and block as the AVX2 and AVX-512 kernels (−offset · Σx + Σ w·x with the weights offset to
// unsigned: +8 for Q4_0, +128 for Q8_0, as kernels-x16.c), then the same convert and
// multiply-add by the two scales, blocks in order: the same bits.
//
// Before including: X16_VNNI256_NAME (the kernel's name) and X16_VNNI256_DPBUSD (the intrinsic),
// inside a #pragma GCC target that enables it.

#define X16V_TILE_N 2
#define X16V_JOIN2(a, b) a##b
#define X16V_JOIN(a, b) X16V_JOIN2(a, b)
#define X16V_FN(suffix) X16V_JOIN(X16_VNNI256_NAME, suffix)

static inline __m256i X16V_FN(_bcast4)(const int8_t *p) { return _mm256_set1_epi32(x16_quad(p)); }

static inline __attribute__((always_inline)) void X16V_FN(_tile_q4)(const uint8_t *g, int nb, const q8_block *x, int N,
                                                                    __m256 acc[2 * X16V_TILE_N], int prefetch) {
  const __m256i nibble = _mm256_set1_epi8(0x0f);
  for (int k = 0; k < 2 * N; k++) acc[k] = _mm256_setzero_ps();
  for (int b = 0; b < nb; b++, g += 288) {
    if (prefetch)
      for (int l = 0; l < 288; l += 64) _mm_prefetch((const char *)g + X16_PREFETCH_AHEAD + l, _MM_HINT_T0);
    __m256i sums[2 * X16V_TILE_N];
    for (int j = 0; j < N; j++) sums[2 * j] = sums[2 * j + 1] = _mm256_set1_epi32(-8 * x[(size_t)j * nb + b].sum);
    for (int c = 0; c < 4; c++) {
      const __m256i v0 = _mm256_loadu_si256((const __m256i *)(g + 32 + 64 * c));
      const __m256i v1 = _mm256_loadu_si256((const __m256i *)(g + 64 + 64 * c));
      const __m256i lo0 = _mm256_and_si256(v0, nibble), hi0 = _mm256_and_si256(_mm256_srli_epi16(v0, 4), nibble);
      const __m256i lo1 = _mm256_and_si256(v1, nibble), hi1 = _mm256_and_si256(_mm256_srli_epi16(v1, 4), nibble);
      for (int j = 0; j < N; j++) {
        const q8_block *xb = &x[(size_t)j * nb + b];
        const __m256i xl = X16V_FN(_bcast4)(xb->qs + 4 * c), xh = X16V_FN(_bcast4)(xb->qs + 16 + 4 * c);
        sums[2 * j] = X16_VNNI256_DPBUSD(X16_VNNI256_DPBUSD(sums[2 * j], lo0, xl), hi0, xh);
        sums[2 * j + 1] = X16_VNNI256_DPBUSD(X16_VNNI256_DPBUSD(sums[2 * j + 1], lo1, xl), hi1, xh);
      }
    }
    X16_SCALE_BLOCK_256(g, x, nb, b, N, sums, acc);
  }
}

static inline __attribute__((always_inline)) void X16V_FN(_tile_q8)(const uint8_t *g, int nb, const q8_block *x, int N,
                                                                    __m256 acc[2 * X16V_TILE_N], int prefetch) {
  const __m256i flip = _mm256_set1_epi8((char)0x80); /* signed quant + 128 as an unsigned byte */
  for (int k = 0; k < 2 * N; k++) acc[k] = _mm256_setzero_ps();
  for (int b = 0; b < nb; b++, g += 544) {
    if (prefetch)
      for (int l = 0; l < 544; l += 64) _mm_prefetch((const char *)g + X16_PREFETCH_AHEAD + l, _MM_HINT_T0);
    __m256i sums[2 * X16V_TILE_N];
    for (int j = 0; j < N; j++) sums[2 * j] = sums[2 * j + 1] = _mm256_set1_epi32(-128 * x[(size_t)j * nb + b].sum);
    for (int c = 0; c < 8; c++) {
      const __m256i u0 = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(g + 32 + 64 * c)), flip);
      const __m256i u1 = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(g + 64 + 64 * c)), flip);
      for (int j = 0; j < N; j++) {
        const __m256i xq = X16V_FN(_bcast4)(x[(size_t)j * nb + b].qs + 4 * c);
        sums[2 * j] = X16_VNNI256_DPBUSD(sums[2 * j], u0, xq);
        sums[2 * j + 1] = X16_VNNI256_DPBUSD(sums[2 * j + 1], u1, xq);
      }
    }
    X16_SCALE_BLOCK_256(g, x, nb, b, N, sums, acc);
  }
}

X16_DRIVER_256(X16_VNNI256_NAME, X16V_FN(_tile_q4), X16V_FN(_tile_q8), X16V_TILE_N)

#undef X16V_FN
#undef X16V_JOIN
#undef X16V_JOIN2
#undef X16V_TILE_N
