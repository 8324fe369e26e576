// Torture fixture: bounded runs of the allocator's hardest paths, one subcommand each. Every block carries a
// checked pattern (torture.h); every count printed on the final `ok` line is deterministic.
//   fork-storm          1000 forks, 4 at a time, while 4 threads malloc, realloc, free and trade blocks
//   thread-storm        2000 short-lived threads in waves of 16 leave blocks that later threads free
//   dlopen <plugin.so>  200 dlopen/dlclose rounds; blocks of the plugin outlive it
//   signal-fork timer   200 forks from a SIGALRM handler (setitimer) that interrupts malloc/realloc/free in the
//                       only thread; the child allocates inside the handler
//   signal-fork thread  the same with SIGUSR1 sent by pthread_kill to an allocating thread
#include "torture.h"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>

/// Describes a child's wait status for a failure message.
static void describeStatus(int status, unsigned alarmSeconds, char *text, size_t capacity) {
  if (WIFEXITED(status)) {
    snprintf(text, capacity, "exited with status %d", WEXITSTATUS(status));
  } else if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM) {
    snprintf(text, capacity, "killed by SIGALRM: it hung for %u s", alarmSeconds);
  } else if (WIFSIGNALED(status)) {
    snprintf(text, capacity, "killed by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
  } else {
    snprintf(text, capacity, "wait status %#x", status);
  }
}

static bool exitedZero(int status) { return WIFEXITED(status) && WEXITSTATUS(status) == 0; }

static void sleepMicroseconds(long microseconds) {
  struct timespec duration = {.tv_sec = microseconds / 1000000, .tv_nsec = microseconds % 1000000 * 1000};
  while (nanosleep(&duration, &duration) != 0 && errno == EINTR) continue;
}

static double secondsNow(void) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

// MARK: - fork-storm

enum {
  stormWorkerCount = 4, stormForkCount = 1000, stormBatchCount = 4, stormSharedCount = 256, stormHeldCount = 32,
  stormChildBlockCount = 300, stormChildThreadBlockCount = 64, stormChildAlarmSeconds = 20,
};

/// Blocks the workers trade (atomic_exchange); a child takes a few that threads absent in it allocated.
static _Atomic(void *) stormShared[stormSharedCount];
static atomic_bool stormStopRequested;

/// Malloc, realloc, free and trades through stormShared, 16 B to 256 KiB, until stopped.
static void *runStormWorker(void *argument) {
  uint64_t random = 0x9e3779b97f4a7c15ull + (uint64_t)(uintptr_t)argument * 0x51ed27;
  void *held[stormHeldCount] = {0};
  while (!atomic_load_explicit(&stormStopRequested, memory_order_relaxed)) {
    uint64_t r = fixtureRandom(&random);
    void **slot = &held[r % stormHeldCount];
    size_t byteCount = tortureRandomByteCount(&random, 256 * 1024);
    switch ((r >> 8) % 8) {
    case 0: case 1: case 2: case 3:
      tortureRelease(*slot, "worker block");
      *slot = tortureAllocate(byteCount, r, "worker block");
      break;
    case 4: case 5:
      *slot = *slot ? tortureResize(*slot, byteCount, r, "worker block") : tortureAllocate(byteCount, r, "worker");
      break;
    default: {
      void *fresh = tortureAllocate(byteCount, r, "traded block");
      void *old = atomic_exchange(&stormShared[(r >> 16) % stormSharedCount], fresh);
      tortureRelease(old, "traded block from another thread");
    }
    }
  }
  for (size_t i = 0; i < stormHeldCount; i++) tortureRelease(held[i], "worker block at the end");
  return NULL;
}

