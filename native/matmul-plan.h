// How a matrix product is cut into work for the pool: which kernel runs it, chunks of rows sized
// for the threads, the activations quantized once for every part, and work stealing between the
// threads (pool_shares). No Node-API here: addon.c checks the arguments and calls these.
#ifndef GEMMA3_MATMUL_PLAN_H
#define GEMMA3_MATMUL_PLAN_H

#include "kernels.h"
#include "pool.h"

/* Products sharing one activation matrix (q, k and v; gate and up) run as one job. */
#define MATMUL_MAX_PARTS 4

typedef struct {
  matmul_args m;
  matmul_rows_fn kernel;
  int r0, r1;
  int unit;   /* rows per chunk, a multiple of the kernel's row group */
  int chunks;
} matmul_part;

typedef struct {
  matmul_part parts[MATMUL_MAX_PARTS];
  int n;
  pool_shares chunks; /* the parts' chunks, numbered across the parts in order */
} matmul_job;

/* The kernels the CPU got (chosen once, when the addon loads). have_x16: the x16 layouts have a
   kernel (x16_kernel: AVX-512 VNNI or AVX2); have_x16_views: matrices in the row layout (views
   of a file mapping) can be multiplied by the x16 kernel a group at a time (AVX-512 VNNI only). */
extern int have_x16, have_x16_views;
void matmul_plan_set_kernels(matmul_rows_fn row_kernel, matmul_rows_fn x16_kernel, matmul_rows_fn x16_from_rows_kernel);

int is_quant(int dtype);
/** Q4_K / Q5_K / Q6_K (either layout): activations in Q8_K super-blocks, kernels-kquant.c. */
int is_kquant(int dtype);
/** What a product's activations become: 0 float, 1 Q8 blocks, 2 Q8_K super-blocks, 3 Q8_1 blocks (Q5_1; parts of one job must agree). */
int activation_kind(int dtype);
/** The K-quant kernel (generic or AVX2), chosen with the others when the addon loads. */
void matmul_plan_set_kquant_kernel(matmul_rows_fn kernel);
/** The kernel of Q4_K / Q6_K in the x16 layout (AVX-512 VNNI or AVX2), or NULL: they are not repacked. */
void matmul_plan_set_kquant_x16_kernel(matmul_rows_fn kernel);
extern int have_kquant_x16;
/** Q4_K / Q6_K in the K-quant x16 layout (repack.c). */
int is_kquant_x16(int dtype);
/** The Q5_0 / Q5_1 / Q5_K kernel (kernels-q5.c, generic or AVX2). */
void matmul_plan_set_q5_kernel(matmul_rows_fn kernel);

/** Fills in one part: rows [row_start, row_end) of the product m with a matrix of `rows` rows (arguments already checked). */
void matmul_plan_part(matmul_part *part, const matmul_args *m, int rows, int row_start, int row_end);

/** Runs the job's parts, all reading x ([batch, cols]); 0 when out of memory. */
int matmul_run(matmul_job *job, const float *x, int batch, int cols);

/** Frees the calling thread's activation scratch (when its Node environment ends). */
void matmul_plan_thread_cleanup(void);

#endif
