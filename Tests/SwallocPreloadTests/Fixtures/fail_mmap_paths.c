// fail_mmap_paths: every allocation path that needs a new mapping, run while libfail_mmap.so (preloaded after
// libswalloc.so) makes mmap fail. Each must return NULL with ENOMEM (posix_memalign: the ENOMEM return with
// errno ENOMEM too, as glibc, and *memptr untouched), damage nothing allocated before, and leave the allocator usable: once mmap
// works again every size is served, and every block kept along the way still holds its pattern.
#include "fixture.h"
#include <malloc.h>
#include <pthread.h>
#include <semaphore.h>

static void (*injectFailures)(long skip, long count);
static void (*failPattern)(long period, long failing);
static void (*stopFailures)(void);
static long (*mmapCalls)(void);
static long (*mmapFailures)(void);

/// Finds the controls of libfail_mmap.so; fails when it is not loaded.
static void findControls(void) {
  injectFailures = (void (*)(long, long))dlsym(RTLD_DEFAULT, "fail_mmap_inject");
  failPattern = (void (*)(long, long))dlsym(RTLD_DEFAULT, "fail_mmap_pattern");
  stopFailures = (void (*)(void))dlsym(RTLD_DEFAULT, "fail_mmap_stop");
  mmapCalls = (long (*)(void))dlsym(RTLD_DEFAULT, "fail_mmap_calls");
  mmapFailures = (long (*)(void))dlsym(RTLD_DEFAULT, "fail_mmap_failures");
  FIXTURE_CHECK(injectFailures && failPattern && stopFailures && mmapCalls && mmapFailures,
                "libfail_mmap.so is not loaded (LD_PRELOAD must name it after libswalloc.so)");
}

// ---- blocks kept across the whole run, verified at the end -----------------------------------------------

enum { maximumKept = 1 << 17 };
static void *kept[maximumKept];
static size_t keptSizes[maximumKept];
static size_t keptCount;

/// The bytes of a block that carry its pattern (the first 4 KiB: enough to see damage, cheap for huge blocks).
static size_t patternByteCount(size_t byteCount) { return byteCount < 4096 ? byteCount : 4096; }

static void keep(void *block, size_t byteCount) {
  FIXTURE_CHECK(keptCount < maximumKept, "too many kept blocks");
  fixtureFill(block, patternByteCount(byteCount), keptCount);
  kept[keptCount] = block;
  keptSizes[keptCount] = byteCount;
  keptCount++;
}

static void verifyKept(const char *when) {
  for (size_t i = 0; i < keptCount; i++) fixtureVerify(kept[i], patternByteCount(keptSizes[i]), i, when);
}

/// Fails unless `result` is NULL with errno ENOMEM and libfail_mmap.so refused a call since `failuresBefore`:
/// the NULL came from the injected failure, not from something else.
static void expectInjectedENOMEM(const void *result, int error, long failuresBefore, const char *what) {
  FIXTURE_CHECK(result == NULL, "%s succeeded while mmap failed", what);
  FIXTURE_CHECK(error == ENOMEM, "%s failed with errno %d (%s), not ENOMEM", what, error, strerror(error));
  FIXTURE_CHECK(mmapFailures() > failuresBefore, "%s failed without a failed mmap call", what);
}

// ---- new threads -------------------------------------------------------------------------------------------

struct ThreadProbe {
  long skip;             // mmap calls let through before the failures start
  void *malloced;        // malloc(32) under the injection, then its errno
  int mallocError;
  void *calloced;        // calloc(1, 32)
  int callocError;
  int memalignResult;    // posix_memalign(&p, 64, 64), with errno before and after
  int memalignErrnoAfter;
  void *afterStop;       // malloc(32) once mmap works again
  long failuresBefore;
  sem_t probed;          // posted by the thread when done
  sem_t mayExit;         // posted by the main thread when the thread may exit
};

