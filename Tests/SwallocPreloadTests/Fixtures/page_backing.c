// Page-backing fixture: what the kernel says (/proc/self/smaps) about the mappings that hold swalloc's blocks,
// for SWALLOC_HUGE_PAGES and SWALLOC_LOCKED. The first argument picks the check:
//   huge-pages   4 MB of 256-byte blocks and a 10 MB block, touched; prints the bytes of 2 MiB-page mappings
//                that hold them: `huge-pages bytes=N small=N large=0|1` (small: blocks on 2 MiB pages)
//   transparent  a 10 MB block; prints its mapping's THPeligible: `large-block thp-eligible=N` (-1: no field)
//   locked       raises RLIMIT_MEMLOCK, then a fresh 8 MB block (1 MB when the limit stays below 64 MB), one byte
//                touched; prints its mapping's Rss and Locked: `memlock limit=N` (-1: unlimited) and
//                `large-block bytes=N rss=N locked=N` (bytes)
#include "fixture.h"

#include <sys/resource.h>

enum { smallBlockCount = 16384, smallBlockByteCount = 256, maximumMappingCount = 8192 };
static const size_t largeBlockByteCount = (size_t)10 << 20;
static const size_t lockedBlockByteCount = (size_t)8 << 20;
static const size_t smallLimitLockedBlockByteCount = (size_t)1 << 20;

/// One /proc/self/smaps entry; the sizes are in KiB, -1 where the entry has no such field.
typedef struct {
  uintptr_t start, end;
  long kernelPageKiB, rssKiB, lockedKiB, thpEligible;
} Mapping;

static Mapping mappings[maximumMappingCount];
static int mappingCount;

/// The value of `field` (e.g. "Rss:") if `line` is that field's line.
static int fieldValue(const char *line, const char *field, long *value) {
  size_t length = strlen(field);
  if (strncmp(line, field, length) != 0) return 0;
  *value = strtol(line + length, NULL, 10);
  return 1;
}

/// Reads /proc/self/smaps into `mappings`. Call it after the blocks exist: stdio's own buffers come first.
static void readMappings(void) {
  FILE *file = fopen("/proc/self/smaps", "r");
  FIXTURE_CHECK(file != NULL, "cannot open /proc/self/smaps: %s", strerror(errno));
  static char line[4096];
  mappingCount = 0;
  Mapping *current = NULL;
  while (fgets(line, sizeof line, file) != NULL) {
    unsigned long start, end;
    // A header line starts with `start-end `; no field line does (a field name is letters and a colon).
    if (sscanf(line, "%lx-%lx ", &start, &end) == 2) {
      FIXTURE_CHECK(mappingCount < maximumMappingCount, "more than %d mappings", maximumMappingCount);
      current = &mappings[mappingCount++];
      *current = (Mapping){start, end, -1, -1, -1, -1};
      continue;
    }
    if (current == NULL) continue;
    if (fieldValue(line, "KernelPageSize:", &current->kernelPageKiB)) continue;
    if (fieldValue(line, "Rss:", &current->rssKiB)) continue;
    if (fieldValue(line, "Locked:", &current->lockedKiB)) continue;
    if (fieldValue(line, "THPeligible:", &current->thpEligible)) continue;
  }
  fclose(file);
}

static Mapping *mappingContaining(const void *pointer) {
  uintptr_t address = (uintptr_t)pointer;
  for (int i = 0; i < mappingCount; i++)
    if (mappings[i].start <= address && address < mappings[i].end) return &mappings[i];
  return NULL;
}

