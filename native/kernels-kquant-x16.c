// Q4_K, Q5_K and Q6_K in the K-quant x16 layout (repack.c) times Q8_K activations with AVX-512 VNNI.
// Each int32 lane of a zmm is one of a group's sixteen weight rows, so nothing is reduced across
// lanes: per four quants of every row, one dpbusd with the activation's four bytes broadcast;
// per sub-block (Q4_K, 32 values) or 16-value group (Q6_K), one multiply by the sixteen rows'
// scales; the mins (Q4_K) and the −32 offset (Q6_K) against the activation's bsums by dpwssd on
// int16 pairs. These are the exact integers of kernels-kquant.c. The float step then runs for
// the sixteen rows at once in two halves of eight doubles, with the twins' expression and order,
// s += (double)(d·dx)·isum − (double)(dmin·dx)·msum (no FMA), so every result is the row
// kernels' bit for bit. Up to KX_MAXN activation rows share each unpacked weight register.
#include "kernels.h"
#include "repack.h"

#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512vnni,avx512dq,avx2,fma,f16c")

/* Activation rows per tile (prompts): their accumulators and the unpacked weights fit the 32 registers. */
#define KX_MAXN 4
/* Super-blocks ahead that prompts (several activation rows) prefetch. */
#define KX_PREFETCH_BLOCKS 2

static inline __m512i bcast4(const int8_t *p) { return _mm512_set1_epi32(x16_quad(p)); }

static inline __m512i byte_lane(__m512i v, int k) { /* byte k of every int32 lane, zero-extended */
  return k == 3 ? _mm512_srli_epi32(v, 24) : _mm512_and_si512(_mm512_srli_epi32(v, 8 * k), _mm512_set1_epi32(0xff));
}

static inline __m512i signed_byte_lane(__m512i v, int k) { /* byte k of every int32 lane, sign-extended */
  return _mm512_srai_epi32(_mm512_slli_epi32(v, 24 - 8 * k), 24);
}

/* s[n] (sixteen rows as two halves of doubles) += (double)(d·dx)·isum [− (double)(dmin·dx)·msum]. */
static inline __attribute__((always_inline)) void float_step(__m512 d, __m512 dmin, float dx, __m512i isum, __m512i msum, int q4, __m512d s[2]) {
  const __m512 dxv = _mm512_set1_ps(dx);
  const __m512 f = _mm512_mul_ps(d, dxv);
  const __m512 g = q4 ? _mm512_mul_ps(dmin, dxv) : f;
  #pragma GCC unroll 2
  for (int h = 0; h < 2; h++) {
    const __m256 fh = h ? _mm512_extractf32x8_ps(f, 1) : _mm512_castps512_ps256(f);
    const __m256i ih = h ? _mm512_extracti64x4_epi64(isum, 1) : _mm512_castsi512_si256(isum);
    __m512d t = _mm512_mul_pd(_mm512_cvtps_pd(fh), _mm512_cvtepi32_pd(ih));
    if (q4) {
      const __m256 gh = h ? _mm512_extractf32x8_ps(g, 1) : _mm512_castps512_ps256(g);
      const __m256i mh = h ? _mm512_extracti64x4_epi64(msum, 1) : _mm512_castsi512_si256(msum);
      t = _mm512_sub_pd(t, _mm512_mul_pd(_mm512_cvtps_pd(gh), _mm512_cvtepi32_pd(mh)));
    }
    s[h] = _mm512_add_pd(s[h], t);
  }
}