/// A new thread's first allocations while mmap fails: its heap cannot be mapped (skip 0), or its heap is
/// mapped and its first segment cannot be (skip 1). It starts and stops the injection itself: only it
/// allocates meanwhile (the main thread waits). It exits only when allowed: an exited thread's heap goes to
/// the pool, and the next new thread would adopt it instead of mapping its own.
static void *probeThread(void *argument) {
  struct ThreadProbe *probe = argument;
  probe->failuresBefore = mmapFailures();
  injectFailures(probe->skip, -1);
  errno = 0;
  probe->malloced = malloc(32);
  probe->mallocError = errno;
  errno = 0;
  probe->calloced = calloc(1, 32);
  probe->callocError = errno;
  void *sentinel = (void *)0x5a5a;
  void *aligned = sentinel;
  errno = EDOM;
  probe->memalignResult = posix_memalign(&aligned, 64, 64);
  probe->memalignErrnoAfter = errno;
  if (aligned != sentinel) probe->memalignResult = -1;  // *memptr written on failure
  stopFailures();
  probe->afterStop = malloc(32);
  if (probe->afterStop) memset(probe->afterStop, 0x77, 32);
  sem_post(&probe->probed);
  while (sem_wait(&probe->mayExit) != 0) {}
  return NULL;
}

/// Starts a probe thread and waits until it has probed; it waits for `finishNewThread`.
static pthread_t startNewThread(struct ThreadProbe *probe, long skip) {
  malloc_trim(0);  // no cached span may serve the thread's first segment
  probe->skip = skip;
  FIXTURE_CHECK(sem_init(&probe->probed, 0, 0) == 0 && sem_init(&probe->mayExit, 0, 0) == 0, "sem_init failed");
  pthread_t thread;
  FIXTURE_CHECK(pthread_create(&thread, NULL, probeThread, probe) == 0, "pthread_create failed");
  while (sem_wait(&probe->probed) != 0) {}
  return thread;
}

static void finishNewThread(pthread_t thread, struct ThreadProbe *probe) {
  sem_post(&probe->mayExit);
  FIXTURE_CHECK(pthread_join(thread, NULL) == 0, "pthread_join failed");
  long skip = probe->skip;
  const char *what = skip == 0 ? "a new thread's first malloc (no heap)" : "a new thread's first malloc (no segment)";
  expectInjectedENOMEM(probe->malloced, probe->mallocError, probe->failuresBefore, what);
  expectInjectedENOMEM(probe->calloced, probe->callocError, probe->failuresBefore, "a new thread's first calloc");
  FIXTURE_CHECK(probe->memalignResult == ENOMEM && probe->memalignErrnoAfter == ENOMEM,
                "a new thread's posix_memalign returned %d with errno %d (expected ENOMEM, errno ENOMEM as glibc)",
                probe->memalignResult, probe->memalignErrnoAfter);
  FIXTURE_CHECK(probe->afterStop != NULL, "the thread could not allocate once mmap worked again");
  free(probe->afterStop);  // a free into the exited thread's pooled heap
}

// ---- page-backed sizes: fill the current segments, then need a new one -----------------------------------

enum AllocationKind { viaMalloc, viaCalloc, viaAlignedAlloc, viaPosixMemalign };

static const char *kindName(enum AllocationKind kind) {
  switch (kind) {
  case viaMalloc: return "malloc";
  case viaCalloc: return "calloc";
  case viaAlignedAlloc: return "aligned_alloc";
  case viaPosixMemalign: return "posix_memalign";
  }
  return "?";
}