static void hugePagesCheck(void) {
  static void *smallBlocks[smallBlockCount];
  static unsigned char counted[maximumMappingCount];
  for (int i = 0; i < smallBlockCount; i++) {
    smallBlocks[i] = malloc(smallBlockByteCount);
    FIXTURE_CHECK(smallBlocks[i] != NULL, "malloc(%d) failed", smallBlockByteCount);
    fixtureFill(smallBlocks[i], smallBlockByteCount, (uint64_t)i);
  }
  unsigned char *large = malloc(largeBlockByteCount);
  FIXTURE_CHECK(large != NULL, "malloc(10 MB) failed");
  fixtureFill(large, largeBlockByteCount, 1);
  readMappings();

  size_t hugePageBytes = 0;
  int smallOnHugePages = 0;
  for (int i = 0; i <= smallBlockCount; i++) {
    const void *block = i < smallBlockCount ? smallBlocks[i] : (const void *)large;
    Mapping *mapping = mappingContaining(block);
    FIXTURE_CHECK(mapping != NULL, "no mapping in /proc/self/smaps holds block %p", block);
    if (mapping->kernelPageKiB != 2048) continue;
    if (i < smallBlockCount) smallOnHugePages++;
    if (!counted[mapping - mappings]) {
      counted[mapping - mappings] = 1;
      hugePageBytes += mapping->end - mapping->start;
    }
  }
  Mapping *largeMapping = mappingContaining(large);
  printf("huge-pages bytes=%zu small=%d large=%d\n", hugePageBytes, smallOnHugePages,
         largeMapping->kernelPageKiB == 2048);

  fixtureVerify(large, largeBlockByteCount, 1, "the 10 MB block");
  free(large);
  for (int i = 0; i < smallBlockCount; i++) {
    fixtureVerify(smallBlocks[i], smallBlockByteCount, (uint64_t)i, "small block");
    free(smallBlocks[i]);
  }
}

static void transparentCheck(void) {
  unsigned char *large = malloc(largeBlockByteCount);
  FIXTURE_CHECK(large != NULL, "malloc(10 MB) failed");
  memset(large, 0x5a, largeBlockByteCount);
  readMappings();
  Mapping *mapping = mappingContaining(large);
  FIXTURE_CHECK(mapping != NULL, "no mapping in /proc/self/smaps holds the 10 MB block %p", (void *)large);
  printf("large-block thp-eligible=%ld\n", mapping->thpEligible);
  free(large);
}

static void lockedCheck(void) {
  // Root may raise the hard limit; others get their hard limit as the soft one.
  struct rlimit limit = {RLIM_INFINITY, RLIM_INFINITY};
  if (setrlimit(RLIMIT_MEMLOCK, &limit) != 0 && getrlimit(RLIMIT_MEMLOCK, &limit) == 0) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_MEMLOCK, &limit);
  }
  FIXTURE_CHECK(getrlimit(RLIMIT_MEMLOCK, &limit) == 0, "getrlimit(RLIMIT_MEMLOCK): %s", strerror(errno));
  printf("memlock limit=%lld\n", limit.rlim_cur == RLIM_INFINITY ? -1LL : (long long)limit.rlim_cur);
  // Under a small limit (8 MB is a common default) the block and swalloc's first segments must fit in it.
  size_t byteCount = limit.rlim_cur == RLIM_INFINITY || limit.rlim_cur >= (rlim_t)64 << 20
    ? lockedBlockByteCount : smallLimitLockedBlockByteCount;

  volatile unsigned char *large = malloc(byteCount);
  FIXTURE_CHECK(large != NULL, "malloc(%zu) failed", byteCount);
  large[0] = 1;
  readMappings();
  Mapping *mapping = mappingContaining((const void *)large);
  FIXTURE_CHECK(mapping != NULL, "no mapping in /proc/self/smaps holds the block %p", (void *)large);
  printf("large-block bytes=%zu rss=%ld locked=%ld\n", byteCount, mapping->rssKiB * 1024, mapping->lockedKiB * 1024);
  free((void *)large);
}

int main(int argc, char **argv) {
  fixtureReportSwalloc();
  FIXTURE_CHECK(argc == 2, "usage: page_backing huge-pages | transparent | locked");
  if (strcmp(argv[1], "huge-pages") == 0) {
    hugePagesCheck();
  } else if (strcmp(argv[1], "transparent") == 0) {
    transparentCheck();
  } else if (strcmp(argv[1], "locked") == 0) {
    lockedCheck();
  } else {
    fixtureFail("unknown check %s", argv[1]);
  }
  printf("page backing ok: %s\n", argv[1]);
  return 0;
}
