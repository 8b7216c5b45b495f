// Helpers shared by the addon's Node-API files: argument checks and typed-array access.
#ifndef GEMMA3_NAPI_UTIL_H
#define GEMMA3_NAPI_UTIL_H
#define NAPI_VERSION 8
#include <node_api.h>
#include <stddef.h>
#include <stdint.h>

#define CHECK(call)                                                   \
  do {                                                                \
    if ((call) != napi_ok) {                                          \
      napi_throw_error(env, "GEMMA3_NATIVE", "native call failed: " #call); \
      return NULL;                                                    \
    }                                                                 \
  } while (0)

/* Declares argc/argv holding the call's first N arguments; fewer is a TypeError. */
#define GET_ARGS(N, NAME)                                                         \
  size_t argc = (N);                                                              \
  napi_value argv[N];                                                             \
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));                    \
  if (argc < (N)) {                                                               \
    napi_throw_type_error(env, "GEMMA3_NATIVE", NAME " takes " #N " arguments"); \
    return NULL;                                                                  \
  }

static inline int get_i32(napi_env env, napi_value v, int32_t *out) { return napi_get_value_int32(env, v, out) == napi_ok; }

/* A pointer that stands for an empty array: N-API may report NULL data for zero-length views. */
static char empty_array[1];

/* Pointer and byte length of any typed array (or NULL for null/undefined when optional). NULL
   otherwise means a JS exception is pending. */
static inline void *typed_data(napi_env env, napi_value v, size_t *bytes, int optional) {
  napi_valuetype t;
  *bytes = 0;
  if (napi_typeof(env, v, &t) != napi_ok) return NULL;
  if (optional && (t == napi_null || t == napi_undefined)) {
    *bytes = 0;
    return NULL;
  }
  napi_typedarray_type type;
  size_t length, offset;
  void *data;
  napi_value buffer;
  if (napi_get_typedarray_info(env, v, &type, &length, &data, &buffer, &offset) != napi_ok) {
    napi_throw_type_error(env, "GEMMA3_NATIVE", "expected a typed array");
    return NULL;
  }
  size_t elem = type == napi_float32_array || type == napi_int32_array || type == napi_uint32_array ? 4
              : type == napi_uint16_array || type == napi_int16_array ? 2 : type == napi_float64_array ? 8 : 1;
  *bytes = length * elem;
  return data ? data : empty_array;
}

#endif