/// Allocates blocks in the child's new thread; frees one block the child's main thread allocated; returns its
/// blocks for the main thread to check and free.
static void *runStormChildThread(void *argument) {
  void **fromMain = (void **)argument;
  tortureRelease(*fromMain, "child main-thread block freed by the child's thread");
  *fromMain = NULL;
  void **blocks = malloc(stormChildThreadBlockCount * sizeof(void *));
  TORTURE_CHECK(blocks != NULL, "child thread: malloc of the array failed");
  uint64_t random = 0x7777;
  for (size_t i = 0; i < stormChildThreadBlockCount; i++) {
    size_t byteCount = i % 16 == 15 ? (1u << 20) + 4096 * i : tortureRandomByteCount(&random, 64 * 1024);
    blocks[i] = tortureAllocate(byteCount, 1000 + i, "child thread block");
  }
  return blocks;
}

static _Noreturn void runStormChild(int index) {
  tortureInChild = 1;
  // A child that deadlocks in the allocator dies of SIGALRM, which the parent reports.
  alarm(stormChildAlarmSeconds);
  // Blocks from worker threads that do not exist in the child.
  for (size_t i = 0; i < 4; i++) {
    void *taken = atomic_exchange(&stormShared[((size_t)index * 4 + i) % stormSharedCount], NULL);
    tortureRelease(taken, "traded block inherited from a worker");
  }
  uint64_t random = 0xc0ffee + (uint64_t)index * 131;
  void *blocks[stormChildBlockCount];
  for (size_t i = 0; i < stormChildBlockCount; i++) {
    size_t byteCount = i % 50 == 49 ? (1u << 20) + (size_t)(fixtureRandom(&random) % (1u << 20))
                                    : tortureRandomByteCount(&random, 256 * 1024);
    blocks[i] = tortureAllocate(byteCount, (uint64_t)index << 20 | i, "child block");
  }
  for (size_t i = 0; i < stormChildBlockCount; i += 2) tortureRelease(blocks[i], "child block");
  for (size_t i = 1; i < stormChildBlockCount; i += 4)
    blocks[i] = tortureResize(blocks[i], tortureRandomByteCount(&random, 2 << 20), i, "child block");

  void *forThread = tortureAllocate(3000, 42, "child block for the thread");
  pthread_t thread;
  int error = pthread_create(&thread, NULL, runStormChildThread, &forThread);
  TORTURE_CHECK(error == 0, "child %d: pthread_create: %s", index, strerror(error));
  void *result = NULL;
  error = pthread_join(thread, &result);
  TORTURE_CHECK(error == 0 && result != NULL && forThread == NULL, "child %d: pthread_join: %s", index,
                strerror(error));
  void **fromThread = result;
  for (size_t i = 0; i < stormChildThreadBlockCount; i++)
    TORTURE_CHECK(((TortureHeader *)fromThread[i])->tag == 1000 + i, "child %d: thread block %zu has tag %llu",
                  index, i, (unsigned long long)((TortureHeader *)fromThread[i])->tag);
  for (size_t i = 0; i < stormChildThreadBlockCount; i++) tortureRelease(fromThread[i], "child thread block");
  free(result);
  for (size_t i = 1; i < stormChildBlockCount; i += 2) tortureRelease(blocks[i], "child block");
  _exit(0);
}

static int forkStorm(void) {
  pthread_t workers[stormWorkerCount];
  for (size_t i = 0; i < stormWorkerCount; i++) {
    int error = pthread_create(&workers[i], NULL, runStormWorker, (void *)(uintptr_t)i);
    TORTURE_CHECK(error == 0, "pthread_create: %s", strerror(error));
  }
  int failedCount = 0;
  for (int first = 0; first < stormForkCount; first += stormBatchCount) {
    pid_t children[stormBatchCount];
    // Flush first, or a child's buffered copy of stdout could be written twice.
    fflush(NULL);
    for (int i = 0; i < stormBatchCount; i++) {
      children[i] = fork();
      TORTURE_CHECK(children[i] >= 0, "fork %d: %s", first + i, strerror(errno));
      if (children[i] == 0) runStormChild(first + i);
    }
    for (int i = 0; i < stormBatchCount; i++) {
      int status = 0;
      TORTURE_CHECK(waitpid(children[i], &status, 0) == children[i], "waitpid: %s", strerror(errno));
      if (exitedZero(status)) continue;
      char text[120];
      describeStatus(status, stormChildAlarmSeconds, text, sizeof text);
      if (failedCount++ < 10) fprintf(stderr, "fork-storm: child %d (pid %d) %s\n", first + i, children[i], text);
    }
  }
  atomic_store(&stormStopRequested, true);
  for (size_t i = 0; i < stormWorkerCount; i++) pthread_join(workers[i], NULL);
  for (size_t i = 0; i < stormSharedCount; i++) tortureRelease(stormShared[i], "traded block at the end");
  TORTURE_CHECK(failedCount == 0, "fork-storm: %d of %d children failed", failedCount, stormForkCount);
  printf("fork-storm ok: %d children exited 0\n", stormForkCount);
  return 0;
}

