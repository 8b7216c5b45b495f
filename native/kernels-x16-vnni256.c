// Q4_0 / Q8_0 in the x16 layouts with 256-bit dpbusd, for CPUs with AVX-VNNI but no AVX-512
// (Intel Alder Lake and later cores): one dpbusd where the AVX2 kernel needs maddubs, madd and
// an add (Q8_0 also abs and sign). The same body twice:
// - matmul_rows_x16_avxvnni: the VEX encoding (AVX-VNNI), what those CPUs run;
// - matmul_rows_x16_vnni256_evex: the EVEX encoding of the same instruction (AVX-512 VNNI +
//   VL), which only AVX-512 CPUs run. It exists so that the body can be tested bit for bit, and
//   measured, on a machine without AVX-VNNI (GEMMA3_NATIVE_KERNELS=avx2-vnni there).
#include "kernels.h"
#include "repack.h"
#include "x16-driver-256.h"

#if defined(__x86_64__)
#include <immintrin.h>

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c,avxvnni")
#define X16_VNNI256_NAME matmul_rows_x16_avxvnni
#define X16_VNNI256_DPBUSD _mm256_dpbusd_avx_epi32
#include "kernels-x16-vnni256.h"
#undef X16_VNNI256_NAME
#undef X16_VNNI256_DPBUSD
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c,avx512f,avx512vl,avx512vnni")
#define X16_VNNI256_NAME matmul_rows_x16_vnni256_evex
#define X16_VNNI256_DPBUSD _mm256_dpbusd_epi32
#include "kernels-x16-vnni256.h"
#undef X16_VNNI256_NAME
#undef X16_VNNI256_DPBUSD
#pragma GCC pop_options

#else
void matmul_rows_x16_avxvnni(const matmul_args *a, int r0, int r1) { (void)a; (void)r0; (void)r1; }
void matmul_rows_x16_vnni256_evex(const matmul_args *a, int r0, int r1) { (void)a; (void)r0; (void)r1; }
#endif
