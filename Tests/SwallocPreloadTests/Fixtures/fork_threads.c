// Fork fixture: while worker threads allocate and free in a loop, the main thread forks repeatedly. Each child
// allocates, frees a block that a worker thread (absent in the child) allocated, runs a thread of its own that
// allocates, and exits normally; the parent checks that every child exited 0.
#include "fixture.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/wait.h>
#include <unistd.h>

enum { workerCount = 4, forkCount = 50, sharedSlotCount = 64 };

typedef struct {
  void *block;
  size_t byteCount;
  uint64_t tag;
} Shared;

/// Blocks the workers publish; a child takes one and frees it. Guarded by sharedLock.
static Shared shared[sharedSlotCount];
static pthread_mutex_t sharedLock = PTHREAD_MUTEX_INITIALIZER;
static atomic_bool stopRequested;

static void *runWorker(void *argument) {
  uint64_t random = 0x51ed2701u + (uint64_t)(uintptr_t)argument * 7777;
  void *held[16] = {0};
  size_t heldByteCount[16] = {0};
  uint64_t heldTag[16] = {0};
  while (!atomic_load_explicit(&stopRequested, memory_order_relaxed)) {
    uint64_t r = fixtureRandom(&random);
    size_t index = r % 16;
    if (held[index]) {
      fixtureVerify(held[index], heldByteCount[index], heldTag[index], "worker block");
      free(held[index]);
    }
    heldByteCount[index] = 1 + (r >> 8) % ((r >> 4) % 16 == 0 ? 200000 : 2000);
    heldTag[index] = r;
    held[index] = malloc(heldByteCount[index]);
    FIXTURE_CHECK(held[index] != NULL, "worker malloc(%zu) failed", heldByteCount[index]);
    fixtureFill(held[index], heldByteCount[index], r);

    if ((r >> 32) % 8 == 0) {
      Shared fresh = {.byteCount = 64 + (r >> 40) % 512, .tag = r ^ 0xfeed};
      fresh.block = malloc(fresh.byteCount);
      FIXTURE_CHECK(fresh.block != NULL, "worker malloc(%zu) failed", fresh.byteCount);
      fixtureFill(fresh.block, fresh.byteCount, fresh.tag);
      pthread_mutex_lock(&sharedLock);
      Shared old = shared[(r >> 16) % sharedSlotCount];
      shared[(r >> 16) % sharedSlotCount] = fresh;
      pthread_mutex_unlock(&sharedLock);
      if (old.block) {
        fixtureVerify(old.block, old.byteCount, old.tag, "shared block");
        free(old.block);
      }
    }
  }
  for (size_t i = 0; i < 16; i++) free(held[i]);
  return NULL;
}

static void *runChildThread(void *argument) {
  size_t byteCount = (size_t)(uintptr_t)argument;
  void *blocks[32];
  for (size_t i = 0; i < 32; i++) {
    blocks[i] = malloc(byteCount + i * 100);
    FIXTURE_CHECK(blocks[i] != NULL, "child thread malloc failed");
    fixtureFill(blocks[i], byteCount + i * 100, i);
  }
  for (size_t i = 0; i < 32; i++) {
    fixtureVerify(blocks[i], byteCount + i * 100, i, "child thread block");
    free(blocks[i]);
  }
  // Returned to the child's main thread, which frees it: a cross-thread free in the child.
  void *result = malloc(byteCount);
  FIXTURE_CHECK(result != NULL, "child thread malloc failed");
  fixtureFill(result, byteCount, 99);
  return result;
}

static _Noreturn void runChild(int index) {
  // A child that deadlocks in the allocator dies here instead of hanging the test until its kill timeout.
  alarm(60);
  size_t byteCount = 16 + (size_t)index * 1000;
  char *block = malloc(byteCount);
  FIXTURE_CHECK(block != NULL, "child malloc failed");
  fixtureFill(block, byteCount, 7);

  // A worker may have held the lock at the fork, and no thread in the child would ever release it: only try it.
  Shared taken = {0};
  if (pthread_mutex_trylock(&sharedLock) == 0) {
    for (size_t i = 0; i < sharedSlotCount && taken.block == NULL; i++) {
      taken = shared[i];
      shared[i].block = NULL;
    }
    pthread_mutex_unlock(&sharedLock);
  }
  if (taken.block) {
    fixtureVerify(taken.block, taken.byteCount, taken.tag, "block inherited from a worker");
    free(taken.block);
  }

  pthread_t thread;
  int error = pthread_create(&thread, NULL, runChildThread, (void *)(uintptr_t)byteCount);
  FIXTURE_CHECK(error == 0, "child pthread_create: %s", strerror(error));
  void *fromThread = NULL;
  pthread_join(thread, &fromThread);
  fixtureVerify(fromThread, byteCount, 99, "block from the child's thread");
  free(fromThread);
  fixtureVerify(block, byteCount, 7, "child block");
  block = realloc(block, byteCount * 3);
  FIXTURE_CHECK(block != NULL, "child realloc failed");
  fixtureVerify(block, byteCount, 7, "child block after realloc");
  free(block);
  exit(0);
}

int main(void) {
  // The test runner starts children with SIGALRM blocked (found by the torture tests): unblock it, with its
  // default action, so that the alarm in each child really ends a child that hangs.
  sigset_t alarmOnly;
  sigemptyset(&alarmOnly);
  sigaddset(&alarmOnly, SIGALRM);
  sigprocmask(SIG_UNBLOCK, &alarmOnly, NULL);
  signal(SIGALRM, SIG_DFL);
  fixtureReportSwalloc();
  printf("parent pid %d\n", (int)getpid());
  pthread_t workers[workerCount];
  for (size_t i = 0; i < workerCount; i++) {
    int error = pthread_create(&workers[i], NULL, runWorker, (void *)(uintptr_t)i);
    FIXTURE_CHECK(error == 0, "pthread_create: %s", strerror(error));
  }
  for (int i = 0; i < forkCount; i++) {
    // Flush first, or every child's exit() would print the parent's buffered stdout again.
    fflush(NULL);
    pid_t child = fork();
    FIXTURE_CHECK(child >= 0, "fork: %s", strerror(errno));
    if (child == 0) runChild(i);
    int status = 0;
    FIXTURE_CHECK(waitpid(child, &status, 0) == child, "waitpid: %s", strerror(errno));
    if (WIFSIGNALED(status)) fixtureFail("child %d was killed by signal %d", i, WTERMSIG(status));
    FIXTURE_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child %d exited with status %d", i,
                  WEXITSTATUS(status));
  }
  atomic_store(&stopRequested, true);
  for (size_t i = 0; i < workerCount; i++) pthread_join(workers[i], NULL);
  for (size_t i = 0; i < sharedSlotCount; i++) free(shared[i].block);
  printf("fork ok: %d children exited 0\n", forkCount);
  return 0;
}
