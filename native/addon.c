// Node-API surface of the native backend: typed arrays in, no copies, no model logic.
// Exports: the kernels (matMul, attention, attentionFull, geluTanhMul, rmsNorm), weight layout and
// memory helpers (addon-memory.c), quantizeQ8 and kvIndex for tests, setThreads and info. Work
// planning of products is in matmul-plan.c, the KV cache layout in attention.h.
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "addon-memory.h"
#include "attention.h"
#include "kv-types.h"
#include "background-repack.h"
#include "kernels.h"
#include "kernels-q5.h"
#include "matmul-plan.h"
#include "ops.h"
#include "pool.h"
#include "quantize-kquant.h"
#include "scale-check.h"
#include "repack.h"

static const char *kernel_name = "generic";
static const char *kquant_kernel_name = "generic"; /* the K-quant kernel chosen with the others */

/* Checks one product's sizes against its arrays (so the kernels never read or write outside
   them) and fills in its part of the job; 0 with a JS exception pending otherwise. */
static int matmul_part_of(napi_env env, matmul_part *part, float *out, size_t out_bytes, const uint8_t *w, size_t w_bytes,
                          int dtype, int rows, int cols, const float *x, size_t x_bytes, int batch, int row_start, int row_end,
                          int out_stride) {
  const int x16 = dtype == DT_Q4_0_X16 || dtype == DT_Q8_0_X16;
  const int quant = is_quant(dtype);
  if ((x16 && !have_x16) || (is_kquant_x16(dtype) && !have_kquant_x16)) {
    napi_throw_error(env, "GEMMA3_NATIVE", "matMul: x16 layouts need AVX-512 VNNI or AVX2");
    return 0;
  }
  if (dtype < DT_F32 || dtype > DT_Q5_K_X16 || (is_kquant_x16(dtype) && rows % 16 != 0) || rows < 0 || cols <= 0 || batch <= 0 || row_start < 0 || row_end > rows ||
      row_start > row_end || out_stride < row_end - row_start || (quant && cols % 32 != 0) || (x16 && rows % 16 != 0) ||
      (is_kquant(dtype) && cols % QK_K != 0) ||
      w_bytes < row_bytes(dtype, cols) * (size_t)rows ||
      x_bytes < (size_t)batch * cols * 4 || out_bytes < ((size_t)(batch - 1) * out_stride + (row_end - row_start)) * 4) {
    napi_throw_range_error(env, "GEMMA3_NATIVE", "matMul: sizes do not match the arrays");
    return 0;
  }
  matmul_args m = {w, dtype, cols, x, batch, row_start, out, out_stride, NULL};
  matmul_plan_part(part, &m, rows, row_start, row_end);
  return 1;
}

static napi_value run_matmul(napi_env env, matmul_job *job, const float *x, int batch, int cols) {
  if (!matmul_run(job, x, batch, cols)) napi_throw_error(env, "GEMMA3_NATIVE", "out of memory");
  return NULL;
}

/* matMul(out, w, dtype, rows, cols, x, batch, rowStart, rowEnd, outStride) */
static napi_value mat_mul(napi_env env, napi_callback_info info) {
  GET_ARGS(10, "matMul");
  size_t out_bytes, w_bytes, x_bytes;
  float *out = (float *)typed_data(env, argv[0], &out_bytes, 0);
  const uint8_t *w = (const uint8_t *)typed_data(env, argv[1], &w_bytes, 0);
  int32_t dtype, rows, cols, batch, row_start, row_end, out_stride;
  const float *x = (const float *)typed_data(env, argv[5], &x_bytes, 0);
  if (!out || !w || !x) return NULL;
  if (!get_i32(env, argv[2], &dtype) || !get_i32(env, argv[3], &rows) || !get_i32(env, argv[4], &cols) ||
      !get_i32(env, argv[6], &batch) || !get_i32(env, argv[7], &row_start) || !get_i32(env, argv[8], &row_end) ||
      !get_i32(env, argv[9], &out_stride)) {
    napi_throw_type_error(env, "GEMMA3_NATIVE", "matMul: bad integer argument");
    return NULL;
  }
  matmul_job job;
  job.n = 1;
  if (!matmul_part_of(env, &job.parts[0], out, out_bytes, w, w_bytes, dtype, rows, cols, x, x_bytes, batch, row_start, row_end,
                      out_stride)) {
    return NULL;
  }
  return run_matmul(env, &job, x, batch, cols);
}

