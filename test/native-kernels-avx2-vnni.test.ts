// The kernel comparisons with GEMMA3_NATIVE_KERNELS=avx2-vnni: the AVX2 kernels, the x16 Q4_0 /
// Q8_0 and K-quant products on 256-bit dpbusd (AVX-VNNI; on an AVX-512 CPU without it, the same
// bodies in their EVEX encoding). On a CPU with neither the addon picks plain AVX2, and the dispatch test says so.
process.env.GEMMA3_NATIVE_KERNELS = 'avx2-vnni';
await import('./native-kernels.test.js');
await import('./native-x16.test.js');
await import('./kquant-x16.test.js');
