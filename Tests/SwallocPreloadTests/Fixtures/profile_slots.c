// profile_slots.c: the heap profiler's sampled blocks under the C library's rules, run with every allocation
// sampled (SWALLOC_PROFILE_SAMPLE=1): samples below 4 KiB live in sample slots, larger ones where the heap put
// them (SWALLOC_SECURE=full: in slots up to 512 KiB), huge ones in their spans.
// Usage: profile_slots semantics | double-free | realloc-freed | interior-free
//   semantics: usable sizes, writes up to them, realloc both ways (contents kept), calloc zeroed, aligned
//   allocations, free_sized, frees on another thread, 10 000 live sampled blocks of 16 bytes (their memory is
//   printed as `rss-growth-kb N`), then `slots ok`.
//   double-free, interior-free: the misuse, then `survived` (default mode reports and ignores it).
//   realloc-freed: realloc of a freed sampled block: reported as its second free would be, NULL with ENOMEM
//   (`realloc-null errno-enomem`), then `survived`.
//   reuse: 2000 rounds of malloc(20000), a write over all of it, free: the freed slot is reused without page
//   faults (`reuse-faults N`); then the block freed last, once malloc_trim has run, holds no resident page
//   (`trimmed-resident-pages N`).
//   slot-floor: run with a sample every few KiB; 16 MB of 1000-byte blocks cycled 8 times, 100 ms apart (the
//   heaps' adaptive purge delay grows past the pause, to 160 ms or more), then four sampled 64 KiB blocks
//   written and freed, 40 ms asleep, a few allocations (slow paths that run the purge checks): the freed slots'
//   resident pages (`floor-resident-pages N`). Freed slots keep their pages for the delay's floor only.
//   borrow: a 40 000-byte block (a 64 KiB slot) written and freed, then a 20 000-byte block (a 32 KiB slot's
//   size): it takes the freed 64 KiB slot, whose pages are still there (`borrowed yes`), with the usable size
//   of its own class (`borrow-usable N`), grows in place to it and is freed; written over all of it in between.
//   slot-floor-small: run with every allocation sampled; four 6 000-byte blocks (8 KiB slots) and four 3 000-byte
//   ones (4 KiB slots) written and freed, 40 ms asleep, then 16 MB of 1000-byte blocks allocated and freed (slow
//   paths that run the purge checks): the freed slots' resident pages (`small-floor-resident-pages N`).
//   in-page: 96 blocks of 16 000 bytes (sampled where the heap puts them: Profile.sampleInPage; 32 to a medium
//   page, whose 23 entries leave 9 to slots) written whole; a third freed here, a third on another thread,
//   half of the rest grown in place to their usable size (16 384), then `in-page ok`: 32 live at exit, 16 of
//   each size.
//   in-page-sweep: run with a sample every few KiB; 1 MiB batches of five sizes (5 000 to 60 000 bytes) in turn,
//   written and freed, four rounds: the peak RSS (`in-page-peak-kb N`).
//   borrow, slot-floor and slot-floor-small test slots of 4 KiB and more: SWALLOC_SECURE=full's samples.
//   low-foreign-free: frees a pointer into memory mapped at 16 MiB (below the sample slots' 128 MiB region
//   size), then `survived`: with the slots not mapped, no address may pass for a slot's (a bug found under
//   valgrind, whose mappings are low: free of any block below 128 MiB crashed once sampling was on).
#include "fixture.h"
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>

/// C23's free_sized, from libswalloc.so (glibc 2.36 has none).
static void (*freeSized)(void *pointer, size_t size);

static long residentKilobytes(void) {
  FILE *file = fopen("/proc/self/statm", "r");
  long size = 0, resident = 0;
  if (file == NULL || fscanf(file, "%ld %ld", &size, &resident) != 2) fixtureFail("statm");
  fclose(file);
  return resident * 4;
}

static void fill(unsigned char *block, size_t count, unsigned seed) {
  for (size_t index = 0; index < count; index++) block[index] = (unsigned char)(seed + index * 7);
}

static void check(const unsigned char *block, size_t count, unsigned seed, const char *what) {
  for (size_t index = 0; index < count; index++) {
    if (block[index] != (unsigned char)(seed + index * 7)) fixtureFail("%s: byte %zu lost", what, index);
  }
}

enum { cycleBlockCount = 16000 };
static void *cycleBlocks[cycleBlockCount];

