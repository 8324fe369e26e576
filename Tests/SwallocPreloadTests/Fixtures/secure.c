// Secure mode (SWALLOC_SECURE=1). `secure ok` runs a threaded workload and reports what secure mode changes
// (block order, guard pages); every other mode commits one heap error that secure mode must stop with a
// message and SIGABRT (or, for an overflow into a guard page, SIGSEGV) before it returns.
#include "fixture.h"
#include <malloc.h>

#include <pthread.h>
#include <stdint.h>

#define THREADS 4
#define ROUNDS 20000

static void *volatile slots[THREADS][256];

static void *worker(void *argument) {
  uintptr_t index = (uintptr_t)argument;
  uint64_t state = 0x9E3779B97F4A7C15ull * (index + 1);
  for (int round = 0; round < ROUNDS; round++) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    size_t slot = (state >> 33) % 256;
    // Free a block another thread allocated (cross-thread frees take the remote path).
    size_t victim = (index + 1) % THREADS;
    void *old = __atomic_exchange_n(&slots[victim][slot], NULL, __ATOMIC_ACQ_REL);
    if (old != NULL) {
      size_t size = *(size_t *)old;
      fixtureVerify((char *)old + 8, size - 8, (uint64_t)(uintptr_t)old, "cross-thread block");
      free(old);
    }
    size_t sizes[] = {16, 24, 48, 100, 1000, 3000, 9000, 70000, 600000};
    size_t size = sizes[(state >> 20) % 9];
    unsigned char *block = (state >> 40) % 7 == 0 ? calloc(1, size) : malloc(size);
    FIXTURE_CHECK(block != NULL, "malloc(%zu) failed", size);
    *(size_t *)block = size;
    fixtureFill(block + 8, size - 8, (uint64_t)(uintptr_t)block);
    void *previous = __atomic_exchange_n(&slots[index][slot], block, __ATOMIC_ACQ_REL);
    if (previous != NULL) free(previous);
  }
  return NULL;
}

/// Counts the inaccessible (---p) mappings: secure mode's guard pages split Swalloc's spans.
static int countGuardMappings(void) {
  FILE *maps = fopen("/proc/self/maps", "r");
  if (maps == NULL) return -1;
  char line[512];
  int count = 0;
  while (fgets(line, sizeof line, maps) != NULL) {
    char permissions[8] = {0};
    if (sscanf(line, "%*x-%*x %7s", permissions) == 1 && strcmp(permissions, "---p") == 0) count++;
  }
  fclose(maps);
  return count;
}

static int runWorkload(void) {
  fixtureReportSwalloc();
  // Block order: 64 blocks of 48 bytes from a fresh size class. In order, each is 48 bytes after the last.
  char *blocks[64];
  int ascending = 0;
  for (int i = 0; i < 64; i++) {
    blocks[i] = malloc(48);
    if (i > 0 && blocks[i] == blocks[i - 1] + 48) ascending++;
  }
  printf("ascending neighbours: %d of 63\n", ascending);
  for (int i = 0; i < 64; i++) free(blocks[i]);

  int before = countGuardMappings();
  pthread_t threads[THREADS];
  for (uintptr_t i = 0; i < THREADS; i++) pthread_create(&threads[i], NULL, worker, (void *)i);
  for (int i = 0; i < THREADS; i++) pthread_join(threads[i], NULL);
  int during = countGuardMappings();
  printf("guard mappings: %d before, %d after the workload\n", before, during);
  for (int t = 0; t < THREADS; t++)
    for (int s = 0; s < 256; s++) free(slots[t][s]);

  // Regression: a huge block aligned to 64 KiB starts in the span's second slice, whose descriptor is a stub;
  // secure free once took it for a page not in use and aborted with "double free".
  for (int i = 0; i < 50; i++) {
    void *huge = NULL;
    FIXTURE_CHECK(posix_memalign(&huge, 65536, 700000 + (size_t)i * 4096) == 0, "aligned huge block");
    memset(huge, 1, 700000);
    free(huge);
  }
  void *aligned = NULL;
  FIXTURE_CHECK(posix_memalign(&aligned, 4096, 5000) == 0 && fixtureIsAligned(aligned, 4096), "posix_memalign");
  char *grown = realloc(malloc(10), 2000000);
  FIXTURE_CHECK(grown != NULL, "realloc");
  grown[1999999] = 1;
  // Huge blocks grow and shrink, in place while their span has room: every last byte writable.
  for (size_t n = 2310000; n < 9000000; n += 310000) {
    grown = realloc(grown, n);
    FIXTURE_CHECK(grown != NULL && grown[1999999] == 1, "realloc growth to %zu", n);
    grown[n - 1] = 2;
  }
  for (size_t n = 9000000; n > 2100000; n -= 730000) {
    grown = realloc(grown, n);
    FIXTURE_CHECK(grown != NULL && grown[1999999] == 1, "realloc shrink to %zu", n);
    grown[n - 1] = 3;
  }
  free(grown);
  free(aligned);
  puts("secure workload ok");
  return 0;
}

