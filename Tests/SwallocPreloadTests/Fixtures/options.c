// Options fixture: a short workload of small, medium and large blocks for the SWALLOC_* option tests, and with
// the argument `invalid-frees`, frees of pointers swalloc does not own (into a static array, of a stack
// variable) and a double free of a 3 MB block, after which the program must go on unharmed.
#include "fixture.h"

#include <unistd.h>

enum { blockCount = 512, roundCount = 4 };

static unsigned char staticArray[256];

/// Allocates, fills, verifies and frees `blockCount` blocks of random sizes (some of 1 MiB), `roundCount` times.
static void workload(uint64_t seed) {
  static void *blocks[blockCount];
  static size_t byteCounts[blockCount];
  for (int round = 0; round < roundCount; round++) {
    for (int i = 0; i < blockCount; i++) {
      byteCounts[i] = i % 64 == 0 ? (size_t)1 << 20 : 1 + (size_t)(fixtureRandom(&seed) % 4096);
      blocks[i] = malloc(byteCounts[i]);
      FIXTURE_CHECK(blocks[i] != NULL, "malloc(%zu) failed", byteCounts[i]);
      fixtureFill(blocks[i], byteCounts[i], (uint64_t)i);
    }
    for (int i = 0; i < blockCount; i++) {
      fixtureVerify(blocks[i], byteCounts[i], (uint64_t)i, "workload block");
      free(blocks[i]);
    }
  }
}

/// Each call is an invalid free that swalloc must ignore. The addresses pass through fixtureAddress so that
/// GCC neither warns about nor rewrites them.
static void invalidFrees(void) {
  volatile int stackVariable = 42;
  fixtureFill(staticArray, sizeof staticArray, 7);
  free((void *)fixtureAddress(staticArray + 16));
  free((void *)fixtureAddress((const void *)&stackVariable));
  void *large = malloc((size_t)3 << 20);
  FIXTURE_CHECK(large != NULL, "malloc(3 MB) failed");
  memset(large, 0x5a, (size_t)3 << 20);
  free(large);
  free((void *)fixtureAddress(large));
  fixtureVerify(staticArray, sizeof staticArray, 7, "the static array after free() of a pointer into it");
  FIXTURE_CHECK(stackVariable == 42, "the stack variable changed to %d after free() of its address", stackVariable);
  printf("invalid frees done: 3\n");
}

int main(int argc, char **argv) {
  int active = fixtureReportSwalloc();
  printf("process pid=%d\n", (int)getpid());
  if (argc > 1 && strcmp(argv[1], "invalid-frees") == 0) {
    // Under another malloc these frees would abort: the mode needs swalloc.
    FIXTURE_CHECK(active, "invalid-frees needs libswalloc.so preloaded");
    invalidFrees();
  } else if (argc > 1) {
    fixtureFail("unknown mode %s", argv[1]);
  }
  workload(0x9e3779b9);
  printf("options ok\n");
  return 0;
}
