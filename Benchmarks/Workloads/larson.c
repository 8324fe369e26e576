// larson: server simulation after Larson & Krishnan. A shared array of slots is split among worker threads;
// each worker replaces random slots of its part with new objects of mixed sizes. Workers run in rounds and
// each round's threads are new, so they free what the previous round's (exited) threads allocated; the
// first round frees what the main thread allocated.
// Usage: larson SCALE THREADS
#include "bench.h"
#include <pthread.h>

enum { SLOTS_PER_THREAD = 4000, ROUNDS = 8 };

typedef struct {
  void *p;
  size_t size;
} Slot;

static Slot *slots;
static long replacementsPerRound;

static size_t pick_size(uint64_t *rng) {
  // Mostly 8..1000 bytes (larson-sized); one in 64 is 1..16 KiB.
  return (bench_rng(rng) % 64 == 0) ? bench_rng_range(rng, 1024, 16384) : bench_rng_range(rng, 8, 1000);
}

static void fill_slot(Slot *slot, uint64_t *rng) {
  slot->size = pick_size(rng);
  slot->p = malloc(slot->size);
  BENCH_CHECK(slot->p != NULL, "malloc(%zu) failed", slot->size);
  bench_tag_write(slot->p, slot->size);
}

typedef struct {
  Slot *first;
  uint64_t seed;
} Work;

static void *worker(void *arg) {
  Work *work = arg;
  uint64_t rng = work->seed;
  for (long i = 0; i < replacementsPerRound; i++) {
    Slot *slot = &work->first[bench_rng(&rng) % SLOTS_PER_THREAD];
    bench_tag_check(slot->p, slot->size);
    free(slot->p);
    fill_slot(slot, &rng);
  }
  return NULL;
}

int main(int argc, char **argv) {
  double scale = bench_arg_double(argc, argv, 1, 1.0);
  int threads = (int)bench_arg_double(argc, argv, 2, 4);
  BENCH_CHECK(threads >= 1 && threads <= 64, "threads must be 1..64: %d", threads);
  bench_report_provider();

  replacementsPerRound = bench_scaled(60e6, scale, 1000) / ((long)threads * ROUNDS);
  slots = calloc((size_t)threads * SLOTS_PER_THREAD, sizeof(Slot));
  BENCH_CHECK(slots != NULL, "calloc(slots) failed");
  uint64_t rng = 5;
  for (long i = 0; i < (long)threads * SLOTS_PER_THREAD; i++) fill_slot(&slots[i], &rng);

  pthread_t ids[64];
  Work work[64];
  for (int round = 0; round < ROUNDS; round++) {
    for (int t = 0; t < threads; t++) {
      work[t] = (Work){&slots[(long)t * SLOTS_PER_THREAD], (uint64_t)(round * 64 + t + 1)};
      pthread_create(&ids[t], NULL, worker, &work[t]);
    }
    for (int t = 0; t < threads; t++) pthread_join(ids[t], NULL);
  }
  for (long i = 0; i < (long)threads * SLOTS_PER_THREAD; i++) {
    bench_tag_check(slots[i].p, slots[i].size);
    free(slots[i].p);
  }
  free(slots);
  printf("replacements %ld\n", replacementsPerRound * threads * ROUNDS);
  return 0;
}
