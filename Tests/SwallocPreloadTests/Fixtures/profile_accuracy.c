// profile_accuracy.c: three allocation sites with known byte totals, for the heap profiler's accuracy test.
// site_small (malloc, 64 B) allocates 60 % of the bytes, site_medium (calloc, 24 KiB) 30 %, site_huge
// (aligned_alloc, 2 MiB) 10 %; each frees part of its blocks on this thread and part on another thread and
// keeps the rest live at exit. Prints the true totals per site: `truth <site> alloc=<bytes> inuse=<bytes>`.
// Volumes (at the default 512 KiB sampling rate, relative standard error sqrt(rate / bytes) for blocks far
// below the rate): small 1536 MiB allocated (1.8 %), 640 MiB live (2.8 %); medium 768 MiB (2.6 %), 640 MiB
// live (2.8 %); huge 256 MiB in 128 blocks (1.2 %), 128 MiB live (1.7 %). 10 % is at least 3.6 standard errors.
// Usage: profile_accuracy [scale-divisor]  (a divisor > 1 shrinks every volume, for quick runs)
#include "fixture.h"
#include <pthread.h>

#define SMALL_BYTES 64
#define MEDIUM_BYTES (24 * 1024)
#define HUGE_BYTES (2 * 1024 * 1024)

typedef struct batch {
  void **blocks;
  size_t count;
} batch;

static void *freeBatch(void *argument) {
  batch *work = argument;
  for (size_t index = 0; index < work->count; index++) free(work->blocks[index]);
  return NULL;
}

/// Frees `count` blocks on a new thread (the remote frees of a site).
static void freeOnAnotherThread(void **blocks, size_t count) {
  batch work = {blocks, count};
  pthread_t thread;
  if (pthread_create(&thread, NULL, freeBatch, &work) != 0) fixtureFail("pthread_create");
  pthread_join(thread, NULL);
}

// noipa (not just noinline): no clones such as site_small.isra.0, whose DWARF entries Go's pprof cannot name.
// The pointer arrays come from main, so that each site's bytes are exactly its blocks.
void site_small(size_t count, void **live, void **remote);
void site_medium(size_t count, void **live, void **remote);
void site_huge(size_t count, void **live, void **remote);

static volatile unsigned char sink;

/// Allocates `count` 64-byte blocks into `live` (their number goes in live[count]); keeps 5 in 12, frees 4 in 12 here and 3 in 12 on another thread.
FIXTURE_SITE void site_small(size_t count, void **live, void **remote) {
  size_t liveCount = 0, remoteCount = 0;
  for (size_t index = 0; index < count; index++) {
    unsigned char *block = malloc(SMALL_BYTES);
    if (!block) fixtureFail("malloc");
    block[0] = (unsigned char)index;
    size_t phase = index % 12;
    if (phase < 5) live[liveCount++] = block;
    else if (phase < 9) free(block);
    else remote[remoteCount++] = block;
  }
  freeOnAnotherThread(remote, remoteCount);
  live[count] = (void *)liveCount;
}

/// Allocates `count` zeroed 24 KiB blocks; keeps 5 in 6, frees the others alternately here and remotely.
FIXTURE_SITE void site_medium(size_t count, void **live, void **remote) {
  size_t liveCount = 0, remoteCount = 0;
  for (size_t index = 0; index < count; index++) {
    unsigned char *block = calloc(1, MEDIUM_BYTES);
    if (!block) fixtureFail("calloc");
    sink += block[index % MEDIUM_BYTES];
    if (index % 6 != 0) live[liveCount++] = block;
    else if (index % 12 == 0) free(block);
    else remote[remoteCount++] = block;
  }
  freeOnAnotherThread(remote, remoteCount);
  live[count] = (void *)liveCount;
}

/// Allocates `count` 2 MiB blocks aligned to 4 KiB; keeps half, frees a quarter here and a quarter remotely.
FIXTURE_SITE void site_huge(size_t count, void **live, void **remote) {
  size_t liveCount = 0, remoteCount = 0;
  for (size_t index = 0; index < count; index++) {
    unsigned char *block = aligned_alloc(4096, HUGE_BYTES);
    if (!block) fixtureFail("aligned_alloc");
    block[index] = 1;
    if (index % 2 == 0) live[liveCount++] = block;
    else if (index % 4 == 1) free(block);
    else remote[remoteCount++] = block;
  }
  freeOnAnotherThread(remote, remoteCount);
  live[count] = (void *)liveCount;
}

int main(int argc, char **argv) {
  size_t divisor = argc > 1 ? strtoul(argv[1], NULL, 10) : 1;
  if (divisor == 0) divisor = 1;
  fixtureReportSwalloc();
  size_t smallCount = (size_t)25165824 / divisor / 12 * 12;  // 1536 MiB
  size_t mediumCount = (size_t)32768 / divisor / 12 * 12;    // 768 MiB
  size_t hugeCount = (size_t)128 / divisor / 4 * 4;          // 256 MiB
  void **live = malloc((smallCount + 1) * sizeof(void *));
  void **remote = malloc((smallCount + 1) * sizeof(void *));
  if (!live || !remote) fixtureFail("malloc");
  site_small(smallCount, live, remote);
  size_t smallKept = (size_t)live[smallCount];
  void **mediumLive = malloc((mediumCount + 1) * sizeof(void *));
  site_medium(mediumCount, mediumLive, remote);
  size_t mediumKept = (size_t)mediumLive[mediumCount];
  void **hugeLive = malloc((hugeCount + 1) * sizeof(void *));
  site_huge(hugeCount, hugeLive, remote);
  size_t hugeKept = (size_t)hugeLive[hugeCount];
  printf("truth site_small alloc=%zu inuse=%zu\n", smallCount * SMALL_BYTES, smallKept * SMALL_BYTES);
  printf("truth site_medium alloc=%zu inuse=%zu\n", mediumCount * MEDIUM_BYTES, mediumKept * MEDIUM_BYTES);
  printf("truth site_huge alloc=%zu inuse=%zu\n", hugeCount * (size_t)HUGE_BYTES, hugeKept * (size_t)HUGE_BYTES);
  fflush(stdout);
  // The kept blocks (in live, mediumLive, hugeLive) stay live at exit, where the profile is written.
  free(remote);
  return 0;
}