// MARK: - thread-storm

enum {
  threadStormCount = 2000, threadWaveCount = 16, threadBlockCount = 64, threadLeftCount = 8,
  threadSlotCount = 512,
};

/// Blocks threads leave behind; a later thread (or main at the end) checks and frees them.
static _Atomic(void *) threadSlots[threadSlotCount];
static atomic_long threadVerifiedCount;
static atomic_long threadHandedOverCount;
/// Threads of the current wave that have finished (the detached ones cannot be joined).
static atomic_int threadFinishedCount;

static void *runStormThread(void *argument) {
  size_t index = (size_t)(uintptr_t)argument;
  uint64_t random = 0x2545f4914f6cdd1dull ^ (uint64_t)(index + 1) * 0x9e3779b97f4a7c15ull;
  void *blocks[threadBlockCount];
  for (size_t i = 0; i < threadBlockCount; i++)
    blocks[i] = tortureAllocate(tortureRandomByteCount(&random, 300 * 1024), index << 8 | i, "storm block");
  for (size_t i = 0; i < threadBlockCount; i += 8)
    blocks[i] = tortureResize(blocks[i], tortureRandomByteCount(&random, 64 * 1024), index << 8 | i | 128,
                              "storm block");
  // Leave threadLeftCount blocks in the slots; free what was there (mostly blocks of exited threads).
  for (size_t i = 0; i < threadLeftCount; i++) {
    void *old = atomic_exchange(&threadSlots[fixtureRandom(&random) % threadSlotCount], blocks[i]);
    blocks[i] = NULL;
    if (old) {
      tortureRelease(old, "block left by another thread");
      atomic_fetch_add(&threadVerifiedCount, 1);
      atomic_fetch_add(&threadHandedOverCount, 1);
    }
  }
  for (size_t i = threadLeftCount; i < threadBlockCount; i++) {
    tortureRelease(blocks[i], "storm block");
    atomic_fetch_add(&threadVerifiedCount, 1);
  }
  atomic_fetch_add(&threadFinishedCount, 1);
  return NULL;
}

static int threadStorm(void) {
  pthread_attr_t detached;
  pthread_attr_init(&detached);
  pthread_attr_setdetachstate(&detached, PTHREAD_CREATE_DETACHED);
  for (int first = 0; first < threadStormCount; first += threadWaveCount) {
    atomic_store(&threadFinishedCount, 0);
    pthread_t threads[threadWaveCount];
    for (int i = 0; i < threadWaveCount; i++) {
      // Every fourth thread is detached: it ends without a join.
      int error = pthread_create(&threads[i], i % 4 == 3 ? &detached : NULL, runStormThread,
                                 (void *)(uintptr_t)(first + i));
      TORTURE_CHECK(error == 0, "pthread_create of thread %d: %s", first + i, strerror(error));
    }
    for (int i = 0; i < threadWaveCount; i++)
      if (i % 4 != 3) pthread_join(threads[i], NULL);
    while (atomic_load(&threadFinishedCount) < threadWaveCount) sched_yield();
  }
  pthread_attr_destroy(&detached);
  long left = 0;
  for (size_t i = 0; i < threadSlotCount; i++) {
    void *block = atomic_exchange(&threadSlots[i], NULL);
    if (block == NULL) continue;
    tortureRelease(block, "block left in a slot");
    left++;
  }
  long verified = atomic_load(&threadVerifiedCount) + left;
  long handedOver = atomic_load(&threadHandedOverCount);
  long expected = (long)threadStormCount * threadBlockCount;
  TORTURE_CHECK(verified == expected, "thread-storm: %ld blocks verified, expected %ld", verified, expected);
  TORTURE_CHECK(handedOver + left == (long)threadStormCount * threadLeftCount,
                "thread-storm: %ld handed over + %ld left != %d", handedOver, left,
                threadStormCount * threadLeftCount);
  printf("thread-storm ok: %d threads, %ld blocks verified, %ld handed over between threads\n", threadStormCount,
         verified, handedOver);
  return 0;
}

