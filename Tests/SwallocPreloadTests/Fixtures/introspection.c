// Introspection fixture: glibc's mallinfo2, mallinfo, mallopt, malloc_trim, malloc_stats and malloc_info, and
// Swalloc's own C API (swalloc.h, looked up with dlsym). The first argument picks one part. Figures are
// printed as `<label> key=value ...` lines for the test to check; the fixture checks nothing it could report.
#include "fixture.h"

#include <malloc.h>
#include <unistd.h>

#include "swalloc.h"

enum { smallBlockCount = 1000, smallBlockByteCount = 1000 };
static const size_t hugeBlockByteCount = (size_t)3 << 20;

static void *smallBlocks[smallBlockCount];

static void allocateSmallBlocks(size_t byteCount) {
  for (int i = 0; i < smallBlockCount; i++) {
    smallBlocks[i] = malloc(byteCount);
    FIXTURE_CHECK(smallBlocks[i] != NULL, "malloc(%zu) failed", byteCount);
    memset(smallBlocks[i], 0x5a, byteCount);
  }
}

static void freeSmallBlocks(void) {
  for (int i = 0; i < smallBlockCount; i++) free(smallBlocks[i]);
}

/// mallinfo2 and mallinfo back to back (nothing allocates between them), then one line for each.
static void reportMallinfo(const char *label) {
  struct mallinfo2 wide = mallinfo2();
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  struct mallinfo narrow = mallinfo();
#pragma GCC diagnostic pop
  printf("mallinfo2.%s arena=%zu ordblks=%zu uordblks=%zu fordblks=%zu hblks=%zu hblkhd=%zu usmblks=%zu\n", label,
         wide.arena, wide.ordblks, wide.uordblks, wide.fordblks, wide.hblks, wide.hblkhd, wide.usmblks);
  printf("mallinfo.%s arena=%d ordblks=%d uordblks=%d fordblks=%d hblks=%d hblkhd=%d\n", label, narrow.arena,
         narrow.ordblks, narrow.uordblks, narrow.fordblks, narrow.hblks, narrow.hblkhd);
}

/// 1000 blocks of 1000 bytes live, then freed; a 3 MB block live, then freed.
static void mallinfoPart(void) {
  reportMallinfo("start");
  allocateSmallBlocks(smallBlockByteCount);
  reportMallinfo("allocated");
  freeSmallBlocks();
  reportMallinfo("freed");
  void *huge = malloc(hugeBlockByteCount);
  FIXTURE_CHECK(huge != NULL, "malloc(3 MB) failed");
  memset(huge, 0x5a, hugeBlockByteCount);
  reportMallinfo("huge");
  free(huge);
  reportMallinfo("huge-freed");
}

static void malloptPart(void) {
  printf("mallopt M_TRIM_THRESHOLD=%d\n", mallopt(M_TRIM_THRESHOLD, 1));
  printf("mallopt M_MMAP_THRESHOLD=%d\n", mallopt(M_MMAP_THRESHOLD, 65536));
  printf("mallopt unknown=%d\n", mallopt(12345, 1));
  allocateSmallBlocks(smallBlockByteCount);
  freeSmallBlocks();
  printf("malloc_trim result=%d\n", malloc_trim(0));
}

/// stderr is unbuffered: the markers and the table arrive in call order.
static void mallocStatsPart(void) {
  fprintf(stderr, "before malloc_stats\n");
  malloc_stats();
  fprintf(stderr, "after malloc_stats\n");
}

/// The first marker is still in stdout's buffer when malloc_info runs: the XML must come after it.
static void mallocInfoPart(void) {
  allocateSmallBlocks(smallBlockByteCount);
  printf("before malloc_info\n");
  int result = malloc_info(0, stdout);
  printf("malloc_info(0, stdout) = %d\n", result);
  result = malloc_info(1, stdout);
  printf("malloc_info(1, stdout) = %d\n", result);
  freeSmallBlocks();
}

static void reportStatistics(const char *label, const swalloc_statistics *s) {
  printf("statistics.%s allocations=%llu frees=%llu live_bytes=%llu peak_bytes=%llu mapped_bytes=%llu "
         "resident_bytes=%llu purged_bytes=%llu heaps=%llu\n",
         label, (unsigned long long)s->allocations, (unsigned long long)s->frees,
         (unsigned long long)s->live_bytes, (unsigned long long)s->peak_bytes, (unsigned long long)s->mapped_bytes,
         (unsigned long long)s->resident_bytes, (unsigned long long)s->purged_bytes, (unsigned long long)s->heaps);
}

/// swalloc_get_statistics around 1000 mallocs and their frees, swalloc_print_statistics(1), and
/// swalloc_purge after 32 MB of 64-byte blocks were freed.
static void swallocAPIPart(void) {
  void (*getStatistics)(swalloc_statistics *) =
    (void (*)(swalloc_statistics *))dlsym(RTLD_DEFAULT, "swalloc_get_statistics");
  void (*printStatistics)(int) = (void (*)(int))dlsym(RTLD_DEFAULT, "swalloc_print_statistics");
  size_t (*purge)(void) = (size_t (*)(void))dlsym(RTLD_DEFAULT, "swalloc_purge");
  FIXTURE_CHECK(getStatistics != NULL && printStatistics != NULL && purge != NULL,
                "swalloc's C API is missing: swalloc_get_statistics %p, swalloc_print_statistics %p, "
                "swalloc_purge %p",
                (void *)getStatistics, (void *)printStatistics, (void *)purge);
  swalloc_statistics before, allocated, freed, purged;
  getStatistics(&before);
  allocateSmallBlocks(100);
  getStatistics(&allocated);
  freeSmallBlocks();
  getStatistics(&freed);
  reportStatistics("before", &before);
  reportStatistics("allocated", &allocated);
  reportStatistics("freed", &freed);
  fflush(stdout);

  printStatistics(1);

  void **list = NULL;
  for (size_t i = 0; i < ((size_t)32 << 20) / 64; i++) {
    void **block = malloc(64);
    FIXTURE_CHECK(block != NULL, "malloc(64) failed");
    *block = list;
    list = block;
  }
  while (list != NULL) {
    void **next = *list;
    free(list);
    list = next;
  }
  size_t purgedByteCount = purge();
  getStatistics(&purged);
  printf("swalloc_purge bytes=%zu\n", purgedByteCount);
  reportStatistics("purged", &purged);
}

int main(int argc, char **argv) {
  fixtureReportSwalloc();
  printf("process pid=%d\n", (int)getpid());
  FIXTURE_CHECK(argc == 2, "usage: introspection mallinfo | mallopt | malloc-stats | malloc-info | swalloc-api");
  if (strcmp(argv[1], "mallinfo") == 0) {
    mallinfoPart();
  } else if (strcmp(argv[1], "mallopt") == 0) {
    malloptPart();
  } else if (strcmp(argv[1], "malloc-stats") == 0) {
    mallocStatsPart();
  } else if (strcmp(argv[1], "malloc-info") == 0) {
    mallocInfoPart();
  } else if (strcmp(argv[1], "swalloc-api") == 0) {
    swallocAPIPart();
  } else {
    fixtureFail("unknown part %s", argv[1]);
  }
  printf("introspection ok: %s\n", argv[1]);
  return 0;
}
