// Kernel signatures shared by the generic C, AVX2 and AVX-512 versions. Layout, stated once:
// weights are row-major [rows, cols] (rows = output features) in their stored block format;
// activations are row-major [batch, cols] float32, or for quantized weights the same rows
// quantized to Q8 blocks (see q8_block). out[n * out_stride + (r - row_start)].
#ifndef GEMMA3_KERNELS_H
#define GEMMA3_KERNELS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* *_X16: the interleaved layouts of repack.c (machines with AVX-512 VNNI or AVX2). */
enum { DT_F32 = 0, DT_F16 = 1, DT_BF16 = 2, DT_Q8_0 = 3, DT_Q4_0 = 4, DT_Q4_0_X16 = 5, DT_Q8_0_X16 = 6, DT_Q4_K = 7, DT_Q6_K = 8,
       DT_Q5_0 = 9, DT_Q5_1 = 10, DT_Q5_K = 11 /* kernels-q5.c */, DT_Q4_K_X16 = 12, DT_Q6_K_X16 = 13, DT_Q5_K_X16 = 14 };

/* The K-quants (kernels-kquant.c): 256-value super-blocks, multiplied against activations in Q8_K. */
#define QK_K 256
#define Q4_K_BLOCK_BYTES 144 /* f16 d, f16 dmin, 6-bit scales/mins[12], qs[128] */
#define Q6_K_BLOCK_BYTES 210 /* ql[128], qh[64], int8 scales[16], f16 d */
#define Q5_K_BLOCK_BYTES 176 /* f16 d, f16 dmin, 6-bit scales/mins[12], qh[32], qs[128] */
#define Q5_0_BLOCK_BYTES 22  /* f16 d, qh[4], qs[16] */
#define Q5_1_BLOCK_BYTES 24  /* f16 d, f16 m, qh[4], qs[16] */

/** 32 activations quantized like llama.cpp's quantize_row_q8_0_ref, plus their sum. */
typedef struct {
  int8_t qs[32];
  float d;     /* the f16-rounded scale, widened */
  int32_t sum; /* Σ qs, for the unsigned-operand correction of the integer dot products */
} q8_block;

/** 256 activations quantized like llama.cpp's quantize_row_q8_K_ref (block_q8_K). */
typedef struct {
  float d;            /* 1 / iscale, a plain float */
  int8_t qs[QK_K];
  int16_t bsums[QK_K / 16]; /* Σ of each 16 quants */
} q8k_block;
_Static_assert(sizeof(q8k_block) == 292, "q8k_block must be ggml's block_q8_K byte for byte");

typedef struct {
  const uint8_t *w;
  int dtype;
  int cols;
  const void *x; /* float*, q8_block* or q8k_block* */
  int batch;
  int row_start; /* first row of the requested range (out column 0) */
  float *out;
  int out_stride;
  const int32_t *kx_words; /* K-quant x16 products: KX16_WORDS per activation super-block (kquant_x16_words) */
} matmul_args;

/** Computes rows [r0, r1) of the product for every batch row. */
typedef void (*matmul_rows_fn)(const matmul_args *a, int r0, int r1);

void matmul_rows_generic(const matmul_args *a, int r0, int r1);
void matmul_rows_avx2(const matmul_args *a, int r0, int r1);
/** Float weights (F32, F16, BF16) times many activation rows with AVX2, through packed float32
    panels (kernels-packed-avx2.c). */
void matmul_float_packed_avx2(const matmul_args *a, int r0, int r1);
/** matmul_rows_avx2 with float prompts (16+ rows) through matmul_float_packed_avx2: the opt-in
    GEMMA3_NATIVE_KERNELS=avx2-packed (their low bits depend on the batch; see kernels-x86.c). */
