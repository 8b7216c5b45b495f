{
  "targets": [
    {
      "target_name": "gemma3_native",
      "sources": ["native/addon.c", "native/addon-memory.c", "native/kernels.c", "native/kernels-x86.c", "native/attention.c", "native/attention-blocks.c", "native/attention-full.c", "native/kv-types.c", "native/pool.c", "native/repack.c", "native/kernels-x16.c", "native/kernels-x16-avx2.c", "native/kernels-x16-vnni256.c", "native/kernels-packed-avx2.c", "native/ops.c", "native/background-repack.c", "native/matmul-plan.c", "native/kernels-kquant.c", "native/kernels-kquant-avx2.c", "native/kernels-kquant-avx512.c", "native/kernels-kquant-x16.c", "native/kernels-kquant-x16-avx2.c", "native/kernels-kquant-x16-vnni256.c", "native/quantize-kquant.c", "native/scale-check.c", "native/kernels-q5.c"],
      "cflags": ["-O3", "-std=gnu11", "-fno-math-errno", "-ffp-contract=off", "-Wall", "-Wno-unused-function"],
      "cflags!": ["-O2"],
      "libraries": ["-lpthread", "-lm"],
      "xcode_settings": { "OTHER_CFLAGS": ["-O3", "-std=gnu11"] }
    }
  ]
}
