// Thread pool. A generation counter announces each job; `inside` counts the workers running it
// and carries a CLOSED bit the caller sets once its own call returns (every item then taken), so
// a worker that was descheduled, or is slow to wake, skips the job instead of holding it up.
//
// Waiting threads spin briefly (decode issues hundreds of small jobs per token, a few
// microseconds apart, and a spinning worker picks one up at once), then yield, then sleep on
// the word they wait for (a futex on Linux, a condition variable elsewhere). A thread that
// spins on a busy machine takes the time slice its partner or a neighbour needed.
#include "pool.h"

#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <time.h>
#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif
#if defined(__x86_64__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

#define MAX_THREADS POOL_MAX_THREADS
/* Spinning covers the gaps between the jobs of one decode step (tens of microseconds of
   JavaScript at most); yielding lets a neighbour on the same core run; past both, sleep. */
#define SPIN_NS 50000
#define YIELD_NS 150000
#define CLOSED 0x80000000u

static pthread_t workers[MAX_THREADS];
static atomic_int nthreads = 1; /* read outside run_mutex by pool_threads */
static int workers_started = 0; /* worker threads running (they are 1 .. workers_started) */
static pool_job_fn job_fn;
static void *job_arg;
/* Each on its own cache line: idle workers poll the generation, and joining and leaving a job
   writes `inside`, so those writes do not disturb the polling. */
static _Alignas(64) atomic_uint generation;
static _Alignas(64) atomic_uint inside = CLOSED;
static atomic_int stopping;
/* Threads asleep on generation (workers) and on inside (the caller): a writer makes the wake-up
   system call only when there are any. The counter is raised before the sleeper's last look at
   the word and read after the writer's change (sequentially consistent), so no wake-up is lost. */
static atomic_int workers_asleep;
static atomic_int caller_asleep;
/* Several JavaScript threads (workers) may share the addon: one job at a time. */
static pthread_mutex_t run_mutex = PTHREAD_MUTEX_INITIALIZER;

/* The generation when the workers were created: a worker that starts late must still see the
   first job announced after that, so it must not read the counter itself. */
static unsigned start_generation;

static int64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

#if defined(__linux__)
static void sleep_while_equal(atomic_uint *word, unsigned value) {
  syscall(SYS_futex, (unsigned *)word, FUTEX_WAIT_PRIVATE, value, NULL, NULL, 0);
}

static void wake_all(atomic_uint *word) { syscall(SYS_futex, (unsigned *)word, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0); }
#else
/* One mutex and condition for every word: sleeping is rare, and the waker takes the mutex, so
   a sleeper that saw the old value is already waiting when the broadcast comes. */
static pthread_mutex_t sleep_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t sleep_cond = PTHREAD_COND_INITIALIZER;

static void sleep_while_equal(atomic_uint *word, unsigned value) {
  pthread_mutex_lock(&sleep_mutex);
  if (atomic_load(word) == value) pthread_cond_wait(&sleep_cond, &sleep_mutex);
  pthread_mutex_unlock(&sleep_mutex);
}

static void wake_all(atomic_uint *word) {
  (void)word;
  pthread_mutex_lock(&sleep_mutex);
  pthread_cond_broadcast(&sleep_cond);
  pthread_mutex_unlock(&sleep_mutex);
}
#endif

/* Returns *word once it differs from value: spinning, then yielding, then asleep. */
static unsigned wait_for_change(atomic_uint *word, unsigned value, atomic_int *asleep) {
  const int64_t start = now_ns();
  for (unsigned i = 1;; i++) {
    const unsigned now = atomic_load_explicit(word, memory_order_acquire);
    if (now != value) return now;
    if (i % 32 != 0) { /* the clock is read now and then: it costs more than a pause */
      CPU_RELAX();
      continue;
    }
    const int64_t waited = now_ns() - start;
    if (waited < SPIN_NS) continue;
    if (waited < SPIN_NS + YIELD_NS) {
      sched_yield();
      continue;
    }
    atomic_fetch_add(asleep, 1);
    sleep_while_equal(word, value);
    atomic_fetch_sub(asleep, 1);
  }
}