/* matMulShared(outs[], ws[], dtypes[], rows[], cols, x, batch): outs[i] = x · ws[i]ᵀ for every i
   (whole matrices, out row stride rows[i]), in one pass. */
static napi_value mat_mul_shared(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  uint32_t n = 0;
  int32_t cols, batch;
  size_t x_bytes;
  if (argc < 7 || napi_get_array_length(env, argv[0], &n) != napi_ok || n < 1 || n > MATMUL_MAX_PARTS ||
      !get_i32(env, argv[4], &cols) || !get_i32(env, argv[6], &batch)) {
    napi_throw_type_error(env, "GEMMA3_NATIVE", "matMulShared: expected 1 to 4 matrices and integer sizes");
    return NULL;
  }
  const float *x = (const float *)typed_data(env, argv[5], &x_bytes, 0);
  if (!x) return NULL;
  matmul_job job;
  job.n = (int)n;
  for (uint32_t i = 0; i < n; i++) {
    napi_value o, w, d, r;
    int32_t dtype, rows;
    size_t out_bytes, w_bytes;
    CHECK(napi_get_element(env, argv[0], i, &o));
    CHECK(napi_get_element(env, argv[1], i, &w));
    CHECK(napi_get_element(env, argv[2], i, &d));
    CHECK(napi_get_element(env, argv[3], i, &r));
    float *out = (float *)typed_data(env, o, &out_bytes, 0);
    const uint8_t *wd = (const uint8_t *)typed_data(env, w, &w_bytes, 0);
    if (!out || !wd) return NULL;
    if (!get_i32(env, d, &dtype) || !get_i32(env, r, &rows)) {
      napi_throw_type_error(env, "GEMMA3_NATIVE", "matMulShared: bad integer argument");
      return NULL;
    }
    if (i > 0 && activation_kind(dtype) != activation_kind(job.parts[0].m.dtype)) {
      napi_throw_type_error(env, "GEMMA3_NATIVE", "matMulShared: the matrices must all be K-quants, all Q5_1, all other quantized types or all float");
      return NULL;
    }
    if (!matmul_part_of(env, &job.parts[i], out, out_bytes, wd, w_bytes, dtype, rows, cols, x, x_bytes, batch, 0, rows, rows)) {
      return NULL;
    }
  }
  return run_matmul(env, &job, x, batch, cols);
}

/* Log2 of a cache block (a power of two from 1 to 2^16), or -1. */
static int block_shift_of(int block) {
  for (int s = 0; s <= 16; s++) if (block == 1 << s) return s;
  return -1;
}

/* A KV cache type code (kv-types.h), or -1. */
static int kv_type_of(napi_env env, napi_value v) {
  int32_t type;
  return get_i32(env, v, &type) && type >= KV_F32 && type <= KV_BF16 ? type : -1;
}

/* attention(out, q, kChunk, vChunk, cacheK, cacheV, slots, ring, block, start, T, numHeads, numKvHeads, headDim, scale, window,
             spanStart, spanEnd, kvType) */