// MARK: - dlopen

enum { dlopenRoundCount = 200, dlopenHandOutCount = 4 };

typedef uint64_t TortureWork(uint64_t);
typedef void *TortureHandOut(size_t, uint64_t);
typedef void TortureTakeIn(void *);
typedef void TortureSetOutbox(void **, uint64_t);
typedef int TortureLoadCount(void);

/// A block the plugin allocated in round `round`, freed by the program in round `releaseRound`: before that
/// round's dlclose, or after it when `afterClose`.
typedef struct {
  void *block;
  int round;
  int releaseRound;
  bool afterClose;
} Pending;

static TortureWork *pluginWork;

static void *runPluginThread(void *argument) {
  uint64_t seed = (uint64_t)(uintptr_t)argument;
  TORTURE_CHECK(pluginWork(seed) == pluginWork(seed), "tortureWork is not deterministic in a thread");
  return NULL;
}

static void *resolve(void *handle, const char *name) {
  void *symbol = dlsym(handle, name);
  TORTURE_CHECK(symbol != NULL, "dlsym(%s): %s", name, dlerror());
  return symbol;
}

static int dlopenLoop(const char *path) {
  Pending pending[dlopenRoundCount * dlopenHandOutCount] = {{0}};
  int pendingCount = 0;
  int outlivedCount = 0;
  for (int round = 0; round < dlopenRoundCount; round++) {
    void *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    TORTURE_CHECK(handle != NULL, "round %d: dlopen: %s", round, dlerror());
    pluginWork = (TortureWork *)resolve(handle, "tortureWork");
    TortureHandOut *handOut = (TortureHandOut *)resolve(handle, "tortureHandOut");
    TortureTakeIn *takeIn = (TortureTakeIn *)resolve(handle, "tortureTakeIn");
    TortureSetOutbox *setOutbox = (TortureSetOutbox *)resolve(handle, "tortureSetOutbox");
    TortureLoadCount *loadCount = (TortureLoadCount *)resolve(handle, "tortureLoadCount");
    // A fresh copy each round: the previous dlclose unloaded the plugin, so its constructor ran once more.
    TORTURE_CHECK(loadCount() == 1, "round %d: the plugin's constructor ran %d times in this copy", round,
                  loadCount());

    void *outbox = NULL;
    setOutbox(&outbox, 5000 + (uint64_t)round);
    TORTURE_CHECK(pluginWork((uint64_t)round) == pluginWork((uint64_t)round), "tortureWork is not deterministic");
    // Freed: while this copy is loaded; just after its dlclose; while the next copy is loaded; three rounds on.
    static const int releaseDelays[dlopenHandOutCount] = {0, 0, 1, 3};
    static const bool afterClose[dlopenHandOutCount] = {false, true, false, true};
    for (int i = 0; i < dlopenHandOutCount; i++) {
      size_t byteCount = i == 3 && round % 10 == 0 ? (2u << 20) + (size_t)round : 24 + (size_t)(round * 97 + i * 1000);
      pending[pendingCount++] = (Pending){.block = handOut(byteCount, (uint64_t)round << 8 | (uint64_t)i),
                                          .round = round, .releaseRound = round + releaseDelays[i],
                                          .afterClose = afterClose[i]};
    }
    for (int i = 0; i < 4; i++) takeIn(tortureAllocate(40 + (size_t)i * 3000, 9000 + (uint64_t)i, "block for plugin"));
    if (round % 5 == 0) {
      // The plugin's thread-local buffer is dynamic TLS: glibc allocates it for this thread with malloc.
      pthread_t thread;
      int error = pthread_create(&thread, NULL, runPluginThread, (void *)(uintptr_t)(round + 1));
      TORTURE_CHECK(error == 0, "pthread_create: %s", strerror(error));
      pthread_join(thread, NULL);
    }
    for (int i = 0; i < pendingCount; i++) {
      if (pending[i].block == NULL || pending[i].releaseRound != round || pending[i].afterClose) continue;
      bool outlived = pending[i].round != round;
      tortureRelease(pending[i].block, outlived ? "block of an unloaded plugin copy, freed while another is loaded"
                                                : "plugin block freed while the plugin is loaded");
      pending[i].block = NULL;
      if (outlived) outlivedCount++;
    }
    TORTURE_CHECK(outbox == NULL, "round %d: the plugin's destructor ran before dlclose", round);
    TORTURE_CHECK(dlclose(handle) == 0, "round %d: dlclose: %s", round, dlerror());
    // The destructor ran (the plugin was unloaded) and left a block it allocated; free it now that its code is gone.
    TORTURE_CHECK(outbox != NULL, "round %d: dlclose did not unload the plugin (no block from its destructor)",
                  round);
    TORTURE_CHECK(((TortureHeader *)outbox)->tag == 5000 + (uint64_t)round, "round %d: wrong outbox block", round);
    tortureRelease(outbox, "block from the plugin's destructor");
    outlivedCount++;
    for (int i = 0; i < pendingCount; i++) {
      if (pending[i].block == NULL || pending[i].releaseRound != round) continue;
      tortureRelease(pending[i].block, "plugin block freed after dlclose");
      pending[i].block = NULL;
      outlivedCount++;
    }
  }
  for (int i = 0; i < pendingCount; i++) {
    if (pending[i].block == NULL) continue;
    tortureRelease(pending[i].block, "plugin block freed at the end");
    outlivedCount++;
  }
  printf("dlopen ok: %d rounds, %d blocks outlived the plugin copy that allocated them\n", dlopenRoundCount,
         outlivedCount);
  return 0;
}

