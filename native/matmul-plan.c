// Work planning for matrix products (see matmul-plan.h).
#include "matmul-plan.h"

#include <stdlib.h>

#include "kernels-q5.h"

static matmul_rows_fn best_kernel = matmul_rows_generic, x16_kernel = NULL, x16_from_rows_kernel = NULL;
static matmul_rows_fn kquant_kernel = matmul_rows_kquant_generic;
int have_x16 = 0, have_x16_views = 0;

void matmul_plan_set_kquant_kernel(matmul_rows_fn kernel) { kquant_kernel = kernel; }

/* Q5_0 / Q5_1 / Q5_K (kernels-q5.c): their own kernel, whatever the other families run. */
static matmul_rows_fn q5_kernel = matmul_rows_q5_generic;
void matmul_plan_set_q5_kernel(matmul_rows_fn kernel) { q5_kernel = kernel; }
static int is_q5(int dtype) { return dtype == DT_Q5_0 || dtype == DT_Q5_1 || dtype == DT_Q5_K; }

static matmul_rows_fn kquant_x16_kernel = NULL;
int have_kquant_x16 = 0;
void matmul_plan_set_kquant_x16_kernel(matmul_rows_fn kernel) {
  kquant_x16_kernel = kernel;
  have_kquant_x16 = kernel != NULL;
}
int is_kquant_x16(int dtype) { return dtype == DT_Q4_K_X16 || dtype == DT_Q5_K_X16 || dtype == DT_Q6_K_X16; }

int is_kquant(int dtype) { return dtype == DT_Q4_K || dtype == DT_Q6_K || dtype == DT_Q5_K || is_kquant_x16(dtype); }

int activation_kind(int dtype) { return is_kquant(dtype) ? 2 : dtype == DT_Q5_1 ? 3 : is_quant(dtype) ? 1 : 0; }

void matmul_plan_set_kernels(matmul_rows_fn row_kernel, matmul_rows_fn x16, matmul_rows_fn x16_from_rows) {
  best_kernel = row_kernel;
  x16_kernel = x16;
  x16_from_rows_kernel = x16_from_rows;
  have_x16 = x16 != NULL;
  have_x16_views = x16_from_rows != NULL;
}

int is_quant(int dtype) {
  return dtype == DT_Q8_0 || dtype == DT_Q4_0 || dtype == DT_Q4_0_X16 || dtype == DT_Q8_0_X16 || dtype == DT_Q5_0 || dtype == DT_Q5_1;
}

static void run_chunk(const matmul_job *j, int c) {
  int i = 0;
  while (c >= j->parts[i].chunks) c -= j->parts[i++].chunks;
  const matmul_part *part = &j->parts[i];
  const int a = part->r0 + c * part->unit;
  const int b = a + part->unit < part->r1 ? a + part->unit : part->r1;
  part->kernel(&part->m, a, b);
}

/* Each thread walks its own contiguous share of the chunks in order, so the weights it reads
   are one stream and each tile's prefetches run on into its next chunk; then it takes chunks
   from the back of the others' shares (pool_shares): on a shared machine one core is often
   slowed by a neighbour, and the other then does more of the work. */
static void matmul_job_fn(void *p, int thread) {
  matmul_job *j = (matmul_job *)p;
  for (int cursor = 0, c; (c = pool_shares_next(&j->chunks, thread, &cursor)) >= 0;) run_chunk(j, c);
}

typedef struct {
  const float *x;
  q8_block *y;
  q8k_block *yk; /* K-quant products: Q8_K super-blocks instead (blocks counts them) */
  size_t blocks;
  pool_shares items;
} quantize_job;

/* Blocks per item of a pooled quantization (a prompt's activations); Q8_K: the same 8192 values. */
#define QUANTIZE_ITEM_BLOCKS 256
#define QUANTIZE_ITEM_SUPERBLOCKS 32

