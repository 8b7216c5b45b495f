// The memory helpers' Node-API entry points (addon-memory.c), registered by addon.c.
#ifndef GEMMA3_ADDON_MEMORY_H
#define GEMMA3_ADDON_MEMORY_H
#include "napi-util.h"

/** Whether the x16 layouts are in use (AVX-512 VNNI or AVX2, not forced off), and whether views in
    the row layout are served through them (AVX-512 VNNI): set once by addon.c's init. */
extern int have_x16, have_x16_views, have_kquant_x16;

napi_value repack(napi_env env, napi_callback_info info);
napi_value repack_later(napi_env env, napi_callback_info info);
napi_value repack_result(napi_env env, napi_callback_info info);
napi_value open_mapping(napi_env env, napi_callback_info info);
napi_value map_range(napi_env env, napi_callback_info info);
napi_value close_mapping(napi_env env, napi_callback_info info);
napi_value release_range(napi_env env, napi_callback_info info);
napi_value release_view(napi_env env, napi_callback_info info);
napi_value hold_copies(napi_env env, napi_callback_info info);
napi_value alloc_huge(napi_env env, napi_callback_info info);
#endif
