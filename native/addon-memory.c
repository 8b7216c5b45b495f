// Node-API memory helpers of the native backend: weight layouts (repack, and the background
// copies of background-repack.c), whole-file mappings shared by tensor views, huge-page buffers.
#define _GNU_SOURCE
#include "addon-memory.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "background-repack.h"
#include "kernels.h"
#include "pool.h"
#include "repack.h"

/* repack(w: Uint8Array, dtype, rows, cols, inPlace) → Uint8Array in the x16 layout (w itself when
   inPlace: no extra memory), or null when this CPU has no kernel for it or rows % 16 != 0. */
napi_value repack(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5], result, ab;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  size_t w_bytes;
  const uint8_t *w = (const uint8_t *)typed_data(env, argv[0], &w_bytes, 0);
  int32_t dtype, rows, cols;
  if (!w || !get_i32(env, argv[1], &dtype) || !get_i32(env, argv[2], &rows) || !get_i32(env, argv[3], &cols)) {
    if (w) napi_throw_type_error(env, "GEMMA3_NATIVE", "repack: bad arguments");
    return NULL;
  }
  const int kquant = dtype == DT_Q4_K || dtype == DT_Q5_K || dtype == DT_Q6_K;
  if (!(kquant ? have_kquant_x16 : have_x16) || (dtype != DT_Q4_0 && dtype != DT_Q8_0 && !kquant) || rows <= 0 || rows % 16 != 0 ||
      cols <= 0 || cols % (kquant ? QK_K : 32) != 0 ||
      w_bytes < row_bytes(dtype, cols) * (size_t)rows) {
    CHECK(napi_get_null(env, &result));
    return result;
  }
  bool in_place = false;
  if (argc >= 5) napi_get_value_bool(env, argv[4], &in_place);
  if (in_place && repack_x16_in_place((uint8_t *)w, dtype, rows, cols)) return argv[0];
  const size_t bytes = repacked_bytes(dtype, rows, cols);
  void *data;
  CHECK(napi_create_arraybuffer(env, bytes, &data, &ab));
  repack_x16(w, (uint8_t *)data, dtype, rows, cols);
  CHECK(napi_create_typedarray(env, napi_uint8_array, bytes, ab, 0, &result));
  return result;
}

typedef struct {
  void *base;
  size_t length;
} mapping;

static void unmap_range(napi_env env, void *data, void *hint) {
  (void)env;
  (void)data;
  mapping *m = (mapping *)hint;
  munmap(m->base, m->length);
  free(m);
}

/* A Uint8Array of `bytes` over mmap'ed pages [p, p + length), unmapped when it is collected;
   NULL (and the pages unmapped) if it cannot be made. */
static napi_value pages_array(napi_env env, void *p, size_t length, size_t bytes) {
  napi_value ab, array;
  mapping *m = (mapping *)malloc(sizeof(mapping));
  if (!m) {
    munmap(p, length);
    return NULL;
  }
  m->base = p;
  m->length = length;
  if (napi_create_external_arraybuffer(env, p, length, unmap_range, m, &ab) != napi_ok) {
    munmap(p, length);
    free(m);
    return NULL;
  }
  if (napi_create_typedarray(env, napi_uint8_array, bytes, ab, 0, &array) != napi_ok) return NULL; /* the buffer's finalizer unmaps */
  return array;
}

/* A whole GGUF file mapped once, privately (a stray write copies a page, never reaches the file),
   at a virtual address congruent to its file offsets modulo 2 MiB: where the page cache holds the
   file in 2 MiB folios (a file read from disk through this mapping, or written in large chunks,
   on kernels with large folios for its file system) each 2 MiB is one TLB entry, as fast as
   huge-page anonymous memory, with nothing copied. Tensor views share it; the last one unmaps. */
typedef struct file_mapping {
  char *base;
  size_t length;    /* mapped: the file size rounded up to whole pages */
  size_t size;      /* the file size */
  atomic_size_t refs; /* on the pages: the handle's (until closeMapping or its collection), one per
                         view, one per background copy reading it (released on the copying thread) */
  /* On this record: the pages' (until they are unmapped) and the JS handle's (until it is
     collected). The handle can outlive the pages (closed, then its views and copies gone) and
     its finalizer reads the record: freed with the pages, its memory could already be another
     mapping's record (which the old handle then closed) or anything else (which it then
     decremented, even unmapped): segfaults at exit or after a collection. */
  atomic_int holds;
  atomic_bool handle_open;
  /* External ArrayBuffers over the file (each holding one ref), weakly referenced, that the views
     of mapRange are typed arrays of: V8 counts each external buffer's bytes as fresh external
     memory, and one buffer per tensor view (a few hundred) set off a full garbage collection
     every few views (25 for a 4B GGUF: ~0.8 s of its load). Node 20 refuses buffers over 4 GiB,
     so segment i covers [i · MAPPING_STRIDE, i · MAPPING_STRIDE + MAPPING_WINDOW): a view of up to
     WINDOW − STRIDE bytes lies within the segment of its first byte. Used and deleted on the JS
     thread only (mapRange, closeMapping, the handle's finalizer). */
  napi_ref *buffers;
  size_t segments;
  struct file_mapping *next; /* in `mappings`, to find the mapping a view lies in */
} file_mapping;