/// One allocation of `kind`; on failure returns NULL with the errno to check (posix_memalign: its result,
/// after checking that errno is that result too, as glibc sets it, and that *memptr was left alone).
static void *allocateOnce(enum AllocationKind kind, size_t byteCount, size_t alignment, int *error) {
  errno = 0;
  void *block = NULL;
  switch (kind) {
  case viaMalloc: block = malloc(byteCount); break;
  case viaCalloc: block = calloc(1, byteCount); break;
  case viaAlignedAlloc: block = aligned_alloc(alignment, byteCount); break;
  case viaPosixMemalign: {
    void *sentinel = (void *)0x5a5a;
    void *result = sentinel;
    errno = EDOM;
    int status = posix_memalign(&result, alignment, byteCount);
    if (status == 0) {
      block = result;
      break;
    }
    // glibc: the ENOMEM answer leaves errno at ENOMEM too.
    FIXTURE_CHECK(errno == status, "posix_memalign(%zu, %zu) returned %d but left errno at %d", alignment, byteCount,
                  status, errno);
    FIXTURE_CHECK(result == sentinel, "posix_memalign(%zu, %zu) wrote *memptr on failure", alignment, byteCount);
    *error = status;
    return NULL;
  }
  }
  *error = errno;
  if (block != NULL && alignment > 0) {
    FIXTURE_CHECK(fixtureIsAligned(block, alignment), "%s(%zu) returned %p, not %zu-aligned", kindName(kind),
                  byteCount, block, alignment);
  }
  return block;
}

/// Allocates blocks of `byteCount` while mmap fails, keeping them, until the allocator needs a new segment:
/// that allocation must fail with ENOMEM, and so must a retry. Once mmap works the same request succeeds.
static void exhaustSegments(enum AllocationKind kind, size_t byteCount, size_t alignment) {
  malloc_trim(0);  // the span cache is empty: a new segment means mmap
  long failuresBefore = mmapFailures();
  injectFailures(0, -1);
  size_t served = 0;
  // 64 MiB of blocks without a failure means mmap was never asked: libfail_mmap.so is not in the way.
  size_t limit = (64u << 20) / byteCount;
  int error = 0;
  char what[96];
  snprintf(what, sizeof what, "%s(%zu) with the segments full", kindName(kind), byteCount);
  while (1) {
    void *block = allocateOnce(kind, byteCount, alignment, &error);
    if (block == NULL) break;
    keep(block, byteCount);
    FIXTURE_CHECK(++served < limit, "%s never failed", what);
  }
  expectInjectedENOMEM(NULL, error, failuresBefore, what);
  FIXTURE_CHECK(allocateOnce(kind, byteCount, alignment, &error) == NULL && error == ENOMEM,
                "%s: a retry did not fail with ENOMEM (errno %d)", what, error);
  stopFailures();
  void *block = allocateOnce(kind, byteCount, alignment, &error);
  FIXTURE_CHECK(block != NULL, "%s still fails once mmap works (errno %d)", what, error);
  keep(block, byteCount);
  printf("exhausted %s(%zu): %zu blocks, then ENOMEM\n", kindName(kind), byteCount, served);
}

// ---- huge blocks: each needs a mapping of its own ---------------------------------------------------------

