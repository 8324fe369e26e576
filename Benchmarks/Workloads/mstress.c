// mstress: thread churn after mimalloc's test-stress. Each iteration starts short-lived threads that
// allocate, free some of their own objects, swap objects with a shared transfer array, and exit leaving
// objects alive there, so later threads free memory whose owner is gone. Every object is checked on free.
// Usage: mstress SCALE THREADS
#include "bench.h"
#include <pthread.h>
#include <stdatomic.h>

enum { TRANSFER_SLOTS = 1000, ITERATIONS = 40 };

/// An object starts with its size, so any thread can check and free it.
typedef struct {
  size_t size;
} Header;

static _Atomic(Header *) transfer[TRANSFER_SLOTS];
static long stepsPerThread;

static Header *make(uint64_t *rng) {
  // Mostly 16..256 bytes; one in 100 up to 64 KiB; one in 10000 up to 1 MiB.
  uint64_t r = bench_rng(rng) % 10000;
  size_t size = r == 0 ? bench_rng_range(rng, 65536, 1 << 20)
              : r < 100 ? bench_rng_range(rng, 257, 65536)
                        : bench_rng_range(rng, 16, 256);
  Header *h = malloc(size);
  BENCH_CHECK(h != NULL, "malloc(%zu) failed", size);
  h->size = size;
  bench_tag_write((unsigned char *)h + sizeof(Header), size - sizeof(Header));
  return h;
}

static void destroy(Header *h) {
  if (h == NULL) return;
  bench_tag_check((unsigned char *)h + sizeof(Header), h->size - sizeof(Header));
  free(h);
}

static void *stress(void *arg) {
  uint64_t rng = (uint64_t)(uintptr_t)arg;
  size_t capacity = 64, count = 0;
  Header **local = malloc(capacity * sizeof(Header *));
  BENCH_CHECK(local != NULL, "malloc(local) failed");
  for (long step = 0; step < stepsPerThread; step++) {
    uint64_t r = bench_rng(&rng) % 100;
    if (r < 60 || count == 0) {
      if (count == capacity) {
        capacity *= 2;
        local = realloc(local, capacity * sizeof(Header *));
        BENCH_CHECK(local != NULL, "realloc(local) failed");
      }
      local[count++] = make(&rng);
    } else if (r < 85) {
      size_t i = bench_rng(&rng) % count;
      destroy(local[i]);
      local[i] = local[--count];
    } else {
      // Swap one of ours into the transfer array; whatever comes out (another thread's) is ours to free.
      size_t i = bench_rng(&rng) % count;
      Header *out = atomic_exchange(&transfer[bench_rng(&rng) % TRANSFER_SLOTS], local[i]);
      local[i] = local[--count];
      destroy(out);
    }
  }
  // Leave a quarter of what is left in the transfer array for threads that outlive this one.
  for (size_t i = 0; i < count; i++) {
    if (i % 4 == 0) {
      destroy(atomic_exchange(&transfer[bench_rng(&rng) % TRANSFER_SLOTS], local[i]));
    } else {
      destroy(local[i]);
    }
  }
  free(local);
  return NULL;
}

int main(int argc, char **argv) {
  double scale = bench_arg_double(argc, argv, 1, 1.0);
  int threads = (int)bench_arg_double(argc, argv, 2, 4);
  BENCH_CHECK(threads >= 1 && threads <= 64, "threads must be 1..64: %d", threads);
  bench_report_provider();

  stepsPerThread = bench_scaled(20e6, scale, 2000) / ((long)threads * ITERATIONS);
  pthread_t ids[64];
  for (int iteration = 0; iteration < ITERATIONS; iteration++) {
    for (int t = 0; t < threads; t++) {
      pthread_create(&ids[t], NULL, stress, (void *)(uintptr_t)(iteration * 64 + t + 1));
    }
    for (int t = 0; t < threads; t++) pthread_join(ids[t], NULL);
  }
  for (int i = 0; i < TRANSFER_SLOTS; i++) destroy(atomic_exchange(&transfer[i], NULL));
  printf("steps %ld\n", stepsPerThread * threads * ITERATIONS);
  return 0;
}
