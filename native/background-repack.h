#ifndef GEMMA3_BACKGROUND_REPACK_H
#define GEMMA3_BACKGROUND_REPACK_H
#include <stddef.h>
#include <stdint.h>

enum { REPACK_QUEUED, REPACK_RUNNING, REPACK_DONE, REPACK_FAILED };

typedef struct repack_job {
  const uint8_t *src; /* row layout; must stay valid until the job settles (the caller's duty) */
  int dtype, rows, cols;
  void *pin;          /* what keeps src mapped (a file mapping): unpin(pin) when the job is freed */
  void (*unpin)(void *);
  uint8_t *dst;       /* the x16 copy (anonymous memory) once DONE */
  size_t dst_length;
  int huge_pages;     /* dst advised for transparent huge pages (else 4 KiB pages only) */
  int state, taken, refs;
  _Atomic int dropped; /* released while held: the worker abandons it (under the lock) */
  struct repack_job *next;
} repack_job;

/**
 * Queues the x16 copy of src, a view of a private file mapping (its pages are dropped as they
 * are copied), into huge-page memory or (huge_pages 0) 4 KiB pages; NULL if it cannot. The
 * caller owns one reference (repack_release).
 */
repack_job *repack_enqueue(const uint8_t *src, int dtype, int rows, int cols, int huge_pages, void *pin, void (*unpin)(void *));
int repack_state(repack_job *j);
/** The finished copy (the caller then owns and unmaps it), or NULL if it is not finished. */
uint8_t *repack_take(repack_job *j, size_t *length);
/**
 * on: takes a hold, off: gives one back. While any hold is taken one copy thread runs at a time
 * (the second waits at its next slice of about 2 MiB while the first has a job): for work that
 * should share the cores with less copying (a model's first pass), never stopping it.
 */
void repack_hold(int on);
/** Drops the caller's reference, after waiting for the job if it is running (src is then free). */
void repack_release(repack_job *j);
/**
 * Drops the whole pages inside [p, p + bytes) of a private file mapping from this process; the
 * file's pages stay in the page cache and a later touch maps them again, unchanged.
 */
void drop_whole_pages(const void *p, size_t bytes);
/**
 * `bytes` (whole pages, *length) of anonymous memory (fd < 0) or of the file fd mapped privately,
 * starting on a 2 MiB boundary and advised for transparent huge pages: its whole 2 MiB stretches
 * get huge pages, the tail 4 KiB ones (rounding each region up to 2 MiB held a whole huge page
 * per tail); NULL if it cannot.
 */
void *huge_region(size_t bytes, int fd, size_t *length);
/** `bytes` (whole pages, *length) of anonymous memory in 4 KiB pages, never huge ones; NULL if it cannot. */
void *small_page_region(size_t bytes, size_t *length);
/** Stops the workers; queued jobs fail. */
void repack_shutdown(void);
#endif
