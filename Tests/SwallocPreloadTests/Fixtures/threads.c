// Threaded C fixture: a ring of threads hands blocks to its neighbour through mutex-protected queues (every
// free is cross-thread), then short-lived threads leave blocks behind that other threads resize and free
// after their allocating thread has exited. Every block's contents are checked before it is freed.
#include "fixture.h"

#include <pthread.h>

enum {
  ringThreadCount = 12, roundCount = 2500, batchCount = 4,
  orphanThreadCount = 8, orphansPerThread = 2000,
  maximumThreadCount = ringThreadCount > orphanThreadCount ? ringThreadCount : orphanThreadCount,
};

typedef struct Message {
  struct Message *next;
  void *block;
  size_t byteCount;
  uint64_t tag;
} Message;

typedef struct {
  pthread_mutex_t lock;
  pthread_cond_t nonEmpty;
  Message *head;
  Message *tail;
} Queue;

static Queue queues[ringThreadCount];

static void push(Queue *queue, Message *message) {
  message->next = NULL;
  pthread_mutex_lock(&queue->lock);
  if (queue->tail) queue->tail->next = message;
  else queue->head = message;
  queue->tail = message;
  pthread_cond_signal(&queue->nonEmpty);
  pthread_mutex_unlock(&queue->lock);
}

static Message *pop(Queue *queue) {
  pthread_mutex_lock(&queue->lock);
  while (queue->head == NULL) pthread_cond_wait(&queue->nonEmpty, &queue->lock);
  Message *message = queue->head;
  queue->head = message->next;
  if (queue->head == NULL) queue->tail = NULL;
  pthread_mutex_unlock(&queue->lock);
  return message;
}

/// Mostly small sizes, some up to 64 KiB, a few up to 512 KiB.
static size_t randomByteCount(uint64_t *random) {
  uint64_t r = fixtureRandom(random);
  switch (r % 16) {
  case 0: return 1 + (size_t)(r >> 8) % (64 * 1024);
  case 1:
    if ((r >> 4) % 8 == 0) return 1 + (size_t)(r >> 8) % (512 * 1024);
    return 1 + (size_t)(r >> 8) % 4096;
  default: return 1 + (size_t)(r >> 8) % 256;
  }
}

static void *runRingThread(void *argument) {
  size_t index = (size_t)(uintptr_t)argument;
  uint64_t random = 0x1234567 + index * 7919;
  Queue *next = &queues[(index + 1) % ringThreadCount];
  Queue *mine = &queues[index];
  for (size_t round = 0; round < roundCount; round++) {
    for (size_t i = 0; i < batchCount; i++) {
      Message *message = malloc(sizeof *message);
      FIXTURE_CHECK(message != NULL, "malloc of a message failed");
      message->byteCount = randomByteCount(&random);
      message->block = malloc(message->byteCount);
      FIXTURE_CHECK(message->block != NULL, "malloc(%zu) failed", message->byteCount);
      message->tag = fixtureRandom(&random);
      fixtureFill(message->block, message->byteCount, message->tag);
      push(next, message);
    }
    for (size_t i = 0; i < batchCount; i++) {
      Message *message = pop(mine);
      fixtureVerify(message->block, message->byteCount, message->tag, "ring block");
      free(message->block);
      free(message);
    }
  }
  return NULL;
}

typedef struct {
  void *block;
  size_t byteCount;
  uint64_t tag;
} Orphan;

static Orphan orphans[orphanThreadCount][orphansPerThread];

static void *runOrphanProducer(void *argument) {
  size_t index = (size_t)(uintptr_t)argument;
  uint64_t random = 0xabcdef + index * 104729;
  for (size_t i = 0; i < orphansPerThread; i++) {
    Orphan *orphan = &orphans[index][i];
    orphan->byteCount = randomByteCount(&random);
    orphan->block = malloc(orphan->byteCount);
    FIXTURE_CHECK(orphan->block != NULL, "malloc(%zu) failed", orphan->byteCount);
    orphan->tag = fixtureRandom(&random);
    fixtureFill(orphan->block, orphan->byteCount, orphan->tag);
  }
  return NULL;
}

/// Frees the orphans of producer `index + 1` (whose thread has exited): half directly, half after a realloc.
static void *runOrphanConsumer(void *argument) {
  size_t index = ((size_t)(uintptr_t)argument + 1) % orphanThreadCount;
  for (size_t i = 0; i < orphansPerThread; i++) {
    Orphan *orphan = &orphans[index][i];
    fixtureVerify(orphan->block, orphan->byteCount, orphan->tag, "orphan block");
    if (i % 2 == 0) {
      size_t newByteCount = orphan->byteCount * 2 + 1;
      unsigned char *grown = realloc(orphan->block, newByteCount);
      FIXTURE_CHECK(grown != NULL, "realloc(%zu) failed", newByteCount);
      fixtureVerify(grown, orphan->byteCount, orphan->tag, "orphan block after realloc");
      free(grown);
    } else {
      free(orphan->block);
    }
  }
  return NULL;
}

static void runThreads(size_t count, void *(*body)(void *)) {
  pthread_t threads[maximumThreadCount];
  for (size_t i = 0; i < count; i++) {
    int error = pthread_create(&threads[i], NULL, body, (void *)(uintptr_t)i);
    FIXTURE_CHECK(error == 0, "pthread_create: %s", strerror(error));
  }
  for (size_t i = 0; i < count; i++) pthread_join(threads[i], NULL);
}

int main(void) {
  fixtureReportSwalloc();
  for (size_t i = 0; i < ringThreadCount; i++) {
    pthread_mutex_init(&queues[i].lock, NULL);
    pthread_cond_init(&queues[i].nonEmpty, NULL);
  }
  runThreads(ringThreadCount, runRingThread);
  for (size_t i = 0; i < ringThreadCount; i++)
    FIXTURE_CHECK(queues[i].head == NULL, "queue %zu is not empty at the end", i);

  runThreads(orphanThreadCount, runOrphanProducer);
  runThreads(orphanThreadCount, runOrphanConsumer);

  printf("threads ok: %d ring threads handed over %d blocks, %d blocks outlived their threads\n", ringThreadCount,
         ringThreadCount * roundCount * batchCount, orphanThreadCount * orphansPerThread);
  return 0;
}
