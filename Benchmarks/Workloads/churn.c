// churn: one thread, small objects of random sizes 8 B..1 KiB, freed in LIFO, FIFO or random order.
// The live set random-walks around a target count, so allocation and free interleave as in a real program.
// Usage: churn SCALE lifo|fifo|random
#include "bench.h"

enum { TARGET_LIVE = 10000, CAPACITY = 1 << 16, MAX_RUN = 64 };

typedef struct {
  void *p;
  size_t size;
} Object;

static Object objects[CAPACITY];

static Object allocate(uint64_t *rng) {
  size_t size = bench_rng_range(rng, 8, 1024);
  void *p = malloc(size);
  BENCH_CHECK(p != NULL, "malloc(%zu) failed", size);
  bench_tag_write(p, size);
  return (Object){p, size};
}

static void release(Object object) {
  bench_tag_check(object.p, object.size);
  free(object.p);
}

int main(int argc, char **argv) {
  double scale = bench_arg_double(argc, argv, 1, 1.0);
  const char *order = argc > 2 ? argv[2] : "random";
  int lifo = strcmp(order, "lifo") == 0, fifo = strcmp(order, "fifo") == 0;
  BENCH_CHECK(lifo || fifo || strcmp(order, "random") == 0, "order must be lifo, fifo or random: %s", order);
  bench_report_provider();

  long operations = bench_scaled(100e6, scale, 1000);
  uint64_t rng = 42;
  // The live objects are objects[head ..< head + count] (indices mod CAPACITY): a stack for LIFO, a queue
  // for FIFO, and a dense array with swap-remove for random order.
  size_t head = 0, count = 0;
  long allocated = 0, freed = 0;
  while (allocated + freed < operations) {
    size_t run = bench_rng_range(&rng, 1, MAX_RUN);
    int grow = (bench_rng(&rng) % 100) < (count < TARGET_LIVE ? 60 : 40);
    for (size_t i = 0; i < run; i++) {
      if (grow && count < CAPACITY) {
        objects[(head + count) % CAPACITY] = allocate(&rng);
        count++;
        allocated++;
      } else if (!grow && count > 0) {
        size_t index;
        if (lifo) {
          index = (head + count - 1) % CAPACITY;
        } else if (fifo) {
          index = head;
          head = (head + 1) % CAPACITY;
        } else {
          index = (head + bench_rng(&rng) % count) % CAPACITY;
        }
        release(objects[index]);
        if (!lifo && !fifo) objects[index] = objects[(head + count - 1) % CAPACITY];
        count--;
        freed++;
      }
    }
  }
  while (count > 0) {
    release(objects[head]);
    head = (head + 1) % CAPACITY;
    count--;
    freed++;
  }
  BENCH_CHECK(allocated == freed, "allocated %ld but freed %ld", allocated, freed);
  printf("operations %ld\n", allocated + freed);
  return 0;
}
