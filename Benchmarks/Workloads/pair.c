// pair: the malloc/free microbenchmark counted under callgrind. `pair_loop` runs N same-thread
// malloc(32)/free pairs ("fixed"), or N pairs of sizes 16..512 allocated and freed in batches of 64
// ("mixed"). Objects of every size used stay live across the loop, as in a real program, so that no page
// empties on each free (an artefact that sends some allocators into a page-retire path every time).
// The driver runs it with two values of N and divides the difference in instructions by the
// difference in N, so start-up and first-call costs cancel out. Build with -fno-plt so each call goes
// straight to the allocator, with no PLT stub in between.
// Usage: pair fixed|mixed N
#include "bench.h"

enum { BATCH = 64 };

static size_t sizes[BATCH];

/// Keeps the compiler from pairing up and deleting malloc/free (GCC removes unused pairs).
static inline void escape(void *p) { __asm__ volatile("" : : "r"(p) : "memory"); }

/// Not static and never cloned, so that callgrind sees it under this exact name (--toggle-collect=pair_loop).
__attribute__((noinline, noclone)) long pair_loop(int mixed, long n);

long pair_loop(int mixed, long n) {
  long failures = 0;
  if (!mixed) {
    for (long i = 0; i < n; i++) {
      void *p = malloc(32);
      failures += p == NULL;
      escape(p);
      free(p);
    }
    return failures;
  }
  void *batch[BATCH];
  for (long done = 0; done < n; done += BATCH) {
    for (int i = 0; i < BATCH; i++) {
      batch[i] = malloc(sizes[i]);
      failures += batch[i] == NULL;
      escape(batch[i]);
    }
    for (int i = 0; i < BATCH; i++) free(batch[i]);
  }
  return failures;
}

int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "fixed";
  int mixed = strcmp(mode, "mixed") == 0;
  BENCH_CHECK(mixed || strcmp(mode, "fixed") == 0, "mode must be fixed or mixed: %s", mode);
  long n = argc > 2 ? atol(argv[2]) : 1000000;
  BENCH_CHECK(n > 0 && n % BATCH == 0, "N must be a positive multiple of %d", BATCH);
  bench_report_provider();
  uint64_t rng = 3;
  for (int i = 0; i < BATCH; i++) sizes[i] = bench_rng_range(&rng, 16, 512);
  static void *live[2 * BATCH];
  for (int i = 0; i < BATCH; i++) {
    live[i] = malloc(32);
    live[BATCH + i] = malloc(sizes[i]);
    BENCH_CHECK(live[i] != NULL && live[BATCH + i] != NULL, "malloc failed");
  }
  BENCH_CHECK(pair_loop(mixed, n) == 0, "malloc returned NULL");
  for (int i = 0; i < 2 * BATCH; i++) free(live[i]);
  printf("pairs %ld\n", n);
  return 0;
}
