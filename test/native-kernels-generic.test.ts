// The same kernel comparisons with the generic kernels forced (the addon picks them at load).
process.env.GEMMA3_NATIVE_KERNELS = 'generic';
await import('./native-kernels.test.js');