static napi_value attention(napi_env env, napi_callback_info info) {
  GET_ARGS(19, "attention");
  attention_args a;
  size_t ob, qb, kb, vb, ckb, cvb, ssb, seb;
  a.out = (float *)typed_data(env, argv[0], &ob, 0);
  a.q = (const float *)typed_data(env, argv[1], &qb, 0);
  a.k_chunk = (const float *)typed_data(env, argv[2], &kb, 0);
  a.v_chunk = (const float *)typed_data(env, argv[3], &vb, 0);
  a.cache_k = typed_data(env, argv[4], &ckb, 0);
  a.cache_v = typed_data(env, argv[5], &cvb, 0);
  double scale;
  if (!a.out || !a.q || !a.k_chunk || !a.v_chunk || !a.cache_k || !a.cache_v) return NULL;
  int32_t block;
  if (!get_i32(env, argv[6], &a.slots) || !get_i32(env, argv[7], &a.ring) || !get_i32(env, argv[8], &block) ||
      !get_i32(env, argv[9], &a.start) || !get_i32(env, argv[10], &a.T) || !get_i32(env, argv[11], &a.num_heads) ||
      !get_i32(env, argv[12], &a.num_kv_heads) || !get_i32(env, argv[13], &a.head_dim) ||
      napi_get_value_double(env, argv[14], &scale) != napi_ok || !get_i32(env, argv[15], &a.window) ||
      (a.kv_type = kv_type_of(env, argv[18])) < 0) {
    napi_throw_type_error(env, "GEMMA3_NATIVE", "attention: bad numeric argument");
    return NULL;
  }
  a.scale = (float)scale;
  a.span_start = (const int32_t *)typed_data(env, argv[16], &ssb, 1);
  a.span_end = (const int32_t *)typed_data(env, argv[17], &seb, 1);
  a.block_shift = block_shift_of(block);
  const size_t q_dim = (size_t)a.num_heads * a.head_dim, kv_dim = (size_t)a.num_kv_heads * a.head_dim;
  /* Past positions read slots [0, ring) of a ring, [0, start) otherwise. */
  const size_t used = a.ring > 0 ? (size_t)a.ring : (size_t)a.start;
  /* Whole blocks are allocated: slots rounded up to the block. */
  const size_t slots = a.block_shift < 0 ? 0 : ((size_t)a.slots + block - 1) / block * block;
  if (a.block_shift < 0 || a.slots < 0 || a.ring < 0 || (size_t)a.slots < used || a.T <= 0 || a.start < 0 || a.num_kv_heads <= 0 || a.num_heads % a.num_kv_heads != 0 || a.num_heads / a.num_kv_heads > 16 || a.head_dim <= 0 ||
      ob < a.T * q_dim * 4 || qb < a.T * q_dim * 4 || kb < a.T * kv_dim * 4 || vb < a.T * kv_dim * 4 ||
      ckb < slots * kv_dim * kv_element_bytes(a.kv_type) || cvb < slots * kv_dim * kv_element_bytes(a.kv_type) || (a.span_start && (ssb < (size_t)a.T * 4 || seb < (size_t)a.T * 4))) {
    napi_throw_range_error(env, "GEMMA3_NATIVE", "attention: sizes do not match the arrays");
    return NULL;
  }
  if (a.span_start) {
    for (int t = 0; t < a.T; t++) {
      if (a.span_start[t] >= 0 && (a.span_start[t] > t || a.span_end[t] < t || a.span_end[t] >= a.T)) {
        napi_throw_range_error(env, "GEMMA3_NATIVE", "attention: image span outside the chunk");
        return NULL;
      }
    }
  }
  attention_run(&a);
  return NULL;
}

/* writeKv(cacheK, cacheV, kChunk, vChunk, slots, ring, block, start, T, numKvHeads, headDim, kvType): the
   chunk's keys and values ([T, numKvHeads * headDim]) into the blocked cache (attention.h). */
static napi_value write_kv(napi_env env, napi_callback_info info) {
  GET_ARGS(12, "writeKv");
  size_t ckb, cvb, kb, vb;
  void *cache_k = typed_data(env, argv[0], &ckb, 0);
  void *cache_v = typed_data(env, argv[1], &cvb, 0);
  const float *k = (const float *)typed_data(env, argv[2], &kb, 0);
  const float *v = (const float *)typed_data(env, argv[3], &vb, 0);
  if (!cache_k || !cache_v || !k || !v) return NULL;
  int32_t slots, ring, block, start, T, heads, hd;
  const int kv_type = kv_type_of(env, argv[11]);
  if (!get_i32(env, argv[4], &slots) || !get_i32(env, argv[5], &ring) || !get_i32(env, argv[6], &block) ||
      !get_i32(env, argv[7], &start) || !get_i32(env, argv[8], &T) || !get_i32(env, argv[9], &heads) ||
      !get_i32(env, argv[10], &hd) || kv_type < 0) {
    napi_throw_type_error(env, "GEMMA3_NATIVE", "writeKv: bad numeric argument");
    return NULL;
  }
  const size_t kv_dim = (size_t)heads * hd;
  const int shift = block_shift_of(block);
  const size_t allocated = shift < 0 || slots < 0 ? 0 : ((size_t)slots + block - 1) / block * block;
  /* Without a ring every position up to start + T needs its own slot. */
  if (shift < 0 || slots < 0 || ring < 0 || ring > slots || start < 0 || T < 0 || heads <= 0 || hd <= 0 ||
      (ring == 0 && (size_t)start + T > (size_t)slots) || ckb < allocated * kv_dim * kv_element_bytes(kv_type) ||
      cvb < allocated * kv_dim * kv_element_bytes(kv_type) ||
      kb < (size_t)T * kv_dim * 4 || vb < (size_t)T * kv_dim * 4) {
    napi_throw_range_error(env, "GEMMA3_NATIVE", "writeKv: sizes do not match the arrays");
    return NULL;
  }
  write_kv_run(cache_k, cache_v, kv_type, k, v, ring, shift, start, T, heads, hd);
  return NULL;
}

