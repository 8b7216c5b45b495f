// The driver of a 256-bit K-quant x16 kernel (included once per kernel, after kquant-x16-256.h):
// groups of sixteen rows, tiles of up to KX_MAXN activation rows, each super-block as two halves
// of eight rows. Before including, define:
// - KXD_NAME: the kernel's name (a matmul_rows_fn);
// - KXD_Q4K_HALF(gb, q5, h, x, w, N, s), KXD_Q6K_HALF(gb, h, x, w, N, s): rows 8h..8h+7 of a
//   group super-block against N activation super-blocks (kernels-kquant-x16-avx2.c's q4k_half);
// - KXD_Q6K_ONE_ROW(gb, h, x, w, s): the same for one activation row (decode).
#define KXD_JOIN2(a, b) a##b
#define KXD_JOIN(a, b) KXD_JOIN2(a, b)
#define KXD_FN(suffix) KXD_JOIN(KXD_NAME, suffix)

/* Group `gp` (nb super-blocks) against activation rows xn[0..N) (words: theirs, KX16_WORDS per
   super-block, at this type's offset); `prefetch`: software prefetch KX_PREFETCH_BLOCKS
   super-blocks ahead. */
static inline __attribute__((always_inline)) void KXD_FN(_tile)(const uint8_t *gp, int nb, int kind, const q8k_block *xn, const int32_t *words, int N,
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
      if (kind == KX_Q6_K && N == 1) KXD_Q6K_ONE_ROW(gb, h, xh[0], w[0], s[0]);
      else if (kind == KX_Q6_K) KXD_Q6K_HALF(gb, h, xh, w, N, s);
      else KXD_Q4K_HALF(gb, kind == KX_Q5_K, h, xh, w, N, s);
    }
  }
}

/* Always inlined at call sites with a constant kind: one kernel per type, its branches folded. */
static inline __attribute__((always_inline)) void KXD_FN(_rows)(const matmul_args *a, int r0, int r1, int kind) {
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
          case 1: KXD_FN(_tile)(gp, nb, kind, xn, wn, 1, prefetch, s); break;
          case 2: KXD_FN(_tile)(gp, nb, kind, xn, wn, 2, prefetch, s); break;
          case 3: KXD_FN(_tile)(gp, nb, kind, xn, wn, 3, prefetch, s); break;
          default: KXD_FN(_tile)(gp, nb, kind, xn, wn, 4, prefetch, s); break;
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

void KXD_NAME(const matmul_args *a, int r0, int r1) {
  if (a->dtype == DT_Q4_K_X16) KXD_FN(_rows)(a, r0, r1, KX_Q4_K);
  else if (a->dtype == DT_Q5_K_X16) KXD_FN(_rows)(a, r0, r1, KX_Q5_K);
  else KXD_FN(_rows)(a, r0, r1, KX_Q6_K);
}

#undef KXD_FN
#undef KXD_JOIN
#undef KXD_JOIN2