/* Node.js 20 makes no ArrayBuffer over 4 GiB (its Buffer limit): the file's shared buffers are
   3 GiB windows 1 GiB apart, so any view up to 2 GiB lies within one. */
#define MAPPING_STRIDE ((size_t)1 << 30)
#define MAPPING_WINDOW ((size_t)3 << 30)

static pthread_mutex_t mappings_lock = PTHREAD_MUTEX_INITIALIZER;
static file_mapping *mappings = NULL;

static void file_mapping_let_go(file_mapping *m) {
  if (atomic_fetch_sub(&m->holds, 1) != 1) return;
  free(m->buffers);
  free(m);
}

static void file_mapping_unref(file_mapping *m) {
  if (atomic_fetch_sub(&m->refs, 1) != 1) return;
  pthread_mutex_lock(&mappings_lock);
  for (file_mapping **p = &mappings; *p; p = &(*p)->next) {
    if (*p == m) {
      *p = m->next;
      break;
    }
  }
  pthread_mutex_unlock(&mappings_lock);
  munmap(m->base, m->length);
  file_mapping_let_go(m);
}

static void file_mapping_unpin(void *m) { file_mapping_unref((file_mapping *)m); }

/* The mapping holding [p, p + bytes), with a reference taken, or NULL. One whose last reference
   is being dropped on another thread (still listed for a moment) is not taken. */
static file_mapping *file_mapping_pin(const uint8_t *p, size_t bytes) {
  file_mapping *found = NULL;
  pthread_mutex_lock(&mappings_lock);
  for (file_mapping *m = mappings; m; m = m->next) {
    if ((const char *)p >= m->base && (const char *)p + bytes <= m->base + m->size) {
      size_t refs = atomic_load(&m->refs);
      while (refs > 0 && !atomic_compare_exchange_weak(&m->refs, &refs, refs + 1)) {
      }
      if (refs > 0) found = m;
      break;
    }
  }
  pthread_mutex_unlock(&mappings_lock);
  return found;
}

static void file_mapping_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)data;
  file_mapping_unref((file_mapping *)hint);
}

static void file_mapping_close(file_mapping *m) {
  if (atomic_exchange(&m->handle_open, false)) file_mapping_unref(m);
}

/* No more views (the handle closed or collected): the weak references go; the buffers live on while views do. */
static void file_mapping_drop_buffers(napi_env env, file_mapping *m) {
  for (size_t i = 0; i < m->segments; i++) {
    if (!m->buffers[i]) continue;
    napi_delete_reference(env, m->buffers[i]);
    m->buffers[i] = NULL;
  }
}

static void file_mapping_handle_finalize(napi_env env, void *data, void *hint) {
  (void)hint;
  file_mapping_drop_buffers(env, (file_mapping *)data);
  file_mapping_close((file_mapping *)data);
  file_mapping_let_go((file_mapping *)data);
}

typedef struct {
  char *base;
  size_t length;
  int advice;
  pool_shares slices; /* of 2 MiB */
} populate_job;

#define POPULATE_SLICE ((size_t)2 << 20)

/* Slices of 2 MiB over the pool's threads: reading a file from disk, or faulting fresh memory,
   proceeds in parallel. */
static void populate_job_fn(void *arg, int thread) {
  populate_job *j = (populate_job *)arg;
  for (int cursor = 0, slice; (slice = pool_shares_next(&j->slices, thread, &cursor)) >= 0;) {
    char *from = j->base + (size_t)slice * POPULATE_SLICE;
    const size_t bytes = j->length - (size_t)slice * POPULATE_SLICE < POPULATE_SLICE ? j->length - (size_t)slice * POPULATE_SLICE : POPULATE_SLICE;
    if (madvise(from, bytes, j->advice) == 0) continue;
    /* Kernels before 5.14 have no MADV_POPULATE_*: touch every page. */
    for (size_t o = 0; o < bytes; o += 4096) {
      if (j->advice == 23) ((volatile char *)from)[o] = 0;
      else (void)((volatile char *)from)[o];
    }
  }
}