static void wake_if_asleep(atomic_uint *word, atomic_int *asleep) {
  if (atomic_load(asleep) > 0) wake_all(word);
}

static void *worker_main(void *p) {
  const int index = (int)(intptr_t)p;
  unsigned seen = start_generation;
  for (;;) {
    seen = wait_for_change(&generation, seen, &workers_asleep);
    if (atomic_load(&stopping)) return NULL;
    /* Join unless the caller has closed the job. A worker this late may even join the job after
       the one it was woken for; either is open and whole, so it runs that one. */
    unsigned v = atomic_load(&inside);
    while (!(v & CLOSED)) {
      if (!atomic_compare_exchange_weak(&inside, &v, v + 1)) continue;
      job_fn(job_arg, index);
      if (atomic_fetch_sub(&inside, 1) - 1 == CLOSED) wake_if_asleep(&inside, &caller_asleep);
      break;
    }
  }
}

static void stop_workers(void) {
  if (workers_started == 0) return;
  atomic_store(&stopping, 1);
  atomic_fetch_add(&generation, 1);
  wake_all(&generation);
  for (int i = 1; i <= workers_started; i++) pthread_join(workers[i], NULL);
  atomic_store(&stopping, 0);
  workers_started = 0;
}

int pool_threads(void) { return nthreads; }

void pool_set_threads(int n) {
  if (n < 1) n = 1;
  if (n > MAX_THREADS) n = MAX_THREADS;
  pthread_mutex_lock(&run_mutex);
  if (n == nthreads && workers_started == n - 1) {
    pthread_mutex_unlock(&run_mutex);
    return;
  }
  stop_workers();
  nthreads = n;
  start_generation = atomic_load(&generation);
  /* A worker that cannot be created only costs speed: the others take its share. */
  while (workers_started < n - 1 && pthread_create(&workers[workers_started + 1], NULL, worker_main, (void *)(intptr_t)(workers_started + 1)) == 0) {
    workers_started++;
  }
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
  if (workers_started == 0) {
    fn(arg, 0);
    pthread_mutex_unlock(&run_mutex);
    return;
  }
  job_fn = fn;
  job_arg = arg;
  atomic_store(&inside, 0); /* open: published with the generation, after the job it describes */
  atomic_fetch_add(&generation, 1);
  wake_if_asleep(&generation, &workers_asleep);
  fn(arg, 0);
  /* Every item is taken; from here on only the workers inside matter. */
  unsigned v = atomic_fetch_or(&inside, CLOSED) | CLOSED;
  while (v != CLOSED) v = wait_for_change(&inside, v, &caller_asleep);
  pthread_mutex_unlock(&run_mutex);
}

void pool_shares_init(pool_shares *s, int items) {
  s->regions = nthreads;
  for (int t = 0; t < s->regions; t++) {
    const uint64_t lo = (uint64_t)items * t / s->regions, hi = (uint64_t)items * (t + 1) / s->regions;
    atomic_store_explicit(&s->region[t].range, lo | hi << 32, memory_order_relaxed);
  }
}

/* Takes one item from a region's front (its owner) or back (a thread that finished its own). */
static int take(_Atomic uint64_t *range, int from_back) {
  uint64_t v = atomic_load_explicit(range, memory_order_relaxed);
  for (;;) {
    const uint32_t lo = (uint32_t)v, hi = (uint32_t)(v >> 32);
    if (lo >= hi) return -1;
    const uint64_t next = from_back ? lo | (uint64_t)(hi - 1) << 32 : (lo + 1) | (uint64_t)hi << 32;
    if (atomic_compare_exchange_weak_explicit(range, &v, next, memory_order_relaxed, memory_order_relaxed))
      return (int)(from_back ? hi - 1 : lo);
  }
}

int pool_shares_next(pool_shares *s, int thread, int *cursor) {
  for (; *cursor < s->regions; ++*cursor) {
    const int item = take(&s->region[(thread + *cursor) % s->regions].range, *cursor > 0);
    if (item >= 0) return item;
  }
  return -1;
}
