// The kernel comparisons and the float prompt products with the opt-in packed AVX2 float prompts
// forced (GEMMA3_NATIVE_KERNELS=avx2-packed; the addon picks them at load).
process.env.GEMMA3_NATIVE_KERNELS = 'avx2-packed';
await import('./native-kernels.test.js');
await import('./native-float-prompt.test.js');
