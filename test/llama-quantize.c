// llama-quantize's core, for the byte-for-byte converter test (test/llama-quantize.test.ts):
// llama_model_quantize from node-llama-cpp's prebuilt libllama, with llama-quantize's defaults
// (no importance matrix). Usage: llama-quantize IN.gguf OUT.gguf FTYPE
#include <stdio.h>
#include <stdlib.h>

#include "llama.h"

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s IN.gguf OUT.gguf FTYPE\n", argv[0]);
    return 2;
  }
  llama_backend_init();
  llama_model_quantize_params params = llama_model_quantize_default_params();
  params.ftype = (enum llama_ftype)atoi(argv[3]);
  params.nthread = 1;
  const uint32_t status = llama_model_quantize(argv[1], argv[2], &params);
  llama_backend_free();
  return status == 0 ? 0 : 1;
}
