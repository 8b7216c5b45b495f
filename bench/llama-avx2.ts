// llama.cpp built without AVX-512, for measuring our AVX2 kernels against llama.cpp's on an
// AVX-512 machine (issue 18): node-llama-cpp compiles its bundled llama.cpp source with these
// CMake options into its localBuilds folder once (minutes), and engine-llama.ts uses that build
// when LLAMA_AVX2=1. Usage: node dist/bench/llama-avx2.js   (builds if missing, prints the build)
import { getLlama, LlamaLogLevel } from 'node-llama-cpp';

/** No AVX-512 of any kind, no AVX-VNNI: what a Zen 2/3 or a pre-Alder Lake Intel CPU runs. */
export const AVX2_CMAKE_OPTIONS: Record<string, string> = {
  GGML_NATIVE: 'OFF',
  GGML_CPU_ALL_VARIANTS: 'OFF',
  GGML_BACKEND_DL: 'OFF',
  GGML_AVX: 'ON',
  GGML_AVX2: 'ON',
  GGML_FMA: 'ON',
  GGML_F16C: 'ON',
  GGML_BMI2: 'ON',
  GGML_AVX_VNNI: 'OFF',
  GGML_AVX512: 'OFF',
  GGML_AVX512_VBMI: 'OFF',
  GGML_AVX512_VNNI: 'OFF',
  GGML_AVX512_BF16: 'OFF',
};

/** The AVX2-only llama.cpp; builds it from the bundled source when `build` allows. */
export function getAvx2Llama(threads: number, build: 'auto' | 'never') {
  return getLlama({
    gpu: false, logLevel: LlamaLogLevel.error, maxThreads: threads, build, cmakeOptions: AVX2_CMAKE_OPTIONS,
    usePrebuiltBinaries: false, existingPrebuiltBinaryMustMatchBuildOptions: true, progressLogs: 'stderr',
  });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const llama = await getAvx2Llama(2, 'auto');
  console.log(JSON.stringify({ buildType: llama.buildType, cpu: llama.cpuMathCores, systemInfo: llama.systemInfo }));
  await llama.dispose();
}