static void sleepMilliseconds(long milliseconds) {
  struct timespec pause = {milliseconds / 1000, (milliseconds % 1000) * 1000000};
  while (nanosleep(&pause, &pause) != 0) {}
}

static void slotFloor(void) {
  for (int round = 0; round < 8; round++) {
    for (int i = 0; i < cycleBlockCount; i++) {
      cycleBlocks[i] = malloc(1000);
      if (cycleBlocks[i] == NULL) fixtureFail("malloc(1000)");
      memset(cycleBlocks[i], round, 1000);
    }
    for (int i = 0; i < cycleBlockCount; i++) free(cycleBlocks[i]);
    sleepMilliseconds(100);
  }
  unsigned char *blocks[4];
  for (int i = 0; i < 4; i++) {
    blocks[i] = malloc(65536);
    if (blocks[i] == NULL) fixtureFail("malloc(65536)");
    memset(blocks[i], i + 1, 65536);
  }
  for (int i = 0; i < 4; i++) free(blocks[i]);
  sleepMilliseconds(40);
  static const size_t sizes[] = {24, 200, 3000, 6000, 24, 200};
  void *others[6];
  for (int i = 0; i < 6; i++) others[i] = malloc(sizes[i]);
  for (int i = 0; i < 6; i++) free(others[i]);
  int count = 0;
  for (int i = 0; i < 4; i++) {
    unsigned char resident[16];
    if (mincore(blocks[i], 65536, resident) != 0) fixtureFail("mincore");
    for (int page = 0; page < 16; page++) count += resident[page] & 1;
  }
  printf("floor-resident-pages %d\n", count);
}

static void slotFloorSmall(void) {
  static const size_t sizes[] = {6000, 6000, 6000, 6000, 3000, 3000, 3000, 3000};
  unsigned char *blocks[8];
  for (int i = 0; i < 8; i++) {
    blocks[i] = malloc(sizes[i]);
    if (blocks[i] == NULL) fixtureFail("malloc(%zu)", sizes[i]);
    memset(blocks[i], i + 1, sizes[i]);
  }
  for (int i = 0; i < 8; i++) free(blocks[i]);
  sleepMilliseconds(40);
  for (int i = 0; i < cycleBlockCount; i++) {
    cycleBlocks[i] = malloc(1000);
    if (cycleBlocks[i] == NULL) fixtureFail("malloc(1000)");
  }
  for (int i = 0; i < cycleBlockCount; i++) free(cycleBlocks[i]);
  int count = 0;
  for (int i = 0; i < 8; i++) {
    unsigned char resident[2];
    if (mincore(blocks[i], 8192, resident) != 0) fixtureFail("mincore");
    count += (resident[0] & 1) + (sizes[i] > 4096 ? resident[1] & 1 : 0);
  }
  printf("small-floor-resident-pages %d\n", count);
}

enum { inPageCount = 96, inPageBytes = 16000 };

/// The allocation site of `inPage`: not inlined, so that its blocks have a stack of their own.
__attribute__((noinline)) static unsigned char *inPageSite(void) {
  unsigned char *block = malloc(inPageBytes);
  if (block == NULL) fixtureFail("malloc(%d)", inPageBytes);
  return block;
}

static void *freeInPageBlocks(void *argument) {
  unsigned char **blocks = argument;
  for (int index = 0; index < inPageCount / 3; index++) free(blocks[index]);
  return NULL;
}

static void inPage(void) {
  static unsigned char *blocks[inPageCount];
  for (int i = 0; i < inPageCount; i++) {
    blocks[i] = inPageSite();
    fill(blocks[i], inPageBytes, (unsigned)i);
  }
  for (int i = 0; i < inPageCount; i++) check(blocks[i], inPageBytes, (unsigned)i, "in-page block");
  // A third freed here, a third on another thread; half of the rest grown in place to their usable size.
  for (int i = inPageCount / 3; i < 2 * inPageCount / 3; i++) free(blocks[i]);
  pthread_t thread;
  if (pthread_create(&thread, NULL, freeInPageBlocks, blocks) != 0) fixtureFail("pthread_create");
  if (pthread_join(thread, NULL) != 0) fixtureFail("pthread_join");
  for (int i = 2 * inPageCount / 3; i < 2 * inPageCount / 3 + inPageCount / 6; i++) {
    size_t usable = malloc_usable_size(blocks[i]);
    if (usable != 16384) fixtureFail("usable size %zu, not 16384", usable);
    if (realloc(blocks[i], usable) != blocks[i]) fixtureFail("realloc to the usable size moved the block");
    check(blocks[i], inPageBytes, (unsigned)i, "grown in-page block");
  }
  printf("in-page ok\n");
}