// MARK: - signal-fork

enum {
  signalForkCount = 200, signalHeldCount = 64, signalChildAlarmSeconds = 10, signalStuckSeconds = 30,
};

/// What the allocating loop is doing; the handler records it for each fork, to name it in a failure.
enum Phase { phaseOther, phaseMalloc, phaseRealloc, phaseFree, phaseCount };
static const char *const phaseNames[phaseCount] = {"other", "malloc", "realloc", "free"};
static volatile sig_atomic_t loopPhase;

/// Forks started by the handler; forkedPids[i] (the pid, or -errno) and forkedPhases[i] are set before
/// signalForksStarted passes i.
static atomic_int signalForksStarted;
/// Forks that failed in the handler: no child to reap.
static atomic_int signalForkFailures;
static pid_t forkedPids[signalForkCount];
static int forkedPhases[signalForkCount];
static atomic_bool signalStopRequested;

/// Inside the signal handler, in the child: allocate, check, free, and _exit.
static _Noreturn void runSignalChild(int index) {
  tortureInChild = 1;
  // The handler may be SIGALRM's (timer mode), which is blocked while it runs: restore the default action and
  // unblock it, so that the alarm ends a child that hangs.
  struct sigaction defaultAction = {.sa_handler = SIG_DFL};
  sigemptyset(&defaultAction.sa_mask);
  sigaction(SIGALRM, &defaultAction, NULL);
  sigset_t alarmOnly;
  sigemptyset(&alarmOnly);
  sigaddset(&alarmOnly, SIGALRM);
  sigprocmask(SIG_UNBLOCK, &alarmOnly, NULL);
  alarm(signalChildAlarmSeconds);
  static const size_t byteCounts[] = {16, 100, 1000, 5000, 40000, 300000, (2u << 20) + 123, 64};
  void *blocks[8];
  for (size_t i = 0; i < 8; i++) blocks[i] = tortureAllocate(byteCounts[i], (uint64_t)index << 8 | i, "child block");
  blocks[2] = tortureResize(blocks[2], 70000, 3, "child block");
  for (size_t i = 0; i < 8; i++) tortureRelease(blocks[i], "child block");
  _exit(0);
}