/* roundKv(x, n, kvType): x[i] = x[i] stored as kvType and read back, for i < n. */
static napi_value round_kv(napi_env env, napi_callback_info info) {
  GET_ARGS(3, "roundKv");
  size_t xb;
  float *x = (float *)typed_data(env, argv[0], &xb, 0);
  if (!x) return NULL;
  int32_t n;
  const int kv_type = kv_type_of(env, argv[2]);
  if (!get_i32(env, argv[1], &n) || kv_type < 0) {
    napi_throw_type_error(env, "GEMMA3_NATIVE", "roundKv: bad numeric argument");
    return NULL;
  }
  if (n < 0 || (size_t)n * 4 > xb) {
    napi_throw_range_error(env, "GEMMA3_NATIVE", "roundKv: sizes do not match the arrays");
    return NULL;
  }
  kv_round(x, (size_t)n, kv_type);
  return NULL;
}

/* kvIndex(slot, head, numKvHeads, headDim, block): kv_index (attention.h), for the test that
   checks kvIndex in src/backend/backend.ts against it. */
static napi_value kv_index_fn(napi_env env, napi_callback_info info) {
  GET_ARGS(5, "kvIndex");
  int32_t slot, head, heads, hd, block;
  if (!get_i32(env, argv[0], &slot) || !get_i32(env, argv[1], &head) || !get_i32(env, argv[2], &heads) ||
      !get_i32(env, argv[3], &hd) || !get_i32(env, argv[4], &block) || slot < 0 || head < 0 || heads <= 0 || hd <= 0 ||
      block_shift_of(block) < 0) {
    napi_throw_range_error(env, "GEMMA3_NATIVE", "kvIndex: bad argument");
    return NULL;
  }
  napi_value result;
  CHECK(napi_create_double(env, (double)kv_index((size_t)slot, head, heads, hd, block_shift_of(block)), &result));
  return result;
}

/* attentionScratchPeak(reset): the most scratch bytes one thread took in attention since the
   last reset, then (reset true) back to 0: for the test that it does not grow with the prompt. */
static napi_value attention_scratch_peak_fn(napi_env env, napi_callback_info info) {
  GET_ARGS(1, "attentionScratchPeak");
  bool reset = false;
  if (napi_get_value_bool(env, argv[0], &reset) != napi_ok) {
    napi_throw_type_error(env, "GEMMA3_NATIVE", "attentionScratchPeak: reset must be a boolean");
    return NULL;
  }
  napi_value result;
  CHECK(napi_create_double(env, (double)attention_scratch_peak(reset), &result));
  return result;
}