static void populate(void *p, size_t length, int advice) {
  populate_job j; /* not zeroed: its shares are big */
  j.base = (char *)p;
  j.length = length;
  j.advice = advice;
  pool_shares_init(&j.slices, (int)((length + POPULATE_SLICE - 1) / POPULATE_SLICE));
  pool_run(populate_job_fn, &j);
}

/* Bytes of [base, base + length) that the kernel maps with 2 MiB entries (from /proc/self/smaps;
   0 where it cannot be read). */
static size_t pmd_mapped_bytes(const char *base) {
  FILE *f = fopen("/proc/self/smaps", "r");
  if (!f) return 0;
  char line[512];
  int inside = 0;
  size_t kb = 0;
  while (fgets(line, sizeof(line), f)) {
    unsigned long lo, hi;
    if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ')) {
      inside = lo <= (unsigned long)base && (unsigned long)base < hi;
      continue;
    }
    size_t v;
    if (inside && sscanf(line, "FilePmdMapped: %zu kB", &v) == 1) kb += v;
  }
  fclose(f);
  return kb * 1024;
}

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

/* openMapping(path, populate) → {mapping, bytes, hugeBytes} or null. populate: read the whole file
   into the mapping now (from the page cache, or from disk in parallel), and count how much of it
   the kernel maps with 2 MiB entries. `mapping` keeps the file mapped until it is garbage
   collected and every view of mapRange is. */
napi_value open_mapping(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], result;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  CHECK(napi_get_null(env, &result));
  char path[4096];
  size_t len;
  bool want_populate = false;
  if (argc < 1 || napi_get_value_string_utf8(env, argv[0], path, sizeof(path), &len) != napi_ok || len >= sizeof(path) - 1) return result;
  if (argc >= 2) napi_get_value_bool(env, argv[1], &want_populate);
  int fd = open(path, O_RDONLY);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0 || st.st_size <= 0) {
    if (fd >= 0) close(fd);
    return result;
  }
  /* Pages read from disk into a region advised for huge pages arrive in 2 MiB folios. */
  size_t length;
  char *base = (char *)huge_region((size_t)st.st_size, fd, &length);
  close(fd);
  if (!base) return result;
  size_t huge_bytes = 0;
  if (want_populate) {
    populate(base, length, MADV_POPULATE_READ);
    huge_bytes = pmd_mapped_bytes(base);
  }
  file_mapping *m = (file_mapping *)malloc(sizeof(file_mapping));
  if (!m) {
    munmap(base, length);
    return result;
  }
  m->base = base;
  m->length = length;
  m->size = (size_t)st.st_size;
  atomic_init(&m->refs, 1);
  atomic_init(&m->holds, 2);
  atomic_init(&m->handle_open, true);
  m->segments = (m->size + MAPPING_STRIDE - 1) / MAPPING_STRIDE;
  m->buffers = (napi_ref *)calloc(m->segments, sizeof(napi_ref));
  if (!m->buffers) {
    free(m);
    munmap(base, length);
    return result;
  }
  pthread_mutex_lock(&mappings_lock);
  m->next = mappings;
  mappings = m;
  pthread_mutex_unlock(&mappings_lock);
  napi_value handle, bytes_v, huge_v;
  if (napi_create_external(env, m, file_mapping_handle_finalize, NULL, &handle) != napi_ok) {
    file_mapping_close(m);
    file_mapping_let_go(m); /* no handle to collect */
    return result;
  }
  CHECK(napi_create_object(env, &result));
  CHECK(napi_create_double(env, (double)st.st_size, &bytes_v));
  CHECK(napi_create_double(env, (double)huge_bytes, &huge_v));
  CHECK(napi_set_named_property(env, result, "mapping", handle));
  CHECK(napi_set_named_property(env, result, "bytes", bytes_v));
  CHECK(napi_set_named_property(env, result, "hugeBytes", huge_v));
  return result;
}

/* closeMapping(mapping): drops the handle's hold now (views keep what they cover mapped), so
   the file's pages leave this process as soon as no view needs them, not at some later GC. */
napi_value close_mapping(napi_env env, napi_callback_info info) {
  GET_ARGS(1, "closeMapping");
  file_mapping *m;
  if (napi_get_value_external(env, argv[0], (void **)&m) == napi_ok) {
    file_mapping_drop_buffers(env, m);
    file_mapping_close(m);
  }
  return NULL;
}