static void forkingHandler(int signal) {
  (void)signal;
  int savedErrno = errno;
  int index = atomic_load(&signalForksStarted);
  if (index < signalForkCount) {
    int phase = loopPhase;
    pid_t child = fork();
    if (child == 0) runSignalChild(index);
    if (child < 0) atomic_fetch_add(&signalForkFailures, 1);
    forkedPids[index] = child > 0 ? child : -errno;
    forkedPhases[index] = phase;
    atomic_store(&signalForksStarted, index + 1);
  }
  errno = savedErrno;
}

/// Reaped children, in reaping order; matched to forkedPids at the end.
static pid_t reapedPids[signalForkCount];
static int reapedStatuses[signalForkCount];
static int reapedCount;

/// Reaps the children that have exited (all started ones with `block`); returns how many it reaped.
static int reapChildren(bool block) {
  int count = 0;
  while (reapedCount < atomic_load(&signalForksStarted) - atomic_load(&signalForkFailures)) {
    int status = 0;
    pid_t pid = waitpid(-1, &status, block ? 0 : WNOHANG);
    if (pid == 0) break;
    if (pid < 0 && errno == EINTR) continue;
    TORTURE_CHECK(pid > 0, "waitpid: %s", strerror(errno));
    reapedPids[reapedCount] = pid;
    reapedStatuses[reapedCount++] = status;
    count++;
  }
  return count;
}

/// One step of the allocating loop over `held`, with loopPhase marking the allocator calls.
static void allocationStep(void **held, uint64_t *random) {
  uint64_t r = fixtureRandom(random);
  void **slot = &held[r % signalHeldCount];
  size_t byteCount = (r >> 8) % 64 == 0 ? (1u << 20) + (size_t)(r >> 20) % (1u << 20)
                                        : tortureRandomByteCount(random, 512 * 1024);
  if (*slot == NULL) {
    loopPhase = phaseMalloc;
    void *block = malloc(byteCount);
    loopPhase = phaseOther;
    TORTURE_CHECK(block != NULL, "malloc(%zu) returned NULL", byteCount);
    *slot = tortureStamp(block, byteCount, r);
  } else if ((r >> 40) % 4 == 0) {
    size_t oldByteCount = tortureVerify(*slot, "loop block");
    loopPhase = phaseRealloc;
    void *block = realloc(*slot, byteCount);
    loopPhase = phaseOther;
    TORTURE_CHECK(block != NULL, "realloc(%zu) returned NULL", byteCount);
    tortureVerifyPrefix(block, byteCount < oldByteCount ? byteCount : oldByteCount, "loop block after realloc");
    *slot = tortureStamp(block, byteCount, r);
  } else {
    tortureVerify(*slot, "loop block");
    loopPhase = phaseFree;
    free(*slot);
    loopPhase = phaseOther;
    *slot = NULL;
  }
}

/// The allocating thread of thread mode: loops until stopped.
static void *runAllocatingThread(void *argument) {
  (void)argument;
  void *held[signalHeldCount] = {0};
  uint64_t random = 0x5eed5eed;
  while (!atomic_load_explicit(&signalStopRequested, memory_order_relaxed)) allocationStep(held, &random);
  for (size_t i = 0; i < signalHeldCount; i++) tortureRelease(held[i], "loop block at the end");
  return NULL;
}