/* One Q4_K (q5: Q5_K) group super-block (gb) against N activation super-blocks x[n] (words[n]: their min words). */
static inline __attribute__((always_inline)) void q4k_superblock(const uint8_t *gb, int q5, const q8k_block *const x[KX_MAXN],
                                                                  const int32_t *const words[KX_MAXN], int N, __m512d s[KX_MAXN][2]) {
  /* get_scale_min_k4 for every lane's eight sub-blocks, four bytes per int32 (llama.cpp's masks). */
  const __m512i w0 = _mm512_loadu_si512((const void *)(gb + 64)), w1 = _mm512_loadu_si512((const void *)(gb + 128));
  const __m512i w2 = _mm512_loadu_si512((const void *)(gb + 192));
  const __m512i m6 = _mm512_set1_epi32(0x3f3f3f3f), m4x = _mm512_set1_epi32(0x0f0f0f0f), m2 = _mm512_set1_epi32(0x03030303);
  const __m512i sc_lo = _mm512_and_si512(w0, m6), mn_lo = _mm512_and_si512(w1, m6);
  const __m512i sc_hi = _mm512_or_si512(_mm512_and_si512(w2, m4x), _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(w0, 6), m2), 4));
  const __m512i mn_hi = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(w2, 4), m4x), _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(w1, 6), m2), 4));
  const __m512i pairs = _mm512_set1_epi32(0x00ff00ff);
  const __m512i mins[4] = {_mm512_and_si512(mn_lo, pairs), _mm512_and_si512(_mm512_srli_epi32(mn_lo, 8), pairs),
                           _mm512_and_si512(mn_hi, pairs), _mm512_and_si512(_mm512_srli_epi32(mn_hi, 8), pairs)};
  const __m512i m4 = _mm512_set1_epi8(0x0f);
  __m512i isum[KX_MAXN];
  #pragma GCC unroll 4
  for (int n = 0; n < N; n++) isum[n] = _mm512_setzero_si512();
  /* Q5_K: the fifth bits, chunk k holding values l = 4k..4k+3 of every 64-value pair p, bit 2p
     (low nibbles) and 2p+1 (high), moved to bit 4 by a 16-bit shift (bits crossing into the other
     byte never land on bit 4 there) and merged by ternarylogic. */
  const uint8_t *qh = gb + 256, *qs = gb + (q5 ? 768 : 256);
  const __m512i m10 = _mm512_set1_epi8(0x10);
  #pragma GCC unroll 4
  for (int p = 0; p < 4; p++) {
    __m512i lo[KX_MAXN], hi[KX_MAXN];
    #pragma GCC unroll 4
    for (int n = 0; n < N; n++) lo[n] = hi[n] = _mm512_setzero_si512();
    #pragma GCC unroll 8
    for (int k = 0; k < 8; k++) {
      const __m512i v = _mm512_loadu_si512((const void *)(qs + 64 * (8 * p + k)));
      __m512i l = _mm512_and_si512(v, m4), h = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
      if (q5) {
        const __m512i b = _mm512_loadu_si512((const void *)(qh + 64 * k));
        const __m512i bl = 2 * p <= 4 ? _mm512_slli_epi16(b, 4 - 2 * p) : _mm512_srli_epi16(b, 2 * p - 4);
        const __m512i bh = 2 * p + 1 <= 4 ? _mm512_slli_epi16(b, 3 - 2 * p) : _mm512_srli_epi16(b, 2 * p - 3);
        l = _mm512_ternarylogic_epi32(l, bl, m10, 0xF8); /* l | (bl & 0x10) */
        h = _mm512_ternarylogic_epi32(h, bh, m10, 0xF8);
      }
      #pragma GCC unroll 4
      for (int n = 0; n < N; n++) {
        lo[n] = _mm512_dpbusd_epi32(lo[n], l, bcast4(x[n]->qs + 64 * p + 4 * k));
        hi[n] = _mm512_dpbusd_epi32(hi[n], h, bcast4(x[n]->qs + 64 * p + 32 + 4 * k));
      }
    }
    const __m512i sc_even = byte_lane(p < 2 ? sc_lo : sc_hi, (2 * p) % 4), sc_odd = byte_lane(p < 2 ? sc_lo : sc_hi, (2 * p + 1) % 4);
    #pragma GCC unroll 4
    for (int n = 0; n < N; n++) {
      isum[n] = _mm512_add_epi32(isum[n], _mm512_add_epi32(_mm512_mullo_epi32(lo[n], sc_even), _mm512_mullo_epi32(hi[n], sc_odd)));
    }
  }
  const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)gb));
  const __m512 dmin = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(gb + 32)));
  #pragma GCC unroll 4
  for (int n = 0; n < N; n++) {
    __m512i msum = _mm512_setzero_si512();
    #pragma GCC unroll 4
    for (int k = 0; k < 4; k++) msum = _mm512_dpwssd_epi32(msum, mins[k], _mm512_set1_epi32(words[n][k]));
    float_step(d, dmin, x[n]->d, isum[n], msum, 1, s[n]);
  }
}

/* One Q6_K group super-block. Quarter k of half h holds values 128h + 32k + l (l < 32): quants
   (ql low or high nibble) | (qh bit pair k) << 4, and 16-value groups 8h + 2k and 8h + 2k + 1. */
