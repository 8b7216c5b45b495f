// Thread pool: a generation counter announces each job; workers spin on it for a while, then
// wait on a condition variable. The caller runs share 0 and waits for the others to finish.
#include "pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>
#if defined(__x86_64__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

#define MAX_THREADS POOL_MAX_THREADS
#define SPIN_ITERATIONS 200000

static pthread_t workers[MAX_THREADS];
static int nthreads = 1;
static int started = 0;
static pool_job_fn job_fn;
static void *job_arg;
static atomic_uint generation;
static atomic_int pending;
static atomic_int stopping;
/* Workers asleep on the condition variable: a job only takes the mutex to wake them when
   there are any (sequentially consistent accesses on both sides, so no wake-up is missed). */
static atomic_int sleepers;
static pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
/* Several JavaScript threads (workers) may share the addon: one job at a time. */
static pthread_mutex_t run_mutex = PTHREAD_MUTEX_INITIALIZER;

/* The generation when the workers were created: a worker that starts late must still see the
   first job announced after that, so it must not read the counter itself. */
static unsigned start_generation;

static void *worker_main(void *p) {
  int index = (int)(long)p;
  unsigned seen = start_generation;
  for (;;) {
    int spins = 0;
    while (atomic_load_explicit(&generation, memory_order_acquire) == seen) {
      if (atomic_load(&stopping)) return NULL;
      if (++spins < SPIN_ITERATIONS) {
        CPU_RELAX();
        continue;
      }
      pthread_mutex_lock(&mutex);
      atomic_fetch_add(&sleepers, 1);
      while (atomic_load(&generation) == seen && !atomic_load(&stopping)) pthread_cond_wait(&wake, &mutex);
      atomic_fetch_sub(&sleepers, 1);
      pthread_mutex_unlock(&mutex);
    }
    if (atomic_load(&stopping)) return NULL;
    seen = atomic_load(&generation);
    if (index < nthreads) job_fn(job_arg, index, nthreads);
    atomic_fetch_sub_explicit(&pending, 1, memory_order_acq_rel);
  }
}

static void stop_workers(void) {
  if (started <= 1) return;
  atomic_store(&stopping, 1);
  pthread_mutex_lock(&mutex);
  pthread_cond_broadcast(&wake);
  pthread_mutex_unlock(&mutex);
  for (int i = 1; i < started; i++) pthread_join(workers[i], NULL);
  atomic_store(&stopping, 0);
  started = 1;
}

int pool_threads(void) { return nthreads; }

void pool_set_threads(int n) {
  if (n < 1) n = 1;
  if (n > MAX_THREADS) n = MAX_THREADS;
  pthread_mutex_lock(&run_mutex);
  if (n == started && n == nthreads) {
    pthread_mutex_unlock(&run_mutex);
    return;
  }
  stop_workers();
  nthreads = n;
  start_generation = atomic_load(&generation);
  for (int i = 1; i < n; i++) pthread_create(&workers[i], NULL, worker_main, (void *)(long)i);
  started = n;
  pthread_mutex_unlock(&run_mutex);
}


void pool_shutdown(void) {
  pthread_mutex_lock(&run_mutex);
  stop_workers();
  nthreads = 1;
  pthread_mutex_unlock(&run_mutex);
}

void pool_run(pool_job_fn fn, void *arg) {
  pthread_mutex_lock(&run_mutex);
  if (nthreads <= 1 || started != nthreads) {
    fn(arg, 0, 1);
    pthread_mutex_unlock(&run_mutex);
    return;
  }
  job_fn = fn;
  job_arg = arg;
  atomic_store(&pending, nthreads - 1);
  atomic_fetch_add(&generation, 1);
  if (atomic_load(&sleepers) > 0) {
    pthread_mutex_lock(&mutex);
    pthread_cond_broadcast(&wake);
    pthread_mutex_unlock(&mutex);
  }
  fn(arg, 0, nthreads);
  while (atomic_load_explicit(&pending, memory_order_acquire) > 0) CPU_RELAX();
  pthread_mutex_unlock(&run_mutex);
}