/// Batches of 1 MiB of five sizes in turn, four rounds, each block written and freed with its batch: slots kept
/// each size's freed samples beside the heap's freed pages (sizesweep's peak RSS: +7.5 % with profiling); in
/// place, the samples are the heap's blocks. Prints the peak: `in-page-peak-kb N`.
static void inPageSweep(void) {
  static const size_t sizes[] = {5000, 9000, 17000, 33000, 60000};
  static unsigned char *batch[256];
  for (int round = 0; round < 4; round++) {
    for (int s = 0; s < 5; s++) {
      int count = (int)((1u << 20) / sizes[s]);
      for (int i = 0; i < count; i++) {
        batch[i] = malloc(sizes[s]);
        if (batch[i] == NULL) fixtureFail("malloc(%zu)", sizes[s]);
        for (size_t offset = 0; offset < sizes[s]; offset += 4096) batch[i][offset] = (unsigned char)i;
        batch[i][sizes[s] - 1] = 1;
      }
      for (int i = 0; i < count; i++) free(batch[i]);
    }
  }
  struct rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  printf("in-page-peak-kb %ld\n", usage.ru_maxrss);
}

static void *freeAll(void *argument) {
  void **blocks = argument;
  for (int index = 0; index < 1000; index++) free(blocks[index]);
  return NULL;
}

static void semantics(void) {
  static const size_t sizes[] = {1, 8, 16, 17, 100, 1000, 4000, 4096, 4097, 30000, 70000, 1 << 20};
  for (size_t index = 0; index < sizeof sizes / sizeof sizes[0]; index++) {
    size_t size = sizes[index];
    unsigned char *block = malloc(size);
    if (block == NULL || !fixtureIsAligned(block, 16)) fixtureFail("malloc(%zu)", size);
    size_t usable = malloc_usable_size(block);
    if (usable < size) fixtureFail("usable size %zu < %zu", usable, size);
    fill(block, usable, (unsigned)size);
    unsigned char *grown = realloc(block, size * 3 + 10);
    if (grown == NULL) fixtureFail("realloc grow");
    check(grown, usable < size * 3 + 10 ? usable : size * 3 + 10, (unsigned)size, "realloc grow");
    unsigned char *shrunk = realloc(grown, size / 2 + 1);
    if (shrunk == NULL) fixtureFail("realloc shrink");
    check(shrunk, size / 2 + 1, (unsigned)size, "realloc shrink");
    free(shrunk);
    unsigned char *zeroed = calloc(size, 1);
    for (size_t byte = 0; byte < size; byte++) if (zeroed[byte] != 0) fixtureFail("calloc(%zu) byte %zu", size, byte);
    freeSized(zeroed, size);
  }
  // Up to the largest slot (512 KiB): each takes a slot of its alignment, which must be aligned in memory, not
  // only from the slots' region's start (a 32 KiB-aligned request once got a slot 24 KiB off: fuzzer).
  static const size_t alignments[] = {32, 64, 256, 4096, 8192, 32768, 65536, 262144, 524288};
  for (size_t index = 0; index < sizeof alignments / sizeof alignments[0]; index++) {
    size_t alignment = alignments[index];
    void *block = aligned_alloc(alignment, 100);
    void *other = NULL;
    if (block == NULL || !fixtureIsAligned(block, alignment)) fixtureFail("aligned_alloc(%zu)", alignment);
    if (posix_memalign(&other, alignment, 3000) != 0 || !fixtureIsAligned(other, alignment)) fixtureFail("posix_memalign");
    fill(block, 100, 3);
    fill(other, 3000, 4);
    check(block, 100, 3, "aligned");
    check(other, 3000, 4, "posix_memalign");
    free(block);
    free(other);
  }
  void *blocks[1000];
  for (int index = 0; index < 1000; index++) blocks[index] = malloc(24 + index % 200);
  pthread_t thread;
  if (pthread_create(&thread, NULL, freeAll, blocks) != 0) fixtureFail("pthread_create");
  pthread_join(thread, NULL);
  // 10 000 live sampled 16-byte blocks: 160 KB of slots (in huge spans of their own they took 160 MB).
  long before = residentKilobytes();
  enum { count = 10000 };
  void **live = malloc(count * sizeof(void *));
  for (int index = 0; index < count; index++) {
    live[index] = malloc(16);
    if (live[index] == NULL) fixtureFail("malloc(16) #%d", index);
    memset(live[index], index, 16);
  }
  printf("rss-growth-kb %ld\n", residentKilobytes() - before);
  for (int index = 0; index < count; index++) free(live[index]);
  free(live);
  printf("slots ok\n");
}