/* releaseRange(mapping, offset, length): drops the whole pages inside those bytes from this
   process (a file range read into copies instead); touching them later reads the file again. */
napi_value release_range(napi_env env, napi_callback_info info) {
  GET_ARGS(3, "releaseRange");
  file_mapping *m;
  double offset_d, length_d;
  if (napi_get_value_external(env, argv[0], (void **)&m) != napi_ok || !m->handle_open || napi_get_value_double(env, argv[1], &offset_d) != napi_ok ||
      napi_get_value_double(env, argv[2], &length_d) != napi_ok || !(offset_d >= 0) || !(length_d >= 0) || offset_d + length_d > (double)m->size) {
    napi_throw_range_error(env, "GEMMA3_NATIVE", "releaseRange: a closed mapping, or a range outside the mapped file");
    return NULL;
  }
  drop_whole_pages(m->base + (size_t)offset_d, (size_t)length_d);
  return NULL;
}

/* holdCopies(on): takes (true) or gives back (false) a hold on the background copies: one thread of two while held (repack_hold). */
napi_value hold_copies(napi_env env, napi_callback_info info) {
  GET_ARGS(1, "holdCopies");
  bool on = false;
  napi_get_value_bool(env, argv[0], &on);
  repack_hold(on ? 1 : 0);
  return NULL;
}

/* releaseView(view): drops the whole pages inside a view of a file mapping from this process
   (a view replaced by its copy: its pages would otherwise stay counted until garbage
   collection); anything else is left alone. */
napi_value release_view(napi_env env, napi_callback_info info) {
  GET_ARGS(1, "releaseView");
  size_t bytes;
  const uint8_t *p = (const uint8_t *)typed_data(env, argv[0], &bytes, 0);
  if (!p || bytes == 0) return NULL;
  file_mapping *m = file_mapping_pin(p, bytes);
  if (!m) return NULL;
  drop_whole_pages(p, bytes);
  file_mapping_unref(m);
  return NULL;
}

/* mapRange(mapping, offset, length) → Uint8Array over those bytes of the mapped file (no copy). */
napi_value map_range(napi_env env, napi_callback_info info) {
  GET_ARGS(3, "mapRange");
  file_mapping *m;
  double offset_d, length_d;
  napi_value result, ab;
  if (napi_get_value_external(env, argv[0], (void **)&m) != napi_ok || !m->handle_open || napi_get_value_double(env, argv[1], &offset_d) != napi_ok ||
      napi_get_value_double(env, argv[2], &length_d) != napi_ok || !(offset_d >= 0) || !(length_d > 0) ||
      offset_d + length_d > (double)m->size) {
    napi_throw_range_error(env, "GEMMA3_NATIVE", "mapRange: a closed mapping, or a range outside the mapped file");
    return NULL;
  }
  const size_t offset = (size_t)offset_d, length = (size_t)length_d;
  const size_t segment = offset / MAPPING_STRIDE, segment_start = segment * MAPPING_STRIDE;
  const size_t segment_bytes = m->size - segment_start < MAPPING_WINDOW ? m->size - segment_start : MAPPING_WINDOW;
  if (offset + length > segment_start + segment_bytes) {
    /* Longer than WINDOW − STRIDE (a 27B's embedding): a buffer of its own. */
    atomic_fetch_add(&m->refs, 1);
    if (napi_create_external_arraybuffer(env, m->base + offset, length, file_mapping_finalize, m, &ab) != napi_ok) {
      file_mapping_unref(m);
      return NULL; /* the exception (a view too large for this Node.js) is pending */
    }
    CHECK(napi_create_typedarray(env, napi_uint8_array, length, ab, 0, &result));
    return result;
  }
  ab = NULL;
  napi_ref *ref = &m->buffers[segment];
  if (*ref && (napi_get_reference_value(env, *ref, &ab) != napi_ok || ab == NULL)) {
    napi_delete_reference(env, *ref); /* collected with its last view */
    *ref = NULL;
    ab = NULL;
  }
  if (ab == NULL) {
    atomic_fetch_add(&m->refs, 1);
    if (napi_create_external_arraybuffer(env, m->base + segment_start, segment_bytes, file_mapping_finalize, m, &ab) != napi_ok) {
      file_mapping_unref(m);
      return NULL;
    }
    if (napi_create_reference(env, ab, 0, ref) != napi_ok) *ref = NULL;
  }
  CHECK(napi_create_typedarray(env, napi_uint8_array, length, ab, offset - segment_start, &result));
  return result;
}

/* A background x16 copy of a matrix (background-repack.c). */
typedef struct {
  repack_job *job;
} repack_handle;

