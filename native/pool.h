// A persistent thread pool: the calling thread plus (n - 1) workers run one job at a time.
//
// Built for machines that also run other programs: a worker may be descheduled at any moment,
// so a job never waits for a worker that has not started it. The caller runs the job itself and
// then closes it: workers that arrive later skip it, and the caller waits only for the workers
// already inside. So a job takes its work through shared counters (pool_shares), never by thread
// index: whichever threads run it, all of its work gets done.
#ifndef GEMMA3_POOL_H
#define GEMMA3_POOL_H

#include <stdatomic.h>
#include <stdint.h>

#define POOL_MAX_THREADS 64

/** Called on the caller as thread 0 and on each worker (1 .. pool_threads() - 1) that starts in time. */
typedef void (*pool_job_fn)(void *arg, int thread);

int pool_threads(void);
void pool_set_threads(int n);
/** Runs fn on the caller and the workers that join in time; returns when every call has returned. */
void pool_run(pool_job_fn fn, void *arg);
/** Stops the workers (before the addon is unloaded). */
void pool_shutdown(void);

/**
 * Items [0, items) in contiguous regions, one per pool thread: each thread takes its own region
 * from the front, in order (the data it reads is one stream), then takes from the back of the
 * others' regions, so the caller does the share of a worker that is late or descheduled.
 */
typedef struct {
  int regions;
  /* [lo, hi) packed as lo | hi << 32; a cache line each, so taking from one's own region does
     not contend with the other threads. */
  struct {
    _Alignas(64) _Atomic uint64_t range;
  } region[POOL_MAX_THREADS];
} pool_shares;

void pool_shares_init(pool_shares *s, int items);
/** The next item for `thread`, or -1 when every item is taken; *cursor starts at 0. */
int pool_shares_next(pool_shares *s, int thread, int *cursor);

#endif