int main(int argc, char **argv) {
  if (argc < 2) fixtureFail("usage");
  if (!fixtureReportSwalloc()) fixtureFail("run it under libswalloc.so");
  freeSized = (void (*)(void *, size_t))dlsym(RTLD_DEFAULT, "free_sized");
  if (freeSized == NULL) fixtureFail("free_sized is not exported");
  if (strcmp(argv[1], "semantics") == 0) {
    semantics();
  } else if (strcmp(argv[1], "double-free") == 0) {
    char *volatile block = malloc(40);
    printf("block=%p\n", (void *)block);
    fflush(stdout);
    free(block);
    free(block);
    printf("survived\n");
  } else if (strcmp(argv[1], "realloc-freed") == 0) {
    char *volatile block = malloc(40);
    printf("block=%p\n", (void *)block);
    fflush(stdout);
    free(block);
    errno = 0;
    void *moved = realloc(block, 100);
    printf("realloc-%s errno-%s\n", moved == NULL ? "null" : "block", errno == ENOMEM ? "enomem" : "other");
    printf("survived\n");
  } else if (strcmp(argv[1], "low-foreign-free") == 0) {
    char *low = mmap((void *)(16ul << 20), 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
                     -1, 0);
    if (low == MAP_FAILED || low != (char *)(16ul << 20)) fixtureFail("cannot map at 16 MiB");
    void *block = malloc(100);
    free(low);
    free(block);
    printf("survived\n");
  } else if (strcmp(argv[1], "reuse") == 0) {
    struct rusage before, after;
    unsigned char *last = NULL;
    for (int round = 0; round < 2000; round++) {
      if (round == 10) getrusage(RUSAGE_SELF, &before);
      unsigned char *block = malloc(20000);
      if (block == NULL) fixtureFail("malloc");
      memset(block, round, 20000);
      free(block);
      last = block;
    }
    getrusage(RUSAGE_SELF, &after);
    printf("reuse-faults %ld\n", after.ru_minflt - before.ru_minflt);
    malloc_trim(0);
    // The slot is 32 KiB and aligned to it: its eight pages.
    unsigned char resident[8];
    if (mincore(last, 32768, resident) != 0) fixtureFail("mincore");
    int count = 0;
    for (int page = 0; page < 8; page++) count += resident[page] & 1;
    printf("trimmed-resident-pages %d\n", count);
  } else if (strcmp(argv[1], "borrow") == 0) {
    unsigned char *large = malloc(40000);
    if (large == NULL) fixtureFail("malloc");
    memset(large, 1, 40000);
    free(large);
    unsigned char *block = malloc(20000);
    if (block == NULL) fixtureFail("malloc");
    size_t usable = malloc_usable_size(block);
    memset(block, 2, usable);
    printf("borrowed %s\n", block == large ? "yes" : "no");
    printf("borrow-usable %zu\n", usable);
    unsigned char *grown = realloc(block, usable);
    if (grown != block) fixtureFail("realloc to the usable size moved the block");
    free(grown);
  } else if (strcmp(argv[1], "slot-floor-small") == 0) {
    slotFloorSmall();
  } else if (strcmp(argv[1], "in-page") == 0) {
    inPage();
  } else if (strcmp(argv[1], "in-page-sweep") == 0) {
    inPageSweep();
  } else if (strcmp(argv[1], "slot-floor") == 0) {
    slotFloor();
  } else if (strcmp(argv[1], "interior-free") == 0) {
    char *volatile block = malloc(40);
    printf("block=%p\n", (void *)block);
    fflush(stdout);
    free(block + 16);
    free(block);
    printf("survived\n");
  }
  return 0;
}
