// out_of_memory: under RLIMIT_AS, every allocation path runs out of address space. Each failure must be
// NULL with ENOMEM (posix_memalign: the ENOMEM return and errno ENOMEM, *memptr untouched), nothing allocated before may be
// damaged, and after frees the allocator must serve again.
#include "fixture.h"
#include <sys/resource.h>

enum { maximumBlocks = 1 << 16 };
static void *blocks[maximumBlocks];
static size_t sizes[maximumBlocks];

/// Allocates blocks of `byteCount` bytes until malloc fails; returns how many it got (from `first`).
static size_t exhaust(size_t first, size_t byteCount) {
  size_t count = first;
  while (count < maximumBlocks) {
    errno = 0;
    void *block = malloc(byteCount);
    if (block == NULL) {
      FIXTURE_CHECK(errno == ENOMEM, "malloc(%zu) failed with errno %d, not ENOMEM", byteCount, errno);
      return count;
    }
    fixtureFill(block, byteCount < 4096 ? byteCount : 4096, count);
    blocks[count] = block;
    sizes[count] = byteCount;
    count++;
  }
  fixtureFail("malloc(%zu) never failed under RLIMIT_AS", byteCount);
}

static void verifyAndFree(size_t from, size_t to) {
  for (size_t i = from; i < to; i++) {
    fixtureVerify(blocks[i], sizes[i] < 4096 ? sizes[i] : 4096, i, "block allocated before memory ran out");
    free(blocks[i]);
  }
}

int main(void) {
  fixtureReportSwalloc();  // prints before the limit, so stdout has its buffer already
  struct rlimit limit = {512u << 20, 512u << 20};
  FIXTURE_CHECK(setrlimit(RLIMIT_AS, &limit) == 0, "setrlimit: %s", strerror(errno));

  // Huge spans first, then segments for small blocks, until both fail.
  size_t huge = exhaust(0, 8u << 20);
  size_t small = exhaust(huge, 1000);
  FIXTURE_CHECK(huge > 0 && small > huge, "nothing was allocated: %zu huge, %zu small", huge, small - huge);

  // Every other path fails cleanly while memory is exhausted.
  errno = 0;
  FIXTURE_CHECK(calloc(1, 8u << 20) == NULL && errno == ENOMEM, "calloc did not fail with ENOMEM");
  errno = 0;
  FIXTURE_CHECK(realloc(blocks[0], 64u << 20) == NULL && errno == ENOMEM, "realloc did not fail with ENOMEM");
  void *sentinel = (void *)0x1234;
  void *result = sentinel;
  errno = EDOM;
  int status = posix_memalign(&result, 1u << 20, 8u << 20);
  // glibc: ENOMEM returned and in errno (its RLIMIT_AS tests check errno after a failed posix_memalign).
  FIXTURE_CHECK(status == ENOMEM && errno == ENOMEM && result == sentinel,
                "posix_memalign returned %d with errno %d (expected ENOMEM and errno ENOMEM, *memptr alone)", status,
                errno);
  // A bad alignment is EINVAL and leaves errno alone, as glibc's.
  errno = EDOM;
  FIXTURE_CHECK(posix_memalign(&result, 24, 64) == EINVAL && errno == EDOM && result == sentinel,
                "posix_memalign(24) did not return EINVAL leaving errno and *memptr alone");
  errno = 0;
  FIXTURE_CHECK(aligned_alloc(1u << 20, 8u << 20) == NULL && errno == ENOMEM, "aligned_alloc did not fail");

  // A failed realloc left its block intact; free everything (checking contents) and allocate again.
  verifyAndFree(0, small);
  size_t again = exhaust(0, 8u << 20);
  FIXTURE_CHECK(again > 0, "the allocator did not serve again after frees");
  verifyAndFree(0, again);
  void *block = malloc(100);
  FIXTURE_CHECK(block != NULL, "malloc(100) failed after everything was freed");
  free(block);
  printf("out-of-memory ok: %zu huge and %zu small blocks before ENOMEM, %zu huge again\n", huge, small - huge,
         again);
  return 0;
}
