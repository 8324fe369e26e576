// memreturn: how much memory a drained heap gives back. Allocates SCALE GiB of requested bytes in small
// objects (16..256 B), frees them all, waits past the purge delay (making a few calls in the middle and at
// the end, as a live program would), then prints its resident set as `rss_after_free_kib N`.
// The pointer table is mmap'ed directly so that it is not part of the heap being measured.
// Usage: memreturn SCALE SLEEP_MS
#include "bench.h"
#include <sys/mman.h>

/// A few allocator calls: lets allocators that purge lazily, on their next call, do so.
static void tick(void) {
  for (int i = 0; i < 100; i++) {
    void *p = malloc(64);
    BENCH_CHECK(p != NULL, "malloc(64) failed");
    *(volatile char *)p = 1;
    free(p);
  }
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

int main(int argc, char **argv) {
  double scale = bench_arg_double(argc, argv, 1, 1.0);
  long sleepMs = (long)bench_arg_double(argc, argv, 2, 1500);
  bench_report_provider();
  long rssBefore = bench_rss_kib();

  size_t targetBytes = (size_t)(scale * 1073741824.0);
  size_t capacity = targetBytes / 16 + 1;
  void **table = mmap(NULL, capacity * sizeof(void *), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  BENCH_CHECK(table != MAP_FAILED, "mmap of the pointer table failed");

  uint64_t rng = 1;
  size_t count = 0, requested = 0;
  while (requested < targetBytes) {
    size_t size = bench_rng_range(&rng, 16, 256);
    void *p = malloc(size);
    BENCH_CHECK(p != NULL, "malloc(%zu) failed after %zu bytes", size, requested);
    // One write per object, so every page of the heap is resident.
    *(uint64_t *)p = (uint64_t)size;
    table[count++] = p;
    requested += size;
  }
  long rssFull = bench_rss_kib();
  // Replaying the size sequence checks every object still holds the size it was given.
  uint64_t replay = 1;
  for (size_t i = 0; i < count; i++) {
    size_t size = bench_rng_range(&replay, 16, 256);
    BENCH_CHECK(*(uint64_t *)table[i] == size, "object %zu was overwritten", i);
    free(table[i]);
  }
  munmap(table, capacity * sizeof(void *));

  sleep_ms(sleepMs / 2);
  tick();
  sleep_ms(sleepMs - sleepMs / 2);
  tick();
  long rssAfter = bench_rss_kib();

  printf("objects %zu\n", count);
  printf("requested_kib %zu\n", requested / 1024);
  printf("rss_before_kib %ld\n", rssBefore);
  printf("rss_full_kib %ld\n", rssFull);
  printf("rss_after_free_kib %ld\n", rssAfter);
  return 0;
}