/* attentionFull(out, q, k, v, N, numHeads, headDim, scale): unmasked attention of N tokens. */
static napi_value attention_full(napi_env env, napi_callback_info info) {
  GET_ARGS(8, "attentionFull");
  full_attention_args a;
  size_t ob, qb, kb, vb;
  double scale;
  a.out = (float *)typed_data(env, argv[0], &ob, 0);
  a.q = (const float *)typed_data(env, argv[1], &qb, 0);
  a.k = (const float *)typed_data(env, argv[2], &kb, 0);
  a.v = (const float *)typed_data(env, argv[3], &vb, 0);
  if (!a.out || !a.q || !a.k || !a.v) return NULL;
  if (!get_i32(env, argv[4], &a.N) || !get_i32(env, argv[5], &a.num_heads) || !get_i32(env, argv[6], &a.head_dim) ||
      napi_get_value_double(env, argv[7], &scale) != napi_ok) {
    napi_throw_type_error(env, "GEMMA3_NATIVE", "attentionFull: bad numeric argument");
    return NULL;
  }
  a.scale = (float)scale;
  const size_t need = (size_t)a.N * a.num_heads * a.head_dim * 4;
  if (a.N <= 0 || a.num_heads <= 0 || a.head_dim <= 0 || ob < need || qb < need || kb < need || vb < need) {
    napi_throw_range_error(env, "GEMMA3_NATIVE", "attentionFull: sizes do not match the arrays");
    return NULL;
  }
  if (!attention_full_run(&a)) napi_throw_error(env, "GEMMA3_NATIVE", "out of memory");
  return NULL;
}

/* geluTanhMul(gate, up, n): gate[i] = gelu_tanh(gate[i]) * up[i] (the GeGLU of the decoder MLP);
   with up null, gate[i] = gelu_tanh(gate[i]). */
static napi_value gelu_tanh_mul(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  size_t gb, ub;
  float *gate = (float *)typed_data(env, argv[0], &gb, 0);
  if (!gate) return NULL;
  /* up may be null: plain GELU (the SigLIP MLP). */
  const float *up = (const float *)typed_data(env, argv[1], &ub, 1);
  int32_t n;
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (pending) return NULL;
  if (!get_i32(env, argv[2], &n) || n < 0 || (size_t)n * 4 > gb || (up && (size_t)n * 4 > ub)) {
    napi_throw_range_error(env, "GEMMA3_NATIVE", "geluTanhMul: sizes do not match the arrays");
    return NULL;
  }
  gelu_tanh_mul_run(gate, up, (size_t)n);
  return NULL;
}

/* rmsNorm(out, x, scale, eps, rows, n, accumulate): out = (or +=) rmsNorm(x) · scale, row by row. */
static napi_value rms_norm(napi_env env, napi_callback_info info) {
  GET_ARGS(7, "rmsNorm");
  size_t ob, xb, sb;
  float *out = (float *)typed_data(env, argv[0], &ob, 0);
  const float *x = (const float *)typed_data(env, argv[1], &xb, 0);
  const float *scale = (const float *)typed_data(env, argv[2], &sb, 0);
  if (!out || !x || !scale) return NULL;
  double eps;
  int32_t rows, n;
  bool accumulate;
  if (napi_get_value_double(env, argv[3], &eps) != napi_ok || !get_i32(env, argv[4], &rows) || !get_i32(env, argv[5], &n) ||
      napi_get_value_bool(env, argv[6], &accumulate) != napi_ok) {
    napi_throw_type_error(env, "GEMMA3_NATIVE", "rmsNorm: bad argument");
    return NULL;
  }
  const size_t need = (size_t)rows * n * 4;
  if (rows < 0 || n <= 0 || ob < need || xb < need || sb < (size_t)n * 4) {
    napi_throw_range_error(env, "GEMMA3_NATIVE", "rmsNorm: sizes do not match the arrays");
    return NULL;
  }
  rms_norm_run(out, x, scale, eps, rows, n, accumulate);
  return NULL;
}

/* Activations quantized by `quantize` (blocks of block_values floats, block_bytes each) for the
   tests that compare them with the TypeScript twins: x is rows of `cols` values. */
static napi_value quantized_activations(napi_env env, napi_callback_info info, const char *error, int block_values, size_t block_bytes,
                                        void (*quantize)(const float *x, void *y, int n)) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  size_t xb;
  const float *x = (const float *)typed_data(env, argv[0], &xb, 0);
  int32_t cols;
  if (!x || !get_i32(env, argv[1], &cols) || cols <= 0 || cols % block_values != 0 || xb % ((size_t)cols * 4) != 0) {
    napi_throw_range_error(env, "GEMMA3_NATIVE", error);
    return NULL;
  }
  /* Blocks never cross a row (cols is a multiple of the block), so the rows quantize as one run. */
  const size_t blocks = xb / 4 / block_values;
  void *data;
  napi_value ab, result;
  CHECK(napi_create_arraybuffer(env, blocks * block_bytes, &data, &ab));
  quantize(x, data, (int)(blocks * block_values));
  CHECK(napi_create_typedarray(env, napi_uint8_array, blocks * block_bytes, ab, 0, &result));
  return result;
}

