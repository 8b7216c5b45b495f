// Q4_K, Q5_K and Q6_K in the K-quant x16 layout with 256-bit dpbusd, for CPUs with AVX-VNNI but
// no AVX-512 (Intel Alder Lake and later cores).
// The same body twice, as kernels-x16-vnni256.c does for Q4_0 / Q8_0:
// - matmul_rows_kquant_x16_avxvnni: the VEX encoding (AVX-VNNI), what those CPUs run;
// - matmul_rows_kquant_x16_vnni256_evex: the EVEX encoding of the same instructions (AVX-512
//   VNNI + VL), run only on AVX-512 CPUs, so that the body is tested bit for bit and measured
//   on a machine without AVX-VNNI (GEMMA3_NATIVE_KERNELS=avx2-vnni there).
#include "kernels.h"
#include "repack.h"

#if defined(__x86_64__)
#include <immintrin.h>

/* The shared helpers in the AVX2 target: both encodings below inline them. */
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
#include "kquant-x16-256.h"
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c,avxvnni")
#define KXV_NAME matmul_rows_kquant_x16_avxvnni
#define KXV_DPBUSD _mm256_dpbusd_avx_epi32
#include "kernels-kquant-x16-vnni256.h"
#undef KXV_NAME
#undef KXV_DPBUSD
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c,avx512f,avx512vl,avx512vnni")
#define KXV_NAME matmul_rows_kquant_x16_vnni256_evex
#define KXV_DPBUSD _mm256_dpbusd_epi32
#include "kernels-kquant-x16-vnni256.h"
#undef KXV_NAME
#undef KXV_DPBUSD
#pragma GCC pop_options

#else
void matmul_rows_kquant_x16_avxvnni(const matmul_args *a, int r0, int r1) { (void)a; (void)r0; (void)r1; }
void matmul_rows_kquant_x16_vnni256_evex(const matmul_args *a, int r0, int r1) { (void)a; (void)r0; (void)r1; }
#endif
