// span_reuse: a freed large block's span serves the next, larger block: the span cache moves it, grown, with
// mremap, so its pages come along resident (`grown resident=N of=M`: pages of the new block's first 6 MiB
// resident before it is touched). Then calloc of a still larger block must read all zeros, though it may get
// the same pages back with their old contents moved along.
#include "fixture.h"

#include <sys/mman.h>
#include <unistd.h>

static size_t residentPages(const unsigned char *start, size_t byteCount) {
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  uintptr_t first = ((uintptr_t)start + page - 1) & ~(uintptr_t)(page - 1);
  size_t count = (byteCount - (first - (uintptr_t)start)) / page;
  static unsigned char vector[1 << 16];
  FIXTURE_CHECK(count <= sizeof vector, "range too large");
  FIXTURE_CHECK(mincore((void *)first, count * page, vector) == 0, "mincore failed: %s", strerror(errno));
  size_t resident = 0;
  for (size_t i = 0; i < count; i++) resident += vector[i] & 1;
  return resident;
}

int main(void) {
  fixtureReportSwalloc();
  const size_t small = (size_t)8 << 20, larger = (size_t)12 << 20, largest = (size_t)20 << 20;
  unsigned char *block = malloc(small);
  FIXTURE_CHECK(block != NULL, "malloc(8 MiB) failed");
  fixtureFill(block, small, 1);
  free(block);

  unsigned char *grown = malloc(larger);
  FIXTURE_CHECK(grown != NULL, "malloc(12 MiB) failed");
  size_t checked = (size_t)6 << 20;
  printf("grown resident=%zu of=%zu\n", residentPages(grown, checked), checked / (size_t)sysconf(_SC_PAGESIZE));
  fixtureFill(grown, larger, 2);
  fixtureVerify(grown, larger, 2, "the grown block");
  free(grown);

  unsigned char *zeroed = calloc(1, largest);
  FIXTURE_CHECK(zeroed != NULL, "calloc(20 MiB) failed");
  for (size_t i = 0; i < largest; i++) {
    FIXTURE_CHECK(zeroed[i] == 0, "calloc(20 MiB): byte %zu is %d, not zero", i, zeroed[i]);
  }
  fixtureFill(zeroed, largest, 3);
  fixtureVerify(zeroed, largest, 3, "the calloc block");
  free(zeroed);
  printf("span reuse ok\n");
  return 0;
}