static void *freeOnThread(void *pointer) {
  free(pointer);
  return NULL;
}

/// Frees `pointer` on a new thread (a remote free: the block's page belongs to this thread's heap).
static void freeRemotely(void *pointer) {
  pthread_t thread;
  FIXTURE_CHECK(pthread_create(&thread, NULL, freeOnThread, pointer) == 0, "pthread_create");
  pthread_join(thread, NULL);
}

int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "ok";
  if (strcmp(mode, "ok") == 0) return runWorkload();
  char *a = malloc(40);
  char *b = malloc(40);
  if (strcmp(mode, "double") == 0) {
    free(a);
    free(b);
    free(a);
  } else if (strcmp(mode, "remote-double") == 0) {
    // Another thread's frees (level 1's own path, Secure.freeRemote): the second finds the freed marker.
    freeRemotely(a);
    freeRemotely(b);
    freeRemotely(a);
  } else if (strcmp(mode, "remote-interior") == 0 || strcmp(mode, "interior") == 0) {
    if (strcmp(mode, "interior") == 0) {
      free(a + 16);
    } else {
      freeRemotely(a + 16);
    }
    // Where the free goes on (the default mode ignores it): malloc must never hand out the pointer, which
    // would overlap the live block `a`.
    for (int i = 0; i < 1000; i++) {
      char *block = malloc(40);
      FIXTURE_CHECK(block != a + 16, "malloc handed out %p, 16 bytes into the live block %p", block, a);
    }
    printf("interior %p ignored\n", a + 16);
  } else if (strcmp(mode, "interior-many") == 0) {
    // Fifteen frees of pointers into live blocks (the default mode reports the first 10).
    for (int i = 0; i < 15; i++) free((i % 2 ? a : b) + 16 + 8 * (i % 3));
    puts("interior-many done");
  } else if (strcmp(mode, "foreign") == 0) {
    static char notOurs[64];
    free(notOurs + 16);
  } else if (strcmp(mode, "huge-double") == 0) {
    char *huge = malloc(1 << 20);
    free(huge);
    free(huge);
  } else if (strcmp(mode, "use-after-free") == 0) {
    // Overwrite a freed block's link, then allocate until the list reaches it.
    free(a);
    memset(a, 0x41, 16);
    for (int i = 0; i < 100000; i++) (void)malloc(40);
  } else if (strcmp(mode, "overflow") == 0) {
    // One byte past a huge block's usable size (its span's room, up to the span's last page) is a guard page.
    volatile char *huge = malloc(1 << 20);
    volatile size_t end = malloc_usable_size((void *)huge);
    FIXTURE_CHECK(end >= 1 << 20, "usable size %zu", (size_t)end);
    huge[end - 1] = 1;
    huge[end] = 1;
  } else if (strcmp(mode, "grown-overflow") == 0 || strcmp(mode, "grown-underflow") == 0) {
    // A huge block in a cached span that grows (mremap) to hold a larger one: its guard pages are lifted
    // for the move and must be back, after the block and before it.
    char *first = malloc(8 << 20);
    memset(first, 1, 8 << 20);
    free(first);
    volatile char *huge = malloc(12 << 20);
    volatile size_t end = malloc_usable_size((void *)huge);
    FIXTURE_CHECK(end >= 12 << 20, "usable size %zu", (size_t)end);
    memset((void *)huge, 2, end);
    if (strcmp(mode, "grown-overflow") == 0) {
      huge[end] = 1;
    } else {
      huge[-1] = 1;
    }
  } else {
    fixtureFail("unknown mode %s", mode);
  }
  puts("not stopped");
  return 0;
}
