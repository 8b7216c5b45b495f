// Background x16 repacking: Q4_0 / Q8_0 matrices that are being served from a file mapping
// (through the x16 kernel's per-group rearrangement, same results), and Q4_K / Q6_K ones (through
// the row kernels, same results), become repacked copies (in huge pages unless asked) while the model
// already runs. Two threads take the jobs in the order given:
// on a machine whose fresh memory is slow to touch, the copies then finish during the first
// prompt rather than trailing into the decoding after it.
#include "background-repack.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kernels.h"
#include "repack.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;    /* a job was queued, or stop */
static pthread_cond_t settled = PTHREAD_COND_INITIALIZER; /* a job left RUNNING */
static repack_job *head = NULL, *tail = NULL;
#define WORKERS 2
static pthread_t workers[WORKERS];
static int worker_started = 0;
static atomic_int stopping; /* read between slices of a running job too: exit does not wait for it */
static __thread int worker_index; /* 0 .. WORKERS - 1: the copy thread running this */
static atomic_int held;     /* holds taken by repack_hold: while any, one copy thread at a time */
static atomic_int first_busy; /* the first copy thread is running a job (the others wait for it while held) */
static pthread_cond_t resumed = PTHREAD_COND_INITIALIZER; /* held cleared, the first thread idle, stop, or a job dropped */

static void unref_locked(repack_job *j) {
  if (--j->refs > 0) return;
  if (j->dst && !j->taken) munmap(j->dst, j->dst_length);
  j->unpin(j->pin);
  free(j);
}

