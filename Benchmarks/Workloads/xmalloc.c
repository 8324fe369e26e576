// xmalloc: producer/consumer in the style of xmalloc-test. Half the threads allocate small objects and pass
// them in batches through a bounded queue; the other half check and free them, so every free is remote.
// Usage: xmalloc SCALE THREADS
#include "bench.h"
#include <pthread.h>

enum { BATCH = 128, QUEUE_CAPACITY = 64 };

typedef struct {
  int count;
  size_t sizes[BATCH];
  void *objects[BATCH];
} Batch;

static struct {
  pthread_mutex_t lock;
  pthread_cond_t notEmpty, notFull;
  Batch *slots[QUEUE_CAPACITY];
  int head, count, producersLeft;
} queue = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER, {0}, 0, 0, 0};

static long objectsPerProducer;

static void push(Batch *batch) {
  pthread_mutex_lock(&queue.lock);
  while (queue.count == QUEUE_CAPACITY) pthread_cond_wait(&queue.notFull, &queue.lock);
  queue.slots[(queue.head + queue.count) % QUEUE_CAPACITY] = batch;
  queue.count++;
  pthread_cond_signal(&queue.notEmpty);
  pthread_mutex_unlock(&queue.lock);
}

/// The next batch, or NULL once the queue is empty and every producer has finished.
static Batch *pop(void) {
  pthread_mutex_lock(&queue.lock);
  while (queue.count == 0 && queue.producersLeft > 0) pthread_cond_wait(&queue.notEmpty, &queue.lock);
  Batch *batch = NULL;
  if (queue.count > 0) {
    batch = queue.slots[queue.head];
    queue.head = (queue.head + 1) % QUEUE_CAPACITY;
    queue.count--;
    pthread_cond_signal(&queue.notFull);
  }
  pthread_mutex_unlock(&queue.lock);
  return batch;
}

static void *produce(void *arg) {
  uint64_t rng = 1000 + (uint64_t)(uintptr_t)arg;
  for (long made = 0; made < objectsPerProducer;) {
    Batch *batch = malloc(sizeof(Batch));
    BENCH_CHECK(batch != NULL, "malloc(Batch) failed");
    batch->count = 0;
    for (; batch->count < BATCH && made < objectsPerProducer; batch->count++, made++) {
      // Mostly 8..128 bytes; one in 16 up to 2 KiB.
      size_t size = (bench_rng(&rng) % 16 == 0) ? bench_rng_range(&rng, 129, 2048) : bench_rng_range(&rng, 8, 128);
      void *p = malloc(size);
      BENCH_CHECK(p != NULL, "malloc(%zu) failed", size);
      bench_tag_write(p, size);
      batch->sizes[batch->count] = size;
      batch->objects[batch->count] = p;
    }
    push(batch);
  }
  pthread_mutex_lock(&queue.lock);
  queue.producersLeft--;
  pthread_cond_broadcast(&queue.notEmpty);
  pthread_mutex_unlock(&queue.lock);
  return NULL;
}

static void *consume(void *arg) {
  long *freed = arg;
  Batch *batch;
  while ((batch = pop()) != NULL) {
    for (int i = 0; i < batch->count; i++) {
      bench_tag_check(batch->objects[i], batch->sizes[i]);
      free(batch->objects[i]);
    }
    *freed += batch->count;
    free(batch);
  }
  return NULL;
}

int main(int argc, char **argv) {
  double scale = bench_arg_double(argc, argv, 1, 1.0);
  int threads = (int)bench_arg_double(argc, argv, 2, 4);
  BENCH_CHECK(threads >= 2 && threads <= 64, "threads must be 2..64: %d", threads);
  bench_report_provider();

  int producers = threads / 2, consumers = threads - producers;
  // The same total work for every thread count, so the three variants can be compared with each other.
  objectsPerProducer = bench_scaled(24e6, scale, 1000) / producers;
  queue.producersLeft = producers;
  pthread_t ids[64];
  long freed[64] = {0};
  for (int i = 0; i < producers; i++) pthread_create(&ids[i], NULL, produce, (void *)(uintptr_t)i);
  for (int i = 0; i < consumers; i++) pthread_create(&ids[producers + i], NULL, consume, &freed[i]);
  long total = 0;
  for (int i = 0; i < threads; i++) pthread_join(ids[i], NULL);
  for (int i = 0; i < consumers; i++) total += freed[i];
  BENCH_CHECK(total == objectsPerProducer * producers, "freed %ld of %ld objects", total,
              objectsPerProducer * producers);
  printf("objects %ld\n", total);
  return 0;
}
