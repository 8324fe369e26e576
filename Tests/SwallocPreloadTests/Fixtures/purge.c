// Purge fixture: allocates 200 MB in 64-byte blocks, frees them all, then gives the memory back either with
// `malloc_trim(0)` (argument `trim`) or by waiting out the purge delay and allocating a little (argument
// `delay <milliseconds to sleep>`). Prints the resident set (from /proc/self/statm) at each step:
//   rss start=N peak=N freed=N end=N      (bytes)
// `cycle <rounds> <milliseconds>` instead allocates and frees 16 MB in 1000-byte blocks each round, with a
// pause between rounds longer than the shortest purge delay, and prints the minor page faults of the first
// and the second half of the rounds: `cycle first=N late=N`. A purge delay that grows when purged
// memory is wanted back soon after keeps the late rounds free of faults.
#include "fixture.h"

#include <fcntl.h>
#include <malloc.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

enum { blockByteCount = 64 };
static const size_t totalByteCount = (size_t)200 << 20;

/// The resident set in bytes: the second field of /proc/self/statm, read without stdio (which allocates).
static size_t residentBytes(void) {
  char text[128];
  int descriptor = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
  FIXTURE_CHECK(descriptor >= 0, "cannot open /proc/self/statm: %s", strerror(errno));
  ssize_t length = read(descriptor, text, sizeof text - 1);
  close(descriptor);
  FIXTURE_CHECK(length > 0, "cannot read /proc/self/statm");
  text[length] = 0;
  unsigned long size = 0, resident = 0;
  FIXTURE_CHECK(sscanf(text, "%lu %lu", &size, &resident) == 2, "cannot parse /proc/self/statm: %s", text);
  return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
}

/// The 64-byte blocks form a list through their first word, so no pointer array adds to the footprint.
typedef struct Block {
  struct Block *next;
  uint64_t payload[blockByteCount / 8 - 1];
} Block;

static Block *allocateAll(void) {
  Block *head = NULL;
  for (size_t i = 0; i < totalByteCount / blockByteCount; i++) {
    Block *block = malloc(blockByteCount);
    FIXTURE_CHECK(block != NULL, "malloc(%d) failed after %zu blocks", blockByteCount, i);
    block->next = head;
    block->payload[0] = i;
    head = block;
  }
  return head;
}

static void freeAll(Block *head) {
  size_t expected = totalByteCount / blockByteCount;
  while (head != NULL) {
    Block *next = head->next;
    expected--;
    FIXTURE_CHECK(head->payload[0] == expected, "block %p holds %llu, expected %zu", (void *)head,
                  (unsigned long long)head->payload[0], expected);
    free(head);
    head = next;
  }
}

/// A few blocks of varied sizes, the largest 1 MB: the allocator activity that lets due pages be purged.
static void allocateALittle(void) {
  static const size_t byteCounts[] = {16, 100, 1000, 10000, 100000, (size_t)1 << 20};
  for (int round = 0; round < 4; round++) {
    for (size_t i = 0; i < sizeof byteCounts / sizeof byteCounts[0]; i++) {
      void *block = malloc(byteCounts[i]);
      FIXTURE_CHECK(block != NULL, "malloc(%zu) failed", byteCounts[i]);
      memset(block, 0x5a, byteCounts[i]);
      free(block);
    }
  }
}

static void sleepMilliseconds(long milliseconds) {
  struct timespec pause = {milliseconds / 1000, (milliseconds % 1000) * 1000000L};
  while (nanosleep(&pause, &pause) != 0 && errno == EINTR) {}
}

static long minorFaults(void) {
  struct rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_minflt;
}

enum { cycleBlockCount = 16000 };
static void *cycleBlocks[cycleBlockCount];

static void cycle(int rounds, long milliseconds) {
  long first = 0, late = 0;
  for (int round = 0; round < rounds; round++) {
    long before = minorFaults();
    for (int i = 0; i < cycleBlockCount; i++) {
      cycleBlocks[i] = malloc(1000);
      FIXTURE_CHECK(cycleBlocks[i] != NULL, "malloc(1000) failed");
      memset(cycleBlocks[i], round, 1000);
    }
    for (int i = 0; i < cycleBlockCount; i++) free(cycleBlocks[i]);
    long faults = minorFaults() - before;
    if (round < rounds / 2) first += faults; else late += faults;
    sleepMilliseconds(milliseconds);
  }
  printf("cycle first=%ld late=%ld\n", first, late);
}

int main(int argc, char **argv) {
  fixtureReportSwalloc();
  if (argc == 4 && strcmp(argv[1], "cycle") == 0) {
    cycle(atoi(argv[2]), atol(argv[3]));
    return 0;
  }
  FIXTURE_CHECK(argc >= 2, "usage: purge trim | purge delay <milliseconds> | purge cycle <rounds> <milliseconds>");
  size_t start = residentBytes();
  Block *head = allocateAll();
  size_t peak = residentBytes();
  freeAll(head);
  size_t freed = residentBytes();
  if (strcmp(argv[1], "trim") == 0) {
    int trimmed = malloc_trim(0);
    printf("malloc_trim(0) = %d\n", trimmed);
  } else if (strcmp(argv[1], "delay") == 0 && argc == 3) {
    sleepMilliseconds(atol(argv[2]));
    allocateALittle();
  } else {
    fixtureFail("unknown mode %s", argv[1]);
  }
  size_t end = residentBytes();
  printf("rss start=%zu peak=%zu freed=%zu end=%zu\n", start, peak, freed, end);
  return 0;
}
