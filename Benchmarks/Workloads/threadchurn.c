// threadchurn: rounds of short-lived threads, after the pattern of mimalloc's test-stress (as mimalloc-bench
// runs it: 50 allocations-scale, 25 rounds). Each thread callocs objects of 1..16 words (1 % of them 100x,
// 0.1 % 1000x, 0.01 % 10000x: up to 1.3 MB), writes every word, frees two in three soon, keeps a retained set to
// its end, and swaps objects with a transfer array shared by all threads, so later threads free objects whose
// owner has exited. Between rounds the main thread frees half of the transfer array. Every object is checked
// (its words) before it is freed. A thread's exit hands its warm pages to the next one, or throws them away:
// this is the workload that shows which.
// Usage: threadchurn SCALE THREADS
#include "bench.h"
#include <pthread.h>
#include <stdatomic.h>

enum { TRANSFERS = 1000, ROUNDS = 25, BASE_SCALE = 50 };

static _Atomic(uintptr_t *) transfer[TRANSFERS];
static long allocationScale;
static const uintptr_t cookie = 0xbf58476d1ce4e5b9ull;

static int chance(unsigned percent, uint64_t *rng) { return bench_rng(rng) % 100 < percent; }

/// An object of `items` words (the first word is the count), every word written.
static uintptr_t *allocateItems(size_t items, uint64_t *rng) {
  if (chance(1, rng)) {
    if (chance(1, rng)) items *= 10000;
    else if (chance(10, rng)) items *= 1000;
    else items *= 100;
  }
  if (items < 2) items = 2;
  uintptr_t *p = calloc(items, sizeof(uintptr_t));
  BENCH_CHECK(p != NULL, "calloc(%zu, 8) failed", items);
  p[0] = items;
  for (size_t i = 1; i < items; i++) {
    BENCH_CHECK(p[i] == 0, "calloc returned a word that is not zero");
    p[i] = (items - i) ^ cookie;
  }
  return p;
}

static void freeItems(uintptr_t *p) {
  if (p == NULL) return;
  size_t items = p[0];
  for (size_t i = 1; i < items; i++) {
    BENCH_CHECK(p[i] == ((items - i) ^ cookie), "word %zu of a %zu-word object was overwritten", i, items);
  }
  free(p);
}

static void *stress(void *argument) {
  uintptr_t id = (uintptr_t)argument;
  uint64_t rng = (id + 1) * 0x9e3779b97f4a7c15ull;
  // Some threads do more work than others (1x..8x).
  long allocations = 100 * allocationScale * (long)(id % 8 + 1);
  long retain = allocations / 2;
  size_t dataCapacity = 0, dataCount = 0;
  uintptr_t **data = NULL;
  uintptr_t **retained = calloc((size_t)retain + 1, sizeof(uintptr_t *));
  BENCH_CHECK(retained != NULL, "calloc(retained) failed");
  size_t retainedCount = 0;
  while (allocations > 0 || retain > 0) {
    if (retain == 0 || (chance(50, &rng) && allocations > 0)) {
      allocations--;
      if (dataCount == dataCapacity) {
        dataCapacity += 100000;
        data = realloc(data, dataCapacity * sizeof(uintptr_t *));
        BENCH_CHECK(data != NULL, "realloc(data) failed");
      }
      data[dataCount++] = allocateItems((size_t)1 << (bench_rng(&rng) % 5), &rng);
    } else {
      retained[retainedCount++] = allocateItems((size_t)1 << (bench_rng(&rng) % 7), &rng);
      retain--;
    }
    if (chance(66, &rng) && dataCount > 0) {
      size_t i = bench_rng(&rng) % dataCount;
      freeItems(data[i]);
      data[i] = NULL;
    }
    if (chance(25, &rng) && dataCount > 0) {
      size_t i = bench_rng(&rng) % dataCount;
      data[i] = atomic_exchange(&transfer[bench_rng(&rng) % TRANSFERS], data[i]);
    }
  }
  for (size_t i = 0; i < retainedCount; i++) freeItems(retained[i]);
  for (size_t i = 0; i < dataCount; i++) freeItems(data[i]);
  free(retained);
  free(data);
  return NULL;
}

int main(int argc, char **argv) {
  double scale = bench_arg_double(argc, argv, 1, 1.0);
  int threads = (int)bench_arg_double(argc, argv, 2, 4);
  BENCH_CHECK(threads >= 1 && threads <= 256, "THREADS must be 1..256");
  bench_report_provider();
  allocationScale = bench_scaled(BASE_SCALE, scale, 1);
  uint64_t rng = 42;
  pthread_t handles[256];
  for (int round = 0; round < ROUNDS; round++) {
    for (int t = 0; t < threads; t++) {
      uintptr_t id = (uintptr_t)(round * threads + t);
      BENCH_CHECK(pthread_create(&handles[t], NULL, stress, (void *)id) == 0, "pthread_create failed");
    }
    for (int t = 0; t < threads; t++) pthread_join(handles[t], NULL);
    for (int i = 0; i < TRANSFERS; i++) {
      if (chance(50, &rng)) freeItems(atomic_exchange(&transfer[i], NULL));
    }
  }
  for (int i = 0; i < TRANSFERS; i++) freeItems(atomic_exchange(&transfer[i], NULL));
  printf("rounds %d threads %d\n", ROUNDS, threads);
  return 0;
}
