// The same kernel comparisons (the x16 ones, the Q5 kernels, the float prompt products and the long-prompt attention tests) with the generic kernels forced
// (the addon picks them at load).
process.env.GEMMA3_NATIVE_KERNELS = 'generic';
await import('./native-kernels.test.js');
await import('./q5-kernels.test.js');
await import('./native-x16.test.js');
await import('./kquant-x16.test.js');
await import('./native-float-prompt.test.js');
await import('./long-prompt.test.js');