static void quantize_q8_run(const float *x, void *y, int n) { quantize_row_q8(x, (q8_block *)y, n); }
static void quantize_q8k_run(const float *x, void *y, int n) { quantize_row_q8k(x, (q8k_block *)y, n); }

/* quantizeQ8(x: Float32Array, cols) → Uint8Array of 40-byte blocks (qs[32], f32 d, i32 sum), for tests. */
static napi_value quantize_q8(napi_env env, napi_callback_info info) {
  return quantized_activations(env, info, "quantizeQ8: cols must be a positive multiple of 32 dividing x", 32, sizeof(q8_block), quantize_q8_run);
}

/* quantizeQ8K(x: Float32Array, cols) → Uint8Array of 292-byte block_q8_K (f32 d, qs[256], i16 bsums[16]), for tests. */
static napi_value quantize_q8k(napi_env env, napi_callback_info info) {
  return quantized_activations(env, info, "quantizeQ8K: cols must be a positive multiple of 256 dividing x", QK_K, sizeof(q8k_block),
                               quantize_q8k_run);
}

/* quantizeKQuant(x: Float32Array, dtype 7 (Q4_K) | 8 (Q6_K)) → Uint8Array of the blocks ggml's
   quantize_row_q4_K_ref / quantize_row_q6_K_ref write (the converter's fast path). */
static napi_value quantize_kquant(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  size_t xb;
  const float *x = (const float *)typed_data(env, argv[0], &xb, 0);
  int32_t dtype;
  if (!x || !get_i32(env, argv[1], &dtype) || (dtype != DT_Q4_K && dtype != DT_Q6_K && dtype != DT_Q5_K) || xb % (QK_K * 4) != 0) {
    napi_throw_range_error(env, "GEMMA3_NATIVE", "quantizeKQuant: x must be whole 256-value super-blocks, dtype 7 (Q4_K), 8 (Q6_K) or 11 (Q5_K)");
    return NULL;
  }
  const size_t n = xb / 4, bytes = n / QK_K * (dtype == DT_Q4_K ? Q4_K_BLOCK_BYTES : dtype == DT_Q5_K ? Q5_K_BLOCK_BYTES : Q6_K_BLOCK_BYTES);
  void *data;
  napi_value ab, result;
  CHECK(napi_create_arraybuffer(env, bytes, &data, &ab));
  if (dtype == DT_Q4_K) quantize_q4_k_ref(x, (uint8_t *)data, n);
  else if (dtype == DT_Q5_K) quantize_q5_k_ref(x, (uint8_t *)data, n);
  else quantize_q6_k_ref(x, (uint8_t *)data, n);
  CHECK(napi_create_typedarray(env, napi_uint8_array, bytes, ab, 0, &result));
  return result;
}

/* firstNonFiniteScale(data: Uint8Array, dtype) → the first block with a NaN or infinite f16 scale,
   -1 when all are finite (the load-time check of formats/quant.ts's kQuantScaleProblem). */
static napi_value first_nonfinite_scale(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  size_t bytes;
  const uint8_t *data = (const uint8_t *)typed_data(env, argv[0], &bytes, 0);
  int32_t dtype;
  const int64_t first = data && get_i32(env, argv[1], &dtype) ? first_nonfinite_scale_block(data, bytes, dtype) : -2;
  if (first == -2) {
    napi_throw_range_error(env, "GEMMA3_NATIVE", "firstNonFiniteScale: data must be a Uint8Array and dtype 7 (Q4_K), 8 (Q6_K), 9 (Q5_0), 10 (Q5_1) or 11 (Q5_K)");
    return NULL;
  }
  napi_value result;
  CHECK(napi_create_double(env, (double)first, &result));
  return result;
}