/// Thread mode's signaller: one SIGUSR1 to the allocating thread per fork, each after the previous fork began
/// and a random pause, so the signals land at varied points of the loop.
static void *runSignaller(void *argument) {
  pthread_t target = *(pthread_t *)argument;
  uint64_t random = 0xabad1dea;
  for (int i = 0; i < signalForkCount; i++) {
    int error = pthread_kill(target, SIGUSR1);
    TORTURE_CHECK(error == 0, "pthread_kill: %s", strerror(error));
    double deadline = secondsNow() + signalStuckSeconds;
    while (atomic_load(&signalForksStarted) <= i) {
      if (secondsNow() > deadline) return (void *)(uintptr_t)1;
      sleepMicroseconds(50);
    }
    sleepMicroseconds((long)(fixtureRandom(&random) % 400));
  }
  return NULL;
}

static int signalFork(const char *mode) {
  bool timerMode = strcmp(mode, "timer") == 0;
  TORTURE_CHECK(timerMode || strcmp(mode, "thread") == 0, "signal-fork: unknown mode %s (timer or thread)", mode);
  struct sigaction action = {.sa_handler = forkingHandler};
  sigemptyset(&action.sa_mask);
  TORTURE_CHECK(sigaction(timerMode ? SIGALRM : SIGUSR1, &action, NULL) == 0, "sigaction: %s", strerror(errno));
  fflush(NULL);

  if (timerMode) {
    // One thread allocates and reaps; the timer interrupts it every 700 microseconds.
    struct itimerval timer = {.it_interval = {0, 700}, .it_value = {0, 700}};
    TORTURE_CHECK(setitimer(ITIMER_REAL, &timer, NULL) == 0, "setitimer: %s", strerror(errno));
    void *held[signalHeldCount] = {0};
    uint64_t random = 0x5eed5eed;
    double lastProgress = secondsNow();
    for (unsigned long step = 0; atomic_load(&signalForksStarted) < signalForkCount; step++) {
      allocationStep(held, &random);
      if (step % 32 == 0 && reapChildren(false) > 0) lastProgress = secondsNow();
      TORTURE_CHECK(step % 1024 != 0 || secondsNow() - lastProgress < signalStuckSeconds,
                    "signal-fork: no child finished for %d s (%d forks started)", signalStuckSeconds,
                    atomic_load(&signalForksStarted));
    }
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    for (size_t i = 0; i < signalHeldCount; i++) tortureRelease(held[i], "loop block at the end");
    reapChildren(true);
  } else {
    pthread_t allocating, signaller;
    int error = pthread_create(&allocating, NULL, runAllocatingThread, NULL);
    TORTURE_CHECK(error == 0, "pthread_create: %s", strerror(error));
    error = pthread_create(&signaller, NULL, runSignaller, &allocating);
    TORTURE_CHECK(error == 0, "pthread_create: %s", strerror(error));
    // The main thread reaps, polling so that a parent stuck in fork is reported instead of hanging here.
    double lastProgress = secondsNow();
    while (reapedCount + atomic_load(&signalForkFailures) < signalForkCount) {
      if (reapChildren(false) > 0) lastProgress = secondsNow();
      if (secondsNow() - lastProgress > signalStuckSeconds) {
        // The allocating thread may be stuck inside the allocator: leave without running exit handlers.
        int started = atomic_load(&signalForksStarted);
        char message[200];
        int length = snprintf(message, sizeof message,
                              "torture: FAIL: signal-fork: stuck for %d s: %d forks started, %d children reaped, "
                              "loop phase %s\n", signalStuckSeconds, started, reapedCount,
                              phaseNames[loopPhase % phaseCount]);
        ssize_t written = write(STDERR_FILENO, message, (size_t)length);
        (void)written;
        _exit(1);
      }
      sleepMicroseconds(200);
    }
    void *stuck = NULL;
    pthread_join(signaller, &stuck);
    TORTURE_CHECK(stuck == NULL, "signal-fork: the signaller gave up waiting for a fork");
    atomic_store(&signalStopRequested, true);
    pthread_join(allocating, NULL);
  }

  int started = atomic_load(&signalForksStarted);
  TORTURE_CHECK(started == signalForkCount, "signal-fork: %d forks started, expected %d", started, signalForkCount);
  int phaseCounts[phaseCount] = {0};
  int failedCount = 0;
  for (int i = 0; i < signalForkCount; i++) {
    phaseCounts[forkedPhases[i] % phaseCount]++;
    if (forkedPids[i] < 0) {
      if (failedCount++ < 10)
        fprintf(stderr, "signal-fork: fork %d in the handler failed: %s\n", i, strerror(-forkedPids[i]));
      continue;
    }
    int found = -1;
    for (int j = 0; j < reapedCount && found < 0; j++)
      if (reapedPids[j] == forkedPids[i]) found = j;
    TORTURE_CHECK(found >= 0, "signal-fork: child %d (pid %d) was never reaped", i, forkedPids[i]);
    if (exitedZero(reapedStatuses[found])) continue;
    char text[120];
    describeStatus(reapedStatuses[found], signalChildAlarmSeconds, text, sizeof text);
    if (failedCount++ < 10)
      fprintf(stderr, "signal-fork: child %d (pid %d, forked while the loop was in %s) %s\n", i, forkedPids[i],
              phaseNames[forkedPhases[i] % phaseCount], text);
  }
  printf("signal-fork phases malloc=%d realloc=%d free=%d other=%d\n", phaseCounts[phaseMalloc],
         phaseCounts[phaseRealloc], phaseCounts[phaseFree], phaseCounts[phaseOther]);
  TORTURE_CHECK(failedCount == 0, "signal-fork %s: %d of %d children failed", mode, failedCount, signalForkCount);
  printf("signal-fork %s ok: %d children forked in the handler exited 0\n", mode, signalForkCount);
  return 0;
}