void drop_whole_pages(const void *p, size_t bytes) {
  const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
  const uintptr_t from = ((uintptr_t)p + page - 1) & ~(page - 1), to = ((uintptr_t)p + bytes) & ~(page - 1);
  if (to > from) madvise((void *)from, to - from, MADV_DONTNEED);
}
void *huge_region(size_t bytes, int fd, size_t *length_out) {
  const size_t huge = (size_t)2 << 20, page = (size_t)sysconf(_SC_PAGESIZE);
  const size_t length = (bytes + page - 1) / page * page;
  char *reserved = (char *)mmap(NULL, length + huge, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (reserved == MAP_FAILED) return NULL;
  char *base = (char *)(((uintptr_t)reserved + huge - 1) & ~(uintptr_t)(huge - 1));
  if (mmap(base, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED | (fd < 0 ? MAP_ANONYMOUS : 0), fd, 0) == MAP_FAILED) {
    munmap(reserved, length + huge);
    return NULL;
  }
  if (base > reserved) munmap(reserved, (size_t)(base - reserved));
  munmap(base + length, (size_t)(reserved + huge - base)); /* the rest of the reservation past the region */
#ifdef MADV_HUGEPAGE
  madvise(base, length, MADV_HUGEPAGE);
#endif
  *length_out = length;
  return base;
}

void *small_page_region(size_t bytes, size_t *length_out) {
  const size_t page = (size_t)sysconf(_SC_PAGESIZE);
  const size_t length = (bytes + page - 1) / page * page;
  void *p = mmap(NULL, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return NULL;
#ifdef MADV_NOHUGEPAGE
  madvise(p, length, MADV_NOHUGEPAGE); /* also where transparent huge pages are 'always' */
#endif
  *length_out = length;
  return p;
}

static void run_job(repack_job *j) {
  const size_t huge = (size_t)2 << 20;
  size_t length;
  const size_t bytes = repacked_bytes(j->dtype, j->rows, j->cols);
  void *p = j->huge_pages ? huge_region(bytes, -1, &length) : small_page_region(bytes, &length);
  if (!p) return;
  /* In slices of groups, so the source can be released behind the copy. */
  const size_t group_bytes = 16 * row_bytes(j->dtype, j->cols);
  const int groups = j->rows / 16;
  const int per_slice = group_bytes >= huge ? 1 : (int)(huge / group_bytes);
  for (int g = 0; g < groups; g += per_slice) {
    if (atomic_load(&held) && worker_index > 0) {
      pthread_mutex_lock(&lock);
      while (atomic_load(&held) && atomic_load(&first_busy) && !atomic_load(&stopping) && !j->dropped) pthread_cond_wait(&resumed, &lock);
      pthread_mutex_unlock(&lock);
    }
    if (atomic_load(&stopping) || j->dropped) {
      munmap(p, length);
      return;
    }
    const int n = groups - g < per_slice ? groups - g : per_slice;
    if (j->dtype == DT_Q4_K || j->dtype == DT_Q5_K || j->dtype == DT_Q6_K) repack_x16(j->src + (size_t)g * group_bytes, (uint8_t *)p + (size_t)g * group_bytes, j->dtype, n * 16, j->cols);
    else repack_x16_simd(j->src + (size_t)g * group_bytes, (uint8_t *)p + (size_t)g * group_bytes, j->dtype, n * 16, j->cols);
    /* Source pages already rearranged leave this process's memory as the copy grows; a kernel
       still reading them faults them back in, unchanged. */
    drop_whole_pages(j->src, (size_t)(g + n) * group_bytes);
  }
  j->dst = (uint8_t *)p;
  j->dst_length = length;
}

static void *worker_main(void *arg) {
  worker_index = (int)(intptr_t)arg;
  pthread_mutex_lock(&lock);
  for (;;) {
    while (!head && !atomic_load(&stopping)) pthread_cond_wait(&wake, &lock);
    if (atomic_load(&stopping)) break;
    repack_job *j = head;
    head = j->next;
    if (!head) tail = NULL;
    if (j->state == REPACK_QUEUED) {
      j->state = REPACK_RUNNING;
      if (worker_index == 0) atomic_store(&first_busy, 1);
      pthread_mutex_unlock(&lock);
      run_job(j);
      pthread_mutex_lock(&lock);
      if (worker_index == 0) {
        atomic_store(&first_busy, 0);
        pthread_cond_broadcast(&resumed); /* a held thread may go on alone */
      }
      j->state = j->dst ? REPACK_DONE : REPACK_FAILED;
      pthread_cond_broadcast(&settled);
    }
    unref_locked(j); /* the queue's reference */
  }
  /* Stopping: what is still queued is dropped. */
  while (head) {
    repack_job *j = head;
    head = j->next;
    j->state = REPACK_FAILED;
    unref_locked(j);
  }
  tail = NULL;
  pthread_mutex_unlock(&lock);
  return NULL;
}

repack_job *repack_enqueue(const uint8_t *src, int dtype, int rows, int cols, int huge_pages, void *pin, void (*unpin)(void *)) {
  repack_job *j = (repack_job *)calloc(1, sizeof(repack_job));
  if (!j) return NULL;
  j->src = src;
  j->dtype = dtype;
  j->rows = rows;
  j->cols = cols;
  j->huge_pages = huge_pages;
  j->pin = pin;
  j->unpin = unpin;
  j->state = REPACK_QUEUED;
  j->refs = 2; /* the queue's and the caller's */
  pthread_mutex_lock(&lock);
  if (!worker_started) {
    atomic_store(&stopping, 0);
    for (; worker_started < WORKERS; worker_started++) {
      if (pthread_create(&workers[worker_started], NULL, worker_main, (void *)(intptr_t)worker_started) != 0) break;
    }
    if (worker_started == 0) {
      pthread_mutex_unlock(&lock);
      free(j);
      return NULL;
    }
  }
  if (tail) tail->next = j;
  else head = j;
  tail = j;
  pthread_cond_signal(&wake);
  pthread_mutex_unlock(&lock);
  return j;
}

int repack_state(repack_job *j) {
  pthread_mutex_lock(&lock);
  const int s = j->state;
  pthread_mutex_unlock(&lock);
  return s;
}

uint8_t *repack_take(repack_job *j, size_t *length) {
  pthread_mutex_lock(&lock);
  uint8_t *p = NULL;
  if (j->state == REPACK_DONE && !j->taken) {
    j->taken = 1;
    p = j->dst;
    *length = j->dst_length;
  }
  pthread_mutex_unlock(&lock);
  return p;
}

void repack_hold(int on) {
  pthread_mutex_lock(&lock);
  const int left = atomic_load(&held) + (on ? 1 : -1);
  atomic_store(&held, left < 0 ? 0 : left);
  if (left <= 0) pthread_cond_broadcast(&resumed);
  pthread_mutex_unlock(&lock);
}

void repack_release(repack_job *j) {
  pthread_mutex_lock(&lock);
  if (j->state == REPACK_QUEUED) j->state = REPACK_FAILED; /* the worker skips it */
  if (j->state == REPACK_RUNNING && atomic_load(&held)) { /* a copy that may be held and that nobody wants: dropped, not waited for */
    j->dropped = 1;
    pthread_cond_broadcast(&resumed);
  }
  while (j->state == REPACK_RUNNING) pthread_cond_wait(&settled, &lock);
  unref_locked(j);
  pthread_mutex_unlock(&lock);
}

void repack_shutdown(void) {
  pthread_mutex_lock(&lock);
  if (!worker_started) {
    pthread_mutex_unlock(&lock);
    return;
  }
  atomic_store(&stopping, 1);
  pthread_cond_broadcast(&wake);
  pthread_cond_broadcast(&resumed);
  pthread_mutex_unlock(&lock);
  for (int i = 0; i < worker_started; i++) pthread_join(workers[i], NULL);
  worker_started = 0;
}