static void checkHuge(void) {
  // Blocks made before the failures: realloc must leave them intact when it cannot move them.
  size_t hugeByteCount = 2u << 20;
  void *huge = malloc(hugeByteCount);
  void *small = malloc(1000);
  void *medium = malloc(60000);
  FIXTURE_CHECK(huge && small && medium, "allocations before the failures failed");
  keep(huge, hugeByteCount);
  keep(small, 1000);
  keep(medium, 60000);

  malloc_trim(0);
  long failuresBefore = mmapFailures();
  injectFailures(0, -1);
  errno = 0;
  void *result = malloc(1u << 20);
  expectInjectedENOMEM(result, errno, failuresBefore, "malloc(1 MiB)");
  errno = 0;
  result = calloc(1, 3u << 20);
  expectInjectedENOMEM(result, errno, failuresBefore, "calloc(1, 3 MiB)");
  errno = 0;
  result = calloc(1024, 1024);
  expectInjectedENOMEM(result, errno, failuresBefore, "calloc(1024, 1024)");
  errno = 0;
  result = realloc(huge, 32u << 20);
  expectInjectedENOMEM(result, errno, failuresBefore, "realloc(2 MiB block, 32 MiB)");
  errno = 0;
  result = realloc(small, 1u << 20);
  expectInjectedENOMEM(result, errno, failuresBefore, "realloc(1000-byte block, 1 MiB)");
  errno = 0;
  result = realloc(medium, 100000);
  expectInjectedENOMEM(result, errno, failuresBefore, "realloc(60000-byte block, 100000) (grows into a span)");
  errno = 0;
  result = reallocarray(small, 1024, 1024);
  expectInjectedENOMEM(result, errno, failuresBefore, "reallocarray(1000-byte block, 1024, 1024)");
  errno = 0;
  result = aligned_alloc(1u << 20, 1u << 20);
  expectInjectedENOMEM(result, errno, failuresBefore, "aligned_alloc(1 MiB, 1 MiB)");
  errno = 0;
  result = aligned_alloc(1u << 20, 100);  // an alignment above 64 KiB is a huge span whatever the size
  expectInjectedENOMEM(result, errno, failuresBefore, "aligned_alloc(1 MiB, 100)");
  errno = 0;
  result = memalign(4096, 1u << 20);
  expectInjectedENOMEM(result, errno, failuresBefore, "memalign(4096, 1 MiB)");
  errno = 0;
  result = valloc(1u << 20);
  expectInjectedENOMEM(result, errno, failuresBefore, "valloc(1 MiB)");
  errno = 0;
  result = pvalloc((1u << 20) + 1);
  expectInjectedENOMEM(result, errno, failuresBefore, "pvalloc(1 MiB + 1)");
  void *sentinel = (void *)0x5a5a;
  void *aligned = sentinel;
  errno = EDOM;
  int status = posix_memalign(&aligned, 1u << 20, 1u << 20);
  FIXTURE_CHECK(status == ENOMEM && errno == ENOMEM && aligned == sentinel,
                "posix_memalign(1 MiB, 1 MiB) returned %d, errno %d, *memptr %p (expected ENOMEM, errno ENOMEM and "
                "*memptr untouched)", status, errno, aligned);
  stopFailures();

  // The blocks realloc could not move are intact and still the program's; now they can grow.
  verifyKept("a block realloc failed to move");
  void *grown = realloc(huge, 32u << 20);
  FIXTURE_CHECK(grown != NULL, "realloc(2 MiB block, 32 MiB) fails once mmap works");
  fixtureVerify(grown, 4096, keptCount - 3, "a huge block after it grew");
  kept[keptCount - 3] = grown;
  keptSizes[keptCount - 3] = 32u << 20;
  void *fresh = malloc(1u << 20);
  FIXTURE_CHECK(fresh != NULL, "malloc(1 MiB) fails once mmap works");
  keep(fresh, 1u << 20);
  printf("huge: every path failed with ENOMEM, then served\n");
}

// ---- one or two mmap calls in three fail, under a mixed workload ------------------------------------------

enum { mixedSlots = 512 };

