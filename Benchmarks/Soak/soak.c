// soak: a long mixed workload for soak.sh. Worker threads keep a bounded set of live blocks (small, medium,
// large and huge sizes) and churn it: malloc/calloc/aligned allocation, realloc up and down, local frees, and
// frees by other threads (blocks are posted to another worker's mailbox). Workers exit after a random
// lifetime and are replaced, handing their blocks to their successor; the main thread forks a child every few
// seconds that allocates, checks and exits. Every block carries a pattern tied to its tag, checked before it
// is freed, moved or resized. Its live set is bounded, so after warm-up its memory should stay flat.
// Usage: soak SECONDS [THREADS] [SLOTS_PER_THREAD]
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CHECK(condition, ...)                                                                                    \
  do {                                                                                                           \
    if (!(condition)) {                                                                                          \
      fprintf(stderr, "soak: FAIL: " __VA_ARGS__);                                                               \
      fputc('\n', stderr);                                                                                       \
      _exit(1);                                                                                                  \
    }                                                                                                            \
  } while (0)

enum { maximumThreads = 64, mailboxCapacity = 4096 };

/// A live block: its address, requested size and pattern tag (0: empty slot).
struct Block {
  unsigned char *address;
  size_t byteCount;
  uint64_t tag;
};

static uint64_t nextRandom(uint64_t *state) {
  uint64_t x = *state;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *state = x;
  return x * 0x2545f4914f6cdd1dull;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

// ---- patterns: the first and last 64 bytes, and one word per 4 KiB page (so every page is resident) --------

static uint64_t patternWord(uint64_t tag, size_t offset) { return (tag ^ offset) * 0x9e3779b97f4a7c15ull; }

static void forEachPatternOffset(size_t byteCount, void (*body)(unsigned char *, size_t, uint64_t),
                                 unsigned char *address, uint64_t tag) {
  if (byteCount < 8) {
    body(address, byteCount, tag);  // tiny blocks: byte by byte
    return;
  }
  for (size_t offset = 0; offset + 8 <= byteCount && offset < 64; offset += 8) body(address, offset, tag);
  for (size_t offset = 4096; offset + 8 <= byteCount; offset += 4096) body(address, offset, tag);
  if (byteCount >= 72) body(address, (byteCount - 8) & ~(size_t)7, tag);
}

static void writeWord(unsigned char *address, size_t offset, uint64_t tag) {
  uint64_t word = patternWord(tag, offset);
  memcpy(address + offset, &word, 8);
}

/// Set by the checks below on a mismatch; per thread, so that a failure names the right block.
static __thread int patternFailed;

static void checkWord(unsigned char *address, size_t offset, uint64_t tag) {
  uint64_t word;
  memcpy(&word, address + offset, 8);
  if (word != patternWord(tag, offset)) patternFailed = 1;
}

static void writeTiny(unsigned char *address, size_t byteCount, uint64_t tag) {
  for (size_t i = 0; i < byteCount; i++) address[i] = (unsigned char)(patternWord(tag, i) >> 56);
}

static void checkTiny(unsigned char *address, size_t byteCount, uint64_t tag) {
  for (size_t i = 0; i < byteCount; i++)
    if (address[i] != (unsigned char)(patternWord(tag, i) >> 56)) patternFailed = 1;
}

static void fill(struct Block *block) {
  if (block->byteCount < 8) writeTiny(block->address, block->byteCount, block->tag);
  else forEachPatternOffset(block->byteCount, writeWord, block->address, block->tag);
}

static void verify(const struct Block *block, const char *when) {
  if (block->byteCount < 8) checkTiny(block->address, block->byteCount, block->tag);
  else forEachPatternOffset(block->byteCount, checkWord, block->address, block->tag);
  CHECK(!patternFailed, "%s: block %p of %zu bytes (tag %llu) was changed", when,
        (void *)block->address, block->byteCount, (unsigned long long)block->tag);
}

// ---- mailboxes: blocks posted by other threads, freed by the owner of the mailbox --------------------------

struct Mailbox {
  pthread_mutex_t lock;
  struct Block blocks[mailboxCapacity];
  size_t count;
};

static struct Mailbox mailboxes[maximumThreads];

/// Posts `block` to mailbox `index`; false when it is full (the caller frees the block itself).
static int post(int index, struct Block block) {
  struct Mailbox *mailbox = &mailboxes[index];
  pthread_mutex_lock(&mailbox->lock);
  int posted = mailbox->count < mailboxCapacity;
  if (posted) mailbox->blocks[mailbox->count++] = block;
  pthread_mutex_unlock(&mailbox->lock);
  return posted;
}

/// Bytes requested by live blocks, per worker index (a block freed by another thread is subtracted there:
/// only the sum means anything).
static _Atomic long liveBytes[maximumThreads];

static _Atomic long remoteFrees, localFrees, allocations, reallocations, threadsStarted, forks;

/// Verifies and frees every block in mailbox `index` (other threads allocated them).
static void drain(int index) {
  static __thread struct Block taken[mailboxCapacity];
  struct Mailbox *mailbox = &mailboxes[index];
  pthread_mutex_lock(&mailbox->lock);
  size_t count = mailbox->count;
  memcpy(taken, mailbox->blocks, count * sizeof taken[0]);
  mailbox->count = 0;
  pthread_mutex_unlock(&mailbox->lock);
  long byteCount = 0;
  for (size_t i = 0; i < count; i++) {
    verify(&taken[i], "a block freed by another thread");
    free(taken[i].address);
    byteCount += (long)taken[i].byteCount;
  }
  atomic_fetch_add(&remoteFrees, (long)count);
  atomic_fetch_sub_explicit(&liveBytes[index], byteCount, memory_order_relaxed);
}

// ---- workers ------------------------------------------------------------------------------------------------

static int threadCount = 4;
static size_t slotCount = 400;
static double deadline;
static _Atomic uint64_t tagCounter = 1;

/// Each worker index's live blocks; a successor thread inherits them.
static struct Block *slotsOf[maximumThreads];

/// Size ranges, by slot: 75 % of the slots hold small blocks (1..1024 B), 17 % medium ones (to 64 KiB),
/// 6 % large ones (to 512 KiB), 2 % huge ones (to 4 MiB). A slot keeps its range through reallocs, so the
/// live byte count stays near its mean.
static size_t rangeLow(size_t slotIndex) {
  size_t percent = slotIndex * 100 / slotCount;
  return percent < 75 ? 1 : percent < 92 ? 1025 : percent < 98 ? 64 * 1024 + 1 : 512 * 1024 + 1;
}

static size_t rangeHigh(size_t slotIndex) {
  size_t percent = slotIndex * 100 / slotCount;
  return percent < 75 ? 1024 : percent < 92 ? 64 * 1024 : percent < 98 ? 512 * 1024 : 4u << 20;
}

static size_t randomSize(size_t slotIndex, uint64_t *random) {
  size_t low = rangeLow(slotIndex), high = rangeHigh(slotIndex);
  return low + nextRandom(random) % (high - low + 1);
}

static void allocateInto(struct Block *slot, size_t byteCount, uint64_t *random) {
  unsigned how = (unsigned)(nextRandom(random) % 8);
  unsigned char *address;
  if (how == 0) {
    address = calloc(1, byteCount);
    CHECK(address != NULL, "calloc(%zu) failed", byteCount);
    for (size_t i = 0; i < byteCount; i += 4096) CHECK(address[i] == 0, "calloc(%zu) memory is not zero", byteCount);
  } else if (how == 1) {
    size_t alignment = (size_t)64 << (nextRandom(random) % 8);  // 64 B .. 8 KiB
    void *result = NULL;
    CHECK(posix_memalign(&result, alignment, byteCount) == 0, "posix_memalign(%zu, %zu) failed", alignment,
          byteCount);
    CHECK(((uintptr_t)result & (alignment - 1)) == 0, "posix_memalign(%zu) misaligned", alignment);
    address = result;
  } else {
    address = malloc(byteCount);
    CHECK(address != NULL, "malloc(%zu) failed", byteCount);
  }
  slot->address = address;
  slot->byteCount = byteCount;
  slot->tag = atomic_fetch_add(&tagCounter, 1);
  fill(slot);
  atomic_fetch_add(&allocations, 1);
}

/// A realloc chain step: the block grows or shrinks by up to 2x within its slot's range, keeps its prefix,
/// and gets a new tag.
static void reallocate(struct Block *slot, size_t slotIndex, uint64_t *random) {
  verify(slot, "a block before realloc");
  size_t byteCount = slot->byteCount;
  uint64_t r = nextRandom(random);
  size_t target = (r & 1) ? byteCount + 1 + (r >> 8) % (byteCount + 1) : 1 + (r >> 8) % byteCount;
  if (target < rangeLow(slotIndex)) target = rangeLow(slotIndex);
  if (target > rangeHigh(slotIndex)) target = rangeLow(slotIndex) + (r >> 8) % (rangeHigh(slotIndex) / 4);
  unsigned char *moved = realloc(slot->address, target);
  CHECK(moved != NULL, "realloc(%zu) failed", target);
  struct Block kept = {moved, target < byteCount ? target : byteCount, slot->tag};
  // The kept prefix's pattern words that fit in both sizes are still there.
  if (kept.byteCount >= 72) {
    for (size_t offset = 0; offset < 64; offset += 8) checkWord(moved, offset, slot->tag);
    for (size_t offset = 4096; offset + 8 <= kept.byteCount && offset + 8 <= byteCount; offset += 4096)
      checkWord(moved, offset, slot->tag);
    CHECK(!patternFailed, "realloc(%zu -> %zu) lost the block's contents", byteCount, target);
  }
  slot->address = moved;
  slot->byteCount = target;
  slot->tag = atomic_fetch_add(&tagCounter, 1);
  fill(slot);
  atomic_fetch_add(&reallocations, 1);
}

struct Worker {
  int index;
  uint64_t seed;
  double lifetime;  // seconds this thread runs before a successor replaces it
};

static void *work(void *argument) {
  struct Worker worker = *(struct Worker *)argument;
  free(argument);
  struct Block *slots = slotsOf[worker.index];
  uint64_t random = worker.seed | 1;
  double end = now() + worker.lifetime;
  if (end > deadline) end = deadline;
  long operations = 0;
  while (1) {
    if ((operations & 1023) == 0) {
      drain(worker.index);
      if (now() >= end) break;
    }
    operations++;
    size_t slotIndex = nextRandom(&random) % slotCount;
    struct Block *slot = &slots[slotIndex];
    if (slot->address == NULL) {
      allocateInto(slot, randomSize(slotIndex, &random), &random);
      atomic_fetch_add_explicit(&liveBytes[worker.index], (long)slot->byteCount, memory_order_relaxed);
      continue;
    }
    unsigned what = (unsigned)(nextRandom(&random) % 10);
    if (what >= 7) {
      long before = (long)slot->byteCount;
      reallocate(slot, slotIndex, &random);
      atomic_fetch_add_explicit(&liveBytes[worker.index], (long)slot->byteCount - before, memory_order_relaxed);
      continue;
    }
    verify(slot, what < 4 ? "a block before free" : "a block before it was posted");
    int target = (int)(nextRandom(&random) % (uint64_t)threadCount);
    // Posted blocks stay counted as live until their new owner frees them (drain).
    if (what < 4 || target == worker.index || !post(target, *slot)) {
      free(slot->address);
      atomic_fetch_add(&localFrees, 1);
      atomic_fetch_sub_explicit(&liveBytes[worker.index], (long)slot->byteCount, memory_order_relaxed);
    }
    memset(slot, 0, sizeof *slot);
  }
  return NULL;
}

static pthread_t startWorker(int index, uint64_t *random) {
  struct Worker *worker = malloc(sizeof *worker);
  CHECK(worker != NULL, "malloc failed");
  worker->index = index;
  worker->seed = nextRandom(random);
  worker->lifetime = 0.2 + (double)(nextRandom(random) % 2800) / 1000.0;  // 0.2 .. 3 s
  pthread_t thread;
  CHECK(pthread_create(&thread, NULL, work, worker) == 0, "pthread_create failed");
  atomic_fetch_add(&threadsStarted, 1);
  return thread;
}

// ---- fork: a child allocates, checks and frees, then exits ---------------------------------------------------

static void forkChild(uint64_t *random) {
  fflush(stdout);
  pid_t child = fork();
  CHECK(child >= 0, "fork failed: %s", strerror(errno));
  if (child == 0) {
    uint64_t state = nextRandom(random) | 1;
    struct Block blocks[256];
    for (int i = 0; i < 256; i++) allocateInto(&blocks[i], randomSize((size_t)i * slotCount / 256, &state), &state);
    for (int i = 0; i < 256; i++) {
      verify(&blocks[i], "a block in a forked child");
      free(blocks[i].address);
    }
    _exit(0);
  }
  int status = 0;
  CHECK(waitpid(child, &status, 0) == child, "waitpid failed");
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "a forked child failed (status %d)", status);
  atomic_fetch_add(&forks, 1);
}