/// Unblocks every signal and restores SIGALRM's default action: both are inherited through exec, and the test
/// runner that starts this program blocks some signals, which would keep the timer's signals and the
/// children's alarms from ever arriving.
static void resetInheritedSignals(void) {
  sigset_t none, inherited;
  sigemptyset(&none);
  TORTURE_CHECK(sigprocmask(SIG_SETMASK, &none, &inherited) == 0, "sigprocmask: %s", strerror(errno));
  struct sigaction defaultAction = {.sa_handler = SIG_DFL};
  sigemptyset(&defaultAction.sa_mask);
  TORTURE_CHECK(sigaction(SIGALRM, &defaultAction, NULL) == 0, "sigaction: %s", strerror(errno));
  if (sigismember(&inherited, SIGALRM) || sigismember(&inherited, SIGUSR1))
    printf("torture: unblocked inherited signals: SIGALRM %s, SIGUSR1 %s\n",
           sigismember(&inherited, SIGALRM) ? "blocked" : "not blocked",
           sigismember(&inherited, SIGUSR1) ? "blocked" : "not blocked");
}

int main(int argc, char **argv) {
  fixtureReportSwalloc();
  printf("torture pid %d\n", (int)getpid());
  resetInheritedSignals();
  fflush(stdout);
  if (argc == 2 && strcmp(argv[1], "fork-storm") == 0) return forkStorm();
  if (argc == 2 && strcmp(argv[1], "thread-storm") == 0) return threadStorm();
  if (argc == 3 && strcmp(argv[1], "dlopen") == 0) return dlopenLoop(argv[2]);
  if (argc == 3 && strcmp(argv[1], "signal-fork") == 0) return signalFork(argv[2]);
  fprintf(stderr, "usage: torture fork-storm | thread-storm | dlopen <plugin.so> | signal-fork timer|thread\n");
  return 2;
}