static inline __attribute__((always_inline)) void q6k_superblock(const uint8_t *gb, const q8k_block *const x[KX_MAXN],
                                                                  const int32_t *const words[KX_MAXN], int N, __m512d s[KX_MAXN][2]) {
  const uint8_t *scales = gb + 32, *triples = gb + 288; /* per (h, c): ql chunk, ql chunk + 32 bytes, qh chunk (repack.c) */
  const __m512i m4 = _mm512_set1_epi8(0x0f), m30 = _mm512_set1_epi8(0x30);
  __m512i isum[KX_MAXN], bsc[KX_MAXN];
  #pragma GCC unroll 4
  for (int n = 0; n < N; n++) isum[n] = bsc[n] = _mm512_setzero_si512();
  #pragma GCC unroll 4
  for (int w = 0; w < 4; w++) {
    /* Σ_g sc_g · bsum_g over the four groups of scale word w, on sign-extended int16 pairs. */
    const __m512i v = _mm512_loadu_si512((const void *)(scales + 64 * w));
    const __m512i even = _mm512_srai_epi16(_mm512_slli_epi16(v, 8), 8), odd = _mm512_srai_epi16(v, 8);
    #pragma GCC unroll 4
    for (int n = 0; n < N; n++) {
      bsc[n] = _mm512_dpwssd_epi32(bsc[n], even, _mm512_set1_epi32(words[n][2 * w]));
      bsc[n] = _mm512_dpwssd_epi32(bsc[n], odd, _mm512_set1_epi32(words[n][2 * w + 1]));
    }
  }
  /* Each (ql, ql + 32, qh) chunk triple is loaded once for the four quarters it holds. */
  #pragma GCC unroll 2
  for (int h = 0; h < 2; h++) {
    #pragma GCC unroll 2
    for (int half = 0; half < 2; half++) { /* l = 16·half .. 16·half + 15: groups 8h + 2k + half */
      __m512i g[4][KX_MAXN];
      #pragma GCC unroll 4
      for (int k = 0; k < 4; k++) {
        #pragma GCC unroll 4
        for (int n = 0; n < N; n++) g[k][n] = _mm512_setzero_si512();
      }
      #pragma GCC unroll 4
      for (int c = 4 * half; c < 4 * half + 4; c++) {
        /* ql bytes 64h + 4c (quarters 0, 2) and 64h + 32 + 4c (1, 3); qh bytes 32h + 4c, bit pair k. */
        const uint8_t *t = triples + 192 * (8 * h + c);
        const __m512i a0 = _mm512_loadu_si512((const void *)t);
        const __m512i a1 = _mm512_loadu_si512((const void *)(t + 64));
        const __m512i b = _mm512_loadu_si512((const void *)(t + 128));
        const __m512i q[4] = {
            _mm512_ternarylogic_epi32(_mm512_and_si512(a0, m4), _mm512_slli_epi16(b, 4), m30, 0xF8), /* nib | (top & 0x30) */
            _mm512_ternarylogic_epi32(_mm512_and_si512(a1, m4), _mm512_slli_epi16(b, 2), m30, 0xF8),
            _mm512_ternarylogic_epi32(_mm512_and_si512(_mm512_srli_epi16(a0, 4), m4), b, m30, 0xF8),
            _mm512_ternarylogic_epi32(_mm512_and_si512(_mm512_srli_epi16(a1, 4), m4), _mm512_srli_epi16(b, 2), m30, 0xF8)};
        #pragma GCC unroll 4
        for (int k = 0; k < 4; k++) {
          #pragma GCC unroll 4
          for (int n = 0; n < N; n++) g[k][n] = _mm512_dpbusd_epi32(g[k][n], q[k], bcast4(x[n]->qs + 128 * h + 32 * k + 4 * c));
        }
      }
      #pragma GCC unroll 4
      for (int k = 0; k < 4; k++) {
        const int group = 8 * h + 2 * k + half;
        const __m512i sc = signed_byte_lane(_mm512_loadu_si512((const void *)(scales + 64 * (group / 4))), group % 4);
        #pragma GCC unroll 4
        for (int n = 0; n < N; n++) isum[n] = _mm512_add_epi32(isum[n], _mm512_mullo_epi32(g[k][n], sc));
      }
    }
  }
  const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)gb));
  #pragma GCC unroll 4
  for (int n = 0; n < N; n++) {
    isum[n] = _mm512_sub_epi32(isum[n], _mm512_slli_epi32(bsc[n], 5));
    float_step(d, d, x[n]->d, isum[n], isum[n], 0, s[n]);
  }
}

/* Group `gp` (nb super-blocks) against activation rows xn[0..N) (words: theirs, KX16_WORDS per super-block, at this type's offset). */
enum { KX_Q4_K, KX_Q5_K, KX_Q6_K };