static void repack_handle_settle(repack_handle *h) {
  if (!h->job) return;
  repack_release(h->job);
  h->job = NULL;
}

static void repack_handle_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  repack_handle_settle((repack_handle *)data);
  free(data);
}

/* repackLater(w, dtype, rows, cols, hugePages = true) → a handle, or null: the x16 copy of w, a
   view of a file mapping (openMapping), made by a background thread in huge-page memory or, with
   hugePages false, in 4 KiB pages. The job holds the mapping (not the JS
   view), so it stays mapped even if the views are collected first, as at exit; and it drops the
   view's pages as they are copied. */
napi_value repack_later(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 4) {
    napi_throw_type_error(env, "GEMMA3_NATIVE", "repackLater takes 4 or 5 arguments");
    return NULL;
  }
  size_t bytes;
  const uint8_t *w = (const uint8_t *)typed_data(env, argv[0], &bytes, 0);
  int32_t dtype, rows, cols;
  napi_value result;
  CHECK(napi_get_null(env, &result));
  if (!w || !get_i32(env, argv[1], &dtype) || !get_i32(env, argv[2], &rows) || !get_i32(env, argv[3], &cols)) return NULL;
  bool huge_pages = true;
  if (argc >= 5) napi_get_value_bool(env, argv[4], &huge_pages);
  const int kquant = dtype == DT_Q4_K || dtype == DT_Q5_K || dtype == DT_Q6_K;
  if (!(kquant ? have_kquant_x16 : have_x16_views) || (dtype != DT_Q4_0 && dtype != DT_Q8_0 && !kquant) || rows <= 0 || rows % 16 != 0 ||
      cols <= 0 || cols % (kquant ? QK_K : 32) != 0 || bytes < row_bytes(dtype, cols) * (size_t)rows) return result;
  file_mapping *m = file_mapping_pin(w, bytes);
  if (!m) return result;
  repack_handle *h = (repack_handle *)malloc(sizeof(repack_handle));
  h->job = h ? repack_enqueue(w, dtype, rows, cols, huge_pages, m, file_mapping_unpin) : NULL;
  if (!h || !h->job) {
    free(h);
    file_mapping_unref(m);
    return result;
  }
  if (napi_create_external(env, h, repack_handle_finalize, NULL, &result) != napi_ok) {
    repack_handle_settle(h);
    free(h);
    CHECK(napi_get_null(env, &result));
  }
  return result;
}

/* repackResult(handle) → the finished x16 copy (a Uint8Array, once), null while it is being
   made, false if it failed (or was already taken). */
napi_value repack_result(napi_env env, napi_callback_info info) {
  GET_ARGS(1, "repackResult");
  repack_handle *h;
  napi_value result;
  if (napi_get_value_external(env, argv[0], (void **)&h) != napi_ok) {
    napi_throw_type_error(env, "GEMMA3_NATIVE", "repackResult takes a handle of repackLater");
    return NULL;
  }
  if (!h->job) {
    CHECK(napi_get_boolean(env, false, &result));
    return result;
  }
  const int state = repack_state(h->job);
  if (state == REPACK_QUEUED || state == REPACK_RUNNING) {
    CHECK(napi_get_null(env, &result));
    return result;
  }
  size_t length = 0;
  uint8_t *p = repack_take(h->job, &length);
  const size_t bytes = row_bytes(h->job->dtype, h->job->cols) * (size_t)h->job->rows;
  repack_handle_settle(h);
  if (p && (result = pages_array(env, p, length, bytes)) != NULL) return result;
  CHECK(napi_get_boolean(env, false, &result));
  return result;
}

/* allocHuge(bytes, populate = true) → zeroed Uint8Array in anonymous memory advised for
   transparent huge pages: it faults in 2 MiB at a time and streams through fewer TLB entries.
   populate: fault every page in now (weights about to be read); false: on first touch (caches). */
napi_value alloc_huge(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], result;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  double bytes_d;
  CHECK(napi_get_null(env, &result));
  if (argc < 1 || napi_get_value_double(env, argv[0], &bytes_d) != napi_ok || bytes_d <= 0) return result;
  bool want_populate = true;
  if (argc >= 2) napi_get_value_bool(env, argv[1], &want_populate);
  const size_t bytes = (size_t)bytes_d;
  size_t length;
  void *p = huge_region(bytes, -1, &length);
  if (!p) return result;
  if (want_populate) populate(p, length, MADV_POPULATE_WRITE);
  napi_value array = pages_array(env, p, length, bytes);
  return array ? array : result;
}