static napi_value set_threads(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t n;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || !get_i32(env, argv[0], &n) || n < 1 || n > 64) {
    napi_throw_range_error(env, "GEMMA3_NATIVE", "setThreads: n must be an integer in [1, 64]");
    return NULL;
  }
  pool_set_threads(n);
  return NULL;
}

static napi_value info_fn(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value obj, v;
  CHECK(napi_create_object(env, &obj));
  CHECK(napi_create_string_utf8(env, kernel_name, NAPI_AUTO_LENGTH, &v));
  CHECK(napi_set_named_property(env, obj, "kernels", v));
  CHECK(napi_create_int32(env, pool_threads(), &v));
  CHECK(napi_set_named_property(env, obj, "threads", v));
  CHECK(napi_get_boolean(env, have_x16, &v));
  CHECK(napi_set_named_property(env, obj, "x16", v));
  CHECK(napi_get_boolean(env, have_x16_views, &v));
  CHECK(napi_set_named_property(env, obj, "x16Views", v));
  CHECK(napi_create_string_utf8(env, kquant_kernel_name, NAPI_AUTO_LENGTH, &v));
  CHECK(napi_set_named_property(env, obj, "kquantKernels", v));
  CHECK(napi_get_boolean(env, have_kquant_x16, &v));
  CHECK(napi_set_named_property(env, obj, "kquantX16", v));
  return obj;
}

/* Node unloads the addon when the last thread (main or worker) that loaded it ends; the pool's
   threads must be gone by then, or they would run unmapped code. */
static atomic_int live_envs;

static void env_cleanup(void *arg) {
  (void)arg;
  /* Runs on the ending thread: its own activation scratch goes with it. */
  matmul_plan_thread_cleanup();
  if (atomic_fetch_sub(&live_envs, 1) == 1) {
    repack_shutdown();
    pool_shutdown();
  }
}