/// Random sizes and calls while one mmap call in three fails, then two in three (so that any call of a
/// two-step mapping, or of a fallback after a refused huge-page or locked mapping, fails in turn): every NULL
/// must carry ENOMEM, and live blocks must keep their contents.
static void checkIntermittent(void) {
  static void *slots[mixedSlots];
  static size_t slotSizes[mixedSlots];
  static uint64_t slotTags[mixedSlots];
  uint64_t random = 0x1234567;
  size_t failed = 0, served = 0;
  for (int round = 0; round < 20000; round++) {
    if (round == 0) failPattern(3, 1);
    if (round == 10000) failPattern(3, 2);
    if (round % 500 == 0) malloc_trim(0);  // empty the span cache, so spans keep being mapped
    size_t slot = fixtureRandom(&random) % mixedSlots;
    if (slots[slot]) {
      fixtureVerify(slots[slot], patternByteCount(slotSizes[slot]), slotTags[slot], "a block under intermittent failures");
    }
    uint64_t r = fixtureRandom(&random);
    size_t byteCount;
    switch (r % 4) {
    case 0: byteCount = 1 + r % 1024; break;
    case 1: byteCount = 1024 + r % 64000; break;
    case 2: byteCount = 64000 + r % 500000; break;
    default: byteCount = 512000 + r % (3u << 20); break;
    }
    uint64_t operation = (r >> 32) % 5;
    void *block;
    errno = 0;
    if (operation == 0 && slots[slot]) {
      block = realloc(slots[slot], byteCount);
      int error = errno;
      if (block == NULL) {
        FIXTURE_CHECK(error == ENOMEM, "realloc(%zu) failed with errno %d", byteCount, error);
        failed++;
        continue;  // the old block stays, intact (verified on its next visit)
      }
      size_t preserved = patternByteCount(slotSizes[slot] < byteCount ? slotSizes[slot] : byteCount);
      fixtureVerify(block, preserved, slotTags[slot], "a block moved by realloc");
      slots[slot] = NULL;
    } else {
      free(slots[slot]);
      slots[slot] = NULL;
      errno = 0;
      if (operation == 1) block = calloc(1, byteCount);
      else if (operation == 2) block = aligned_alloc((size_t)64 << (r % 12), byteCount);
      else block = malloc(byteCount);
      int error = errno;
      if (block == NULL) {
        FIXTURE_CHECK(error == ENOMEM, "allocation of %zu bytes failed with errno %d", byteCount, error);
        failed++;
        continue;
      }
      if (operation == 1) {
        const unsigned char *bytes = block;
        for (size_t i = 0; i < patternByteCount(byteCount); i++)
          FIXTURE_CHECK(bytes[i] == 0, "calloc(%zu) block not zero at %zu", byteCount, i);
      }
    }
    served++;
    slotTags[slot] = round + 1000000;
    slotSizes[slot] = byteCount;
    slots[slot] = block;
    fixtureFill(block, patternByteCount(byteCount), slotTags[slot]);
  }
  stopFailures();
  FIXTURE_CHECK(failed > 0 && served > 0, "intermittent failures: %zu failed, %zu served", failed, served);
  for (size_t slot = 0; slot < mixedSlots; slot++) {
    if (!slots[slot]) continue;
    fixtureVerify(slots[slot], patternByteCount(slotSizes[slot]), slotTags[slot], "a block after intermittent failures");
    free(slots[slot]);
  }
  printf("intermittent: %zu served, %zu failed with ENOMEM\n", served, failed);
}

int main(void) {
  FIXTURE_CHECK(fixtureReportSwalloc(), "libswalloc.so is not loaded");
  findControls();
  long callsAtStart = mmapCalls();

  // New threads first, both alive at once: no thread has exited yet, so no pooled heap can spare a new
  // thread its own mapping.
  struct ThreadProbe noHeap = {0}, noSegment = {0};
  pthread_t first = startNewThread(&noHeap, 0);
  pthread_t second = startNewThread(&noSegment, 1);
  finishNewThread(first, &noHeap);
  finishNewThread(second, &noSegment);

  exhaustSegments(viaMalloc, 1000, 0);        // small, through the direct slots
  exhaustSegments(viaMalloc, 5000, 0);        // small, above the direct slots
  exhaustSegments(viaCalloc, 3000, 0);
  exhaustSegments(viaMalloc, 20000, 0);       // medium
  exhaustSegments(viaMalloc, 300000, 0);      // large
  exhaustSegments(viaAlignedAlloc, 3000, 256);
  exhaustSegments(viaPosixMemalign, 4096, 4096);
  exhaustSegments(viaPosixMemalign, 40000, 65536);
  checkHuge();
  checkIntermittent();

  // Mapping works again: everything kept is intact, every size is served, and everything can be freed.
  verifyKept("a block kept across the mapping failures");
  for (size_t i = 0; i < keptCount; i++) free(kept[i]);
  size_t sizes[] = {0, 16, 1000, 5000, 20000, 300000, 1u << 20, 8u << 20};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    void *block = malloc(sizes[i]);
    FIXTURE_CHECK(block != NULL, "malloc(%zu) fails after the mapping failures", sizes[i]);
    memset(block, 0xab, sizes[i]);
    free(block);
  }
  printf("fail_mmap calls=%ld failures=%ld\n", mmapCalls() - callsAtStart, mmapFailures());
  printf("fail-mmap ok: %zu blocks kept and verified\n", keptCount);
  return 0;
}