static inline __attribute__((always_inline)) void kx_tile(const uint8_t *gp, int nb, int kind, const q8k_block *xn, const int32_t *words, int N,
                                                           __m512d s[KX_MAXN][2]) {
  const size_t group_block = 16 * (size_t)(kind == KX_Q4_K ? Q4_K_BLOCK_BYTES : kind == KX_Q5_K ? Q5_K_BLOCK_BYTES : Q6_K_BLOCK_BYTES);
  #pragma GCC unroll 4
  for (int n = 0; n < N; n++) s[n][0] = s[n][1] = _mm512_setzero_pd();
  for (int b = 0; b < nb; b++) {
    const uint8_t *gb = gp + (size_t)b * group_block;
    /* With several activation rows the loop is compute-heavy and the hardware prefetcher falls
       behind; one row reads each group as one sequential stream (Q6_K's too, in its layout's
       read order), which the hardware prefetcher follows better alone. */
    if (N > 1) for (size_t l = 0; l < group_block; l += 64) _mm_prefetch((const char *)gb + KX_PREFETCH_BLOCKS * group_block + l, _MM_HINT_T0);
    const q8k_block *x[KX_MAXN];
    const int32_t *w[KX_MAXN];
    #pragma GCC unroll 4
    for (int n = 0; n < N; n++) {
      x[n] = xn + (size_t)n * nb + b;
      w[n] = words + ((size_t)n * nb + b) * KX16_WORDS;
    }
    if (kind == KX_Q6_K) q6k_superblock(gb, x, w, N, s);
    else q4k_superblock(gb, kind == KX_Q5_K, x, w, N, s);
  }
}

/* Always inlined at call sites with a constant kind: one kernel per type, its branches folded. */
static inline __attribute__((always_inline)) void kx_rows(const matmul_args *a, int r0, int r1, int kind) {
  const int nb = a->cols / QK_K;
  const size_t group_bytes = 16 * row_bytes(a->dtype, a->cols);
  const q8k_block *x = (const q8k_block *)a->x;
  __m512d s[KX_MAXN][2];
  for (int c0 = 0; c0 < a->batch; c0 += X16_ACT_CHUNK) {
    const int c1 = a->batch - c0 < X16_ACT_CHUNK ? a->batch : c0 + X16_ACT_CHUNK;
    for (int g = r0 / 16; g * 16 < r1; g++) {
      const uint8_t *gp = a->w + (size_t)g * group_bytes;
      int lo, hi;
      x16_group_lanes(g, r0, r1, &lo, &hi);
      const __mmask16 keep = (__mmask16)(((1u << hi) - 1) & ~((1u << lo) - 1));
      for (int n = c0; n < c1; n += KX_MAXN) {
        const int N = c1 - n < KX_MAXN ? c1 - n : KX_MAXN;
        const q8k_block *xn = x + (size_t)n * nb;
        const int32_t *wn = a->kx_words + (size_t)n * nb * KX16_WORDS + (kind == KX_Q6_K ? 4 : 0);
        switch (N) {
          case 1: kx_tile(gp, nb, kind, xn, wn, 1, s); break;
          case 2: kx_tile(gp, nb, kind, xn, wn, 2, s); break;
          case 3: kx_tile(gp, nb, kind, xn, wn, 3, s); break;
          default: kx_tile(gp, nb, kind, xn, wn, 4, s); break;
        }
        float *o = a->out + (g * 16 - a->row_start);
        for (int j = 0; j < N; j++) {
          const __m512 v = _mm512_insertf32x8(_mm512_castps256_ps512(_mm512_cvtpd_ps(s[j][0])), _mm512_cvtpd_ps(s[j][1]), 1);
          _mm512_mask_storeu_ps(o + (size_t)(n + j) * a->out_stride, keep, v);
        }
      }
    }
  }
}

void matmul_rows_kquant_x16_avx512(const matmul_args *a, int r0, int r1) {
  if (a->dtype == DT_Q4_K_X16) kx_rows(a, r0, r1, KX_Q4_K);
  else if (a->dtype == DT_Q5_K_X16) kx_rows(a, r0, r1, KX_Q5_K);
  else kx_rows(a, r0, r1, KX_Q6_K);
}

#pragma GCC pop_options
#else
void matmul_rows_kquant_x16_avx512(const matmul_args *a, int r0, int r1) { (void)a; (void)r0; (void)r1; }
#endif
