// cache-scratch: passive false sharing, after Hoard's cache-scratch. The main thread allocates one small
// object per worker, side by side, and hands them out; each worker frees its object, then repeatedly
// allocates a small object and writes it many times. An allocator that gives a worker back the memory it
// just freed (which shares a cache line with the other workers' objects) makes the writes fight over lines.
// Usage: cache-scratch SCALE THREADS
#include "bench.h"
#include <pthread.h>

enum { OBJECT_SIZE = 8, ITERATIONS = 1000 };

static long repetitions;

typedef struct {
  char *handed;
  long written;
} Work;

static void *worker(void *arg) {
  Work *work = arg;
  free(work->handed);
  long written = 0;
  for (int i = 0; i < ITERATIONS; i++) {
    volatile char *object = malloc(OBJECT_SIZE);
    BENCH_CHECK(object != NULL, "malloc(%d) failed", OBJECT_SIZE);
    for (long r = 0; r < repetitions; r++) {
      for (int k = 0; k < OBJECT_SIZE; k++) {
        object[k] = (char)(k + r);
        written += object[k] == (char)(k + r);
      }
    }
    free((void *)object);
  }
  work->written = written;
  return NULL;
}

int main(int argc, char **argv) {
  double scale = bench_arg_double(argc, argv, 1, 1.0);
  int threads = (int)bench_arg_double(argc, argv, 2, 4);
  BENCH_CHECK(threads >= 1 && threads <= 64, "threads must be 1..64: %d", threads);
  bench_report_provider();

  repetitions = bench_scaled(60000, scale, 10);
  pthread_t ids[64];
  Work work[64];
  for (int t = 0; t < threads; t++) {
    work[t] = (Work){malloc(OBJECT_SIZE), 0};
    BENCH_CHECK(work[t].handed != NULL, "malloc(%d) failed", OBJECT_SIZE);
  }
  for (int t = 0; t < threads; t++) pthread_create(&ids[t], NULL, worker, &work[t]);
  for (int t = 0; t < threads; t++) pthread_join(ids[t], NULL);
  long expected = (long)ITERATIONS * repetitions * OBJECT_SIZE;
  for (int t = 0; t < threads; t++) {
    BENCH_CHECK(work[t].written == expected, "thread %d saw %ld of %ld writes", t, work[t].written, expected);
  }
  printf("writes %ld\n", expected * threads);
  return 0;
}