int main(int argc, char **argv) {
  double seconds = argc > 1 ? atof(argv[1]) : 600;
  if (argc > 2) threadCount = atoi(argv[2]);
  if (argc > 3) slotCount = (size_t)atol(argv[3]);
  CHECK(seconds > 0 && threadCount > 0 && threadCount <= maximumThreads && slotCount > 0,
        "usage: soak SECONDS [THREADS 1..%d] [SLOTS_PER_THREAD]", maximumThreads);
  void *probe = dlsym(RTLD_DEFAULT, "swalloc_malloc");
  printf("soak: %s, %.0f s, %d threads, %zu slots each\n", probe ? "swalloc active" : "swalloc not loaded",
         seconds, threadCount, slotCount);
  fflush(stdout);

  uint64_t random = 0x5eed;
  double start = now();
  deadline = start + seconds;
  pthread_t threads[maximumThreads];
  int running[maximumThreads];
  for (int i = 0; i < threadCount; i++) {
    pthread_mutex_init(&mailboxes[i].lock, NULL);
    slotsOf[i] = calloc(slotCount, sizeof(struct Block));
    CHECK(slotsOf[i] != NULL, "calloc of the slot table failed");
  }
  for (int i = 0; i < threadCount; i++) {
    threads[i] = startWorker(i, &random);
    running[i] = 1;
  }

  // Supervise: replace each worker when its lifetime ends (the successor inherits its blocks), fork a child
  // every 5 s.
  double nextFork = start + 5, nextReport = start + 10;
  while (now() < deadline) {
    struct timespec pause = {0, 50 * 1000 * 1000};
    nanosleep(&pause, NULL);
    for (int i = 0; i < threadCount; i++) {
      if (!running[i] || pthread_tryjoin_np(threads[i], NULL) != 0) continue;
      running[i] = now() < deadline;
      if (running[i]) threads[i] = startWorker(i, &random);
    }
    if (now() >= nextFork) {
      forkChild(&random);
      nextFork += 5;
    }
    if (now() >= nextReport) {
      long total = 0;
      for (int i = 0; i < threadCount; i++) total += atomic_load_explicit(&liveBytes[i], memory_order_relaxed);
      printf("soak: %.0f s live %.1f MiB\n", now() - start, (double)total / 1048576);
      fflush(stdout);
      nextReport += 10;
    }
  }
  for (int i = 0; i < threadCount; i++) {
    if (running[i]) pthread_join(threads[i], NULL);
  }

  // Everything left: verify and free.
  long left = 0;
  for (int i = 0; i < threadCount; i++) {
    drain(i);
    for (size_t s = 0; s < slotCount; s++) {
      struct Block *slot = &slotsOf[i][s];
      if (slot->address == NULL) continue;
      verify(slot, "a block at the end");
      free(slot->address);
      left++;
    }
    free(slotsOf[i]);
  }
  printf("soak ok: %.0f s, %ld allocations, %ld reallocs, %ld local and %ld cross-thread frees, %ld threads, "
         "%ld forks, %ld blocks left at the end\n",
         now() - start, atomic_load(&allocations), atomic_load(&reallocations), atomic_load(&localFrees),
         atomic_load(&remoteFrees), atomic_load(&threadsStarted), atomic_load(&forks), left);
  return 0;
}