/* Rows are whole blocks back to back, so the batch is one long row, quantized an item at a time. */
static void quantize_job_fn(void *p, int thread) {
  quantize_job *j = (quantize_job *)p;
  for (int cursor = 0, item; (item = pool_shares_next(&j->items, thread, &cursor)) >= 0;) {
    if (j->yk) {
      const size_t b0 = (size_t)item * QUANTIZE_ITEM_SUPERBLOCKS;
      const size_t b1 = b0 + QUANTIZE_ITEM_SUPERBLOCKS < j->blocks ? b0 + QUANTIZE_ITEM_SUPERBLOCKS : j->blocks;
      quantize_row_q8k(j->x + b0 * QK_K, j->yk + b0, (int)((b1 - b0) * QK_K));
      continue;
    }
    const size_t b0 = (size_t)item * QUANTIZE_ITEM_BLOCKS;
    const size_t b1 = b0 + QUANTIZE_ITEM_BLOCKS < j->blocks ? b0 + QUANTIZE_ITEM_BLOCKS : j->blocks;
    quantize_row_q8(j->x + b0 * 32, j->y + b0, (int)((b1 - b0) * 32));
  }
}

/* Per calling thread: models in different worker threads quantize their activations at the
   same time (the pool then runs their products one after the other). One buffer per kind of
   activations (Q8_0, Q8_K, Q8_1 blocks; the x16 K-quant kernels' bsum words), grown as needed. */
enum { SCRATCH_Q8, SCRATCH_Q8K, SCRATCH_Q8_1, SCRATCH_KX_WORDS, SCRATCH_KINDS };
static _Thread_local struct {
  void *p;
  size_t bytes;
} scratch[SCRATCH_KINDS];

/* The calling thread's buffer of `kind` with room for `bytes`, or NULL when out of memory. */
static void *scratch_reserve(int kind, size_t bytes) {
  if (bytes > scratch[kind].bytes) {
    free(scratch[kind].p);
    scratch[kind].p = malloc(bytes);
    scratch[kind].bytes = scratch[kind].p ? bytes : 0;
  }
  return scratch[kind].p;
}

void matmul_plan_thread_cleanup(void) {
  for (int k = 0; k < SCRATCH_KINDS; k++) {
    free(scratch[k].p);
    scratch[k].p = NULL;
    scratch[k].bytes = 0;
  }
}

void matmul_plan_part(matmul_part *part, const matmul_args *m, int rows, int row_start, int row_end) {
  const int dtype = m->dtype;
  const int x16 = dtype == DT_Q4_0_X16 || dtype == DT_Q8_0_X16;
  /* Q4_0 / Q8_0 still in the row layout (served from a file mapping) go through the x16 kernel
     too, a group of sixteen rows rearranged at a time: the same results bit for bit. */
  const int from_rows = have_x16_views && (dtype == DT_Q8_0 || dtype == DT_Q4_0) && rows % 16 == 0;
  /* About eight chunks per thread, each a whole number of the kernel's row tiles (8 rows at most),
     and at most 4 MiB of weights: the thread that takes the last chunk of a big matrix (the
     262144-row output head) otherwise leaves the other idle for milliseconds. */
  /* Float prompts on AVX2 may go through panels of 16 rows (kernels-packed-avx2.c, opt-in): a chunk of 72
     rows (1B's 1152 rows over 2 threads) would end in a half-empty panel that costs a full one. */
  const int float_prompt = activation_kind(dtype) == 0 && m->batch > 1;
  const int group = x16 || from_rows || float_prompt || is_kquant_x16(dtype) ? 16 : 8;
  const size_t chunk_cap = ((size_t)4 << 20) / row_bytes(dtype, m->cols);
  int target = (row_end - row_start + 8 * pool_threads() - 1) / (8 * pool_threads());
  if ((size_t)target > chunk_cap) target = chunk_cap < 1 ? 1 : (int)chunk_cap;
  const int unit = target < 1 ? group : (target + group - 1) / group * group;
  part->m = *m;
  part->kernel = is_q5(dtype) ? q5_kernel : is_kquant_x16(dtype) ? kquant_x16_kernel : is_kquant(dtype) ? kquant_kernel : x16 ? x16_kernel : from_rows ? x16_from_rows_kernel : best_kernel;
  part->r0 = row_start;
  part->r1 = row_end;
  part->unit = unit;
  part->chunks = (row_end - row_start + unit - 1) / unit;
}