void matmul_rows_avx2_packed(const matmul_args *a, int r0, int r1);
void matmul_rows_avx512(const matmul_args *a, int r0, int r1);
void matmul_rows_x16(const matmul_args *a, int r0, int r1);
/** The x16 layouts with AVX2 (kernels-x16-avx2.c): every result bit the same as matmul_rows_x16's. */
void matmul_rows_x16_avx2(const matmul_args *a, int r0, int r1);
/** The same with 256-bit dpbusd (kernels-x16-vnni256.c): AVX-VNNI (VEX), and its EVEX twin for AVX-512 CPUs (tests). */
void matmul_rows_x16_avxvnni(const matmul_args *a, int r0, int r1);
void matmul_rows_x16_vnni256_evex(const matmul_args *a, int r0, int r1);
/** Q4_0 / Q8_0 in the row layout (rows % 16 == 0) through the x16 kernel, bit for bit. */
void matmul_rows_x16_from_rows(const matmul_args *a, int r0, int r1);
/** repack_x16 (rows % 16 == 0) with AVX-512: the same bytes, for copies made while serving. */
void repack_x16_simd(const uint8_t *src, uint8_t *dst, int dtype, int rows, int cols);

extern float f16_table[65536];
void init_f16_table(void);

/* Element c of a float weight row (BF16, F16 or F32) as a float: the scalar tails of the float kernels. */
static inline float weight_scalar(const uint8_t *row, int dtype, int c) {
  if (dtype == DT_BF16) {
    uint32_t u = (uint32_t)((const uint16_t *)row)[c] << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
  }
  if (dtype == DT_F16) return f16_table[((const uint16_t *)row)[c]];
  return ((const float *)row)[c];
}
/** Bytes of `cols` columns of one row as stored; an x16 layout takes as many per row as its type's row layout. */
size_t row_bytes(int dtype, int cols);
/** Quantizes one row of `cols` floats (cols % 32 == 0) into cols / 32 blocks. */
void quantize_row_q8(const float *x, q8_block *y, int cols);
/** The same, bit for bit, with AVX-512 (kernels-x86.c); chosen by set_quantize_simd. */
void quantize_row_q8_avx512(const float *x, q8_block *y, int cols);
void set_quantize_simd(int on);
/** Quantizes one row of `cols` floats (cols % 256 == 0) into cols / 256 Q8_K blocks. */
void quantize_row_q8k(const float *x, q8k_block *y, int cols);
/** Q4_K / Q6_K rows times Q8_K activations (a->x is q8k_block*). */
void matmul_rows_kquant_generic(const matmul_args *a, int r0, int r1);
void matmul_rows_kquant_avx2(const matmul_args *a, int r0, int r1);
/** AVX-512 VNNI (kernels-kquant-avx512.c), bit for bit the AVX2 / generic results; other K-quant types go to the AVX2 kernel. */
void matmul_rows_kquant_avx512(const matmul_args *a, int r0, int r1);
/** Q4_K / Q5_K / Q6_K in the K-quant x16 layout (repack.c; rows % 16 == 0) times Q8_K
    activations, bit for bit the row kernels' results: AVX-512 VNNI (kernels-kquant-x16.c) and AVX2
    (kernels-kquant-x16-avx2.c). */
/* Int16-pair words per Q8_K super-block that the x16 K-quant kernels multiply (dpwssd / madd) with
   the weights' sub-block int16 pairs: [0, 4) Q4_K's bsum sums of sub-blocks (0, 2), (1, 3), (4, 6),
   (5, 7); [4, 12) Q6_K's bsums (4w, 4w+2), (4w+1, 4w+3) for w = 0..3. */
#define KX16_WORDS 12
void kquant_x16_words(const q8k_block *x, size_t blocks, int32_t *words);
void matmul_rows_kquant_x16_avx512(const matmul_args *a, int r0, int r1);
void matmul_rows_kquant_x16_avx2(const matmul_args *a, int r0, int r1);
/** The same with 256-bit dpbusd (kernels-kquant-x16-vnni256.c): VEX for AVX-VNNI CPUs, and its EVEX twin for testing it on AVX-512 ones. */
void matmul_rows_kquant_x16_avxvnni(const matmul_args *a, int r0, int r1);
void matmul_rows_kquant_x16_vnni256_evex(const matmul_args *a, int r0, int r1);
uint16_t f32_to_f16_bits(float f);

int cpu_has_avx2(void);
int cpu_has_avx512(void);
/** AVX-VNNI (256-bit dpbusd, VEX): Intel Alder Lake and later cores, AMD Zen 5. */
int cpu_has_avx_vnni(void);

#endif
