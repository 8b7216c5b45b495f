// A persistent thread pool: the calling thread plus (n - 1) workers run one job at a time.
// Workers spin briefly between jobs (decode issues hundreds of small jobs per token), then sleep.
#ifndef GEMMA3_POOL_H
#define GEMMA3_POOL_H

#define POOL_MAX_THREADS 64

typedef void (*pool_job_fn)(void *arg, int thread, int nthreads);

int pool_threads(void);
void pool_set_threads(int n);
/** Runs fn(arg, i, n) for i in [0, n) on n threads and returns when all are done. */
void pool_run(pool_job_fn fn, void *arg);
/** Stops the workers (before the addon is unloaded). */
void pool_shutdown(void);

#endif