/* Quantized weights: x is quantized to Q8 blocks once for every part (all parts agree on that). */
int matmul_run(matmul_job *job, const float *x, int batch, int cols) {
  if (is_kquant(job->parts[0].m.dtype)) {
    /* K-quants: x in Q8_K super-blocks, once for every part (activation_kind agrees across them). */
    const size_t need = (size_t)batch * (cols / QK_K);
    q8k_block *q8k_scratch = (q8k_block *)scratch_reserve(SCRATCH_Q8K, need * sizeof(q8k_block));
    if (!q8k_scratch) return 0;
    if (need < 128) {
      quantize_row_q8k(x, q8k_scratch, (int)(need * QK_K)); /* a decode step: not worth waking the pool */
    } else {
      quantize_job qj; /* a prompt's activations, shared out like the Q8_0 ones */
      qj.x = x;
      qj.y = NULL;
      qj.yk = q8k_scratch;
      qj.blocks = need;
      pool_shares_init(&qj.items, (int)((need + QUANTIZE_ITEM_SUPERBLOCKS - 1) / QUANTIZE_ITEM_SUPERBLOCKS));
      pool_run(quantize_job_fn, &qj);
    }
    for (int i = 0; i < job->n; i++) job->parts[i].m.x = q8k_scratch;
    int x16_parts = 0;
    for (int i = 0; i < job->n; i++) x16_parts += is_kquant_x16(job->parts[i].m.dtype);
    if (x16_parts) {
      /* The bsum words of the x16 kernels, once for every part. */
      int32_t *kx_words_scratch = (int32_t *)scratch_reserve(SCRATCH_KX_WORDS, need * KX16_WORDS * sizeof(int32_t));
      if (!kx_words_scratch) return 0;
      kquant_x16_words(q8k_scratch, need, kx_words_scratch);
      for (int i = 0; i < job->n; i++) job->parts[i].m.kx_words = kx_words_scratch;
    }
  } else if (activation_kind(job->parts[0].m.dtype) == 3) {
    /* Q5_1: x in Q8_1 blocks (with s = d·Σqs), once for every part. */
    const size_t need = (size_t)batch * (cols / 32);
    q8_1_block *q8_1_scratch = (q8_1_block *)scratch_reserve(SCRATCH_Q8_1, need * sizeof(q8_1_block));
    if (!q8_1_scratch) return 0;
    quantize_row_q8_1(x, q8_1_scratch, (int)(need * 32));
    for (int i = 0; i < job->n; i++) job->parts[i].m.x = q8_1_scratch;
  } else if (is_quant(job->parts[0].m.dtype)) {
    const size_t need = (size_t)batch * (cols / 32);
    q8_block *q8_scratch = (q8_block *)scratch_reserve(SCRATCH_Q8, need * sizeof(q8_block));
    if (!q8_scratch) return 0;
    if (need < 1024) {
      quantize_row_q8(x, q8_scratch, (int)(need * 32)); /* a decode step: not worth waking the pool */
    } else {
      quantize_job qj; /* not zeroed: its shares are big, and set here */
      qj.x = x;
      qj.y = q8_scratch;
      qj.yk = NULL;
      qj.blocks = need;
      pool_shares_init(&qj.items, (int)((need + QUANTIZE_ITEM_BLOCKS - 1) / QUANTIZE_ITEM_BLOCKS));
      pool_run(quantize_job_fn, &qj);
    }
    for (int i = 0; i < job->n; i++) job->parts[i].m.x = q8_scratch;
  }
  int chunks = 0;
  for (int i = 0; i < job->n; i++) chunks += job->parts[i].chunks;
  pool_shares_init(&job->chunks, chunks);
  pool_run(matmul_job_fn, job);
  return 1;
}