static napi_value init(napi_env env, napi_value exports) {
  atomic_fetch_add(&live_envs, 1);
  napi_add_env_cleanup_hook(env, env_cleanup, NULL);
  init_f16_table();
  const char *force = getenv("GEMMA3_NATIVE_KERNELS");
  int level = 0; /* 0 generic C, 1 AVX2 + FMA, 2 AVX-512: every kernel family follows it */
  matmul_rows_fn kquant_x16_vnni = NULL; /* the K-quant x16 products with 256-bit dpbusd, where the x16 Q4_0 / Q8_0 ones use it */
  if (force && strcmp(force, "generic") == 0) {
    matmul_plan_set_kernels(matmul_rows_generic, NULL, NULL);
    kernel_name = "generic";
  } else if (cpu_has_avx512() && !(force && (strcmp(force, "avx2") == 0 || strcmp(force, "avx2-packed") == 0 || strcmp(force, "avx2-vnni") == 0))) {
    if (force && strcmp(force, "norepack") == 0) matmul_plan_set_kernels(matmul_rows_avx512, NULL, NULL);
    else matmul_plan_set_kernels(matmul_rows_avx512, matmul_rows_x16, matmul_rows_x16_from_rows);
    kernel_name = "avx512";
    level = 2;
  } else if (cpu_has_avx2()) {
    kernel_name = "avx2";
    if (force && strcmp(force, "norepack") == 0) matmul_plan_set_kernels(matmul_rows_avx2, NULL, NULL);
    else if (force && strcmp(force, "avx2-packed") == 0) {
      matmul_plan_set_kernels(matmul_rows_avx2_packed, matmul_rows_x16_avx2, NULL);
      kernel_name = "avx2-packed";
    } else {
      /* The x16 Q4_0 / Q8_0 products with 256-bit dpbusd: AVX-VNNI where the CPU has it (unless
         plain AVX2 is forced); forced as avx2-vnni on an AVX-512 CPU, its EVEX twin. */
      const int forced_vnni = force && strcmp(force, "avx2-vnni") == 0;
      const int vex = cpu_has_avx_vnni() && (!force || forced_vnni), evex = !vex && forced_vnni && cpu_has_avx512();
      matmul_plan_set_kernels(matmul_rows_avx2, vex ? matmul_rows_x16_avxvnni : evex ? matmul_rows_x16_vnni256_evex : matmul_rows_x16_avx2, NULL);
      if (vex || evex) {
        kernel_name = "avx2-vnni";
        kquant_x16_vnni = vex ? matmul_rows_kquant_x16_avxvnni : matmul_rows_kquant_x16_vnni256_evex;
      }
    }
    level = 1;
  }
  /* The K-quants: AVX-512 VNNI (Q4_K, Q6_K), AVX2 and generic kernels, following the same level (the
     K-quant x16 layout on AVX-512 VNNI, AVX-VNNI and AVX2);
     Q5_0/Q5_1/Q5_K have generic and AVX2 kernels (AVX-512 CPUs use the AVX2 one). */
  matmul_plan_set_kquant_kernel(level == 2 ? matmul_rows_kquant_avx512 : level == 1 ? matmul_rows_kquant_avx2 : matmul_rows_kquant_generic);
  if (!(force && strcmp(force, "norepack") == 0)) matmul_plan_set_kquant_x16_kernel(level == 2 ? matmul_rows_kquant_x16_avx512 : kquant_x16_vnni ? kquant_x16_vnni : level == 1 ? matmul_rows_kquant_x16_avx2 : NULL);
  kquant_kernel_name = level == 2 ? "avx512" : kquant_x16_vnni ? "avx2-vnni" : level == 1 ? "avx2" : "generic";
  matmul_plan_set_q5_kernel(level >= 1 ? matmul_rows_q5_avx2 : matmul_rows_q5_generic);
  ops_init(level >= 1);
  set_quantize_simd(level == 2);
  attention_init(level);
  napi_property_descriptor props[] = {
    {"matMul", NULL, mat_mul, NULL, NULL, NULL, napi_default, NULL},
    {"matMulShared", NULL, mat_mul_shared, NULL, NULL, NULL, napi_default, NULL},
    {"attention", NULL, attention, NULL, NULL, NULL, napi_default, NULL},
    {"attentionFull", NULL, attention_full, NULL, NULL, NULL, napi_default, NULL},
    {"writeKv", NULL, write_kv, NULL, NULL, NULL, napi_default, NULL},
    {"roundKv", NULL, round_kv, NULL, NULL, NULL, napi_default, NULL},
    {"kvIndex", NULL, kv_index_fn, NULL, NULL, NULL, napi_default, NULL},
    {"attentionScratchPeak", NULL, attention_scratch_peak_fn, NULL, NULL, NULL, napi_default, NULL},
    {"geluTanhMul", NULL, gelu_tanh_mul, NULL, NULL, NULL, napi_default, NULL},
    {"rmsNorm", NULL, rms_norm, NULL, NULL, NULL, napi_default, NULL},
    {"quantizeQ8", NULL, quantize_q8, NULL, NULL, NULL, napi_default, NULL},
    {"quantizeQ8K", NULL, quantize_q8k, NULL, NULL, NULL, napi_default, NULL},
    {"quantizeKQuant", NULL, quantize_kquant, NULL, NULL, NULL, napi_default, NULL},
    {"firstNonFiniteScale", NULL, first_nonfinite_scale, NULL, NULL, NULL, napi_default, NULL},
    {"repack", NULL, repack, NULL, NULL, NULL, napi_default, NULL},
    {"allocHuge", NULL, alloc_huge, NULL, NULL, NULL, napi_default, NULL},
    {"openMapping", NULL, open_mapping, NULL, NULL, NULL, napi_default, NULL},
    {"repackLater", NULL, repack_later, NULL, NULL, NULL, napi_default, NULL},
    {"repackResult", NULL, repack_result, NULL, NULL, NULL, napi_default, NULL},
    {"holdCopies", NULL, hold_copies, NULL, NULL, NULL, napi_default, NULL},
    {"releaseView", NULL, release_view, NULL, NULL, NULL, napi_default, NULL},
    {"releaseRange", NULL, release_range, NULL, NULL, NULL, napi_default, NULL},
    {"closeMapping", NULL, close_mapping, NULL, NULL, NULL, napi_default, NULL},
    {"mapRange", NULL, map_range, NULL, NULL, NULL, napi_default, NULL},
    {"setThreads", NULL, set_threads, NULL, NULL, NULL, napi_default, NULL},
    {"info", NULL, info_fn, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
