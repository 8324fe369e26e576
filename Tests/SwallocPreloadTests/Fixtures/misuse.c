// Heap misuse that secure mode (SWALLOC_SECURE=1) catches deterministically beyond guarded sampling, in C:
// reads and writes through malloc(0)'s pointer, free_sized with the wrong size. Each mode must stop the
// process; "not stopped" means it did not. `valid` does everything right (no false positive).
#include "fixture.h"

#include <malloc.h>

#pragma GCC diagnostic ignored "-Wpragmas"
#pragma GCC diagnostic ignored "-Warray-bounds"

static volatile char sink;

int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "";
  fixtureReportSwalloc();
  if (strcmp(mode, "zero-read") == 0) {
    char *p = malloc(0);
    FIXTURE_CHECK(p != NULL, "malloc(0) returned NULL");
    sink = *(volatile char *)p;
  } else if (strcmp(mode, "zero-write") == 0) {
    char *p = malloc(0);
    FIXTURE_CHECK(p != NULL, "malloc(0) returned NULL");
    *(volatile char *)p = 1;
  } else if (strcmp(mode, "free-sized") == 0) {
    void (*freeSized)(void *, size_t) = (void (*)(void *, size_t))dlsym(RTLD_DEFAULT, "free_sized");
    FIXTURE_CHECK(freeSized != NULL, "no free_sized");
    char *p = malloc(8);
    freeSized(p, 64);
  } else if (strcmp(mode, "valid") == 0) {
    // malloc(0): unique, freeable, reallocable; calloc(0); free_sized with the right size.
    char *a = malloc(0), *b = malloc(0);
    FIXTURE_CHECK(a != NULL && b != NULL && a != b, "malloc(0) pointers not unique");
    FIXTURE_CHECK(malloc_usable_size(a) < 4096, "malloc(0) usable size");
    char *c = realloc(a, 100);
    FIXTURE_CHECK(c != NULL, "realloc of malloc(0) failed");
    memset(c, 1, 100);
    free(c);
    free(b);
    free(calloc(0, 8));
    free(realloc(NULL, 0));
    void (*freeSized)(void *, size_t) = (void (*)(void *, size_t))dlsym(RTLD_DEFAULT, "free_sized");
    for (size_t size = 1; size < 3000000; size = size * 3 + 1) {
      char *p = malloc(size);
      memset(p, 2, size);
      if (freeSized != NULL) freeSized(p, size); else free(p);
    }
    printf("valid ok\n");
    return 0;
  } else {
    fixtureFail("unknown mode %s", mode);
  }
  printf("not stopped\n");
  return 0;
}
