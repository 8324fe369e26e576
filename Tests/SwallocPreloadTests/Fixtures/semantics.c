// C semantics fixture: checks DESIGN.md section 4 (the glibc behaviour a program must not notice changing)
// through the real exported symbols. Every failed check prints one line and the run continues; the last line is
// `semantics ok`, or the exit status is 1. Checks that only swalloc promises are skipped under another malloc.
// Build with -fno-builtin: GCC otherwise folds alignment checks on malloc results and drops malloc/free pairs.
#include "fixture.h"

#include <errno.h>
#include <malloc.h>
#include <stdbool.h>
#include <unistd.h>

static int failureCount;
static bool swallocActive;

#define CHECK(condition, ...)                                                                                    \
  do {                                                                                                           \
    if (!(condition)) {                                                                                          \
      failureCount++;                                                                                            \
      fprintf(stderr, "semantics: FAIL (line %d): ", __LINE__);                                                  \
      fprintf(stderr, __VA_ARGS__);                                                                              \
      fputc('\n', stderr);                                                                                       \
    }                                                                                                            \
  } while (0)

/// Sizes the compiler cannot see, so it neither warns about nor folds the impossible ones.
static volatile size_t sizeMax = SIZE_MAX;
static volatile size_t pastPtrdiffMax = (size_t)PTRDIFF_MAX + 1;
static volatile size_t ptrdiffMax = PTRDIFF_MAX;
static volatile size_t twoTo32 = (size_t)1 << 32;

static size_t pageSize;

/// Fails unless `block` is non-NULL, `alignment`-aligned and usable for `byteCount` bytes, and writes all of
/// its usable size.
static void checkBlock(void *block, size_t byteCount, size_t alignment, const char *what) {
  CHECK(block != NULL, "%s(%zu) returned NULL", what, byteCount);
  if (block == NULL) return;
  CHECK(fixtureIsAligned(block, alignment), "%s(%zu) returned %p, not %zu-byte aligned", what, byteCount, block,
        alignment);
  size_t usable = malloc_usable_size(block);
  CHECK(usable >= byteCount, "malloc_usable_size of %s(%zu) is %zu", what, byteCount, usable);
  memset(block, 0x5a, usable);
}

static void checkFailsWithENOMEM(void *block, const char *call) {
  int error = errno;
  CHECK(block == NULL, "%s returned %p instead of NULL", call, block);
  CHECK(error == ENOMEM, "%s set errno %d (%s) instead of ENOMEM", call, error, strerror(error));
  free(block);
}

static void checkMallocAlignment(void) {
  for (size_t byteCount = 0; byteCount <= 4096; byteCount++) {
    void *block = malloc(byteCount);
    checkBlock(block, byteCount, 16, "malloc");
    free(block);
  }
  for (size_t byteCount = 4096; byteCount <= ((size_t)64 << 20); byteCount = byteCount * 3 / 2 + 7) {
    void *block = malloc(byteCount);
    checkBlock(block, byteCount, 16, "malloc");
    void *zeroed = calloc(1, byteCount);
    checkBlock(zeroed, byteCount, 16, "calloc");
    free(block);
    free(zeroed);
  }
}

static void checkMallocZero(void) {
  enum { count = 100 };
  void *blocks[count];
  for (size_t i = 0; i < count; i++) {
    blocks[i] = malloc(0);
    CHECK(blocks[i] != NULL, "malloc(0) returned NULL");
    CHECK(fixtureIsAligned(blocks[i], 16), "malloc(0) returned %p, not 16-byte aligned", blocks[i]);
    for (size_t j = 0; j < i; j++)
      CHECK(blocks[i] == NULL || blocks[i] != blocks[j], "malloc(0) returned %p twice", blocks[i]);
  }
  for (size_t i = 0; i < count; i++) free(blocks[i]);
  void *fromRealloc = realloc(NULL, 0);
  CHECK(fromRealloc != NULL, "realloc(NULL, 0) returned NULL, unlike malloc(0)");
  free(fromRealloc);
}

static void checkFree(void) {
  free(NULL);
  const size_t byteCounts[] = {1, 100, 5000, 200000, 10u << 20};
  for (size_t i = 0; i < sizeof byteCounts / sizeof byteCounts[0]; i++) {
    void *block = malloc(byteCounts[i]);
    CHECK(block != NULL, "malloc(%zu) returned NULL", byteCounts[i]);
    errno = 4321;
    free(block);
    CHECK(errno == 4321, "free of a %zu-byte block changed errno to %d", byteCounts[i], errno);
  }
  errno = 4321;
  free(NULL);
  CHECK(errno == 4321, "free(NULL) changed errno to %d", errno);
}

static void checkImpossibleSizes(void) {
  errno = 0;
  checkFailsWithENOMEM(malloc(sizeMax), "malloc(SIZE_MAX)");
  errno = 0;
  checkFailsWithENOMEM(malloc(pastPtrdiffMax), "malloc(PTRDIFF_MAX + 1)");
  errno = 0;
  checkFailsWithENOMEM(malloc(ptrdiffMax), "malloc(PTRDIFF_MAX)");
  errno = 0;
  checkFailsWithENOMEM(malloc(sizeMax - 4095), "malloc(SIZE_MAX - 4095)");
  errno = 0;
  checkFailsWithENOMEM(calloc(sizeMax / 2 + 1, 2), "calloc(SIZE_MAX / 2 + 1, 2)");
  errno = 0;
  checkFailsWithENOMEM(calloc(twoTo32 + 1, twoTo32), "calloc(2^32 + 1, 2^32)");
  errno = 0;
  checkFailsWithENOMEM(calloc(1, pastPtrdiffMax), "calloc(1, PTRDIFF_MAX + 1)");
  errno = 0;
  checkFailsWithENOMEM(aligned_alloc(64, sizeMax), "aligned_alloc(64, SIZE_MAX)");
  errno = 0;
  checkFailsWithENOMEM(memalign(4096, pastPtrdiffMax), "memalign(4096, PTRDIFF_MAX + 1)");

  void *untouched = (void *)0x1234;
  int error = posix_memalign(&untouched, 64, sizeMax);
  CHECK(error == ENOMEM, "posix_memalign(64, SIZE_MAX) returned %d instead of ENOMEM", error);
  CHECK(untouched == (void *)0x1234, "failed posix_memalign changed *memptr to %p", untouched);

  // A failed realloc or reallocarray leaves the old block allocated and intact.
  unsigned char *block = malloc(100);
  CHECK(block != NULL, "malloc(100) returned NULL");
  if (block == NULL) return;
  fixtureFill(block, 100, 11);
  for (int attempt = 0; attempt < 3; attempt++) {
    static const char *const calls[] = {"realloc(p, SIZE_MAX)", "reallocarray(p, SIZE_MAX / 2 + 1, 2)",
                                        "reallocarray(p, 2^32, 2^32 + 3)"};
    errno = 0;
    void *moved = attempt == 0   ? realloc(block, sizeMax)
                  : attempt == 1 ? reallocarray(block, sizeMax / 2 + 1, 2)
                                 : reallocarray(block, twoTo32, twoTo32 + 3);
    if (moved == NULL) {
      CHECK(errno == ENOMEM, "%s set errno %d instead of ENOMEM", calls[attempt], errno);
      CHECK(fixtureMismatch(block, 100, 11) == 100, "a failed %s changed the old block", calls[attempt]);
    } else {
      CHECK(false, "%s returned %p instead of NULL", calls[attempt], moved);
      block = moved;
    }
  }
  unsigned char *moved = reallocarray(block, 25, 8);
  CHECK(moved != NULL, "reallocarray(p, 25, 8) returned NULL");
  if (moved != NULL) {
    CHECK(fixtureMismatch(moved, 100, 11) == 100, "reallocarray lost contents");
    free(moved);
  } else {
    free(block);
  }
  void *fresh = reallocarray(NULL, 10, 10);
  checkBlock(fresh, 100, 16, "reallocarray(NULL, 10, *)");
  free(fresh);
}

/// calloc must zero memory that earlier blocks of the same size dirtied.
static void checkCallocZeroesReusedMemory(void) {
  const size_t byteCounts[] = {1, 8, 24, 100, 1000, 4096, 20000, 300000, 5u << 20};
  enum { count = 32 };
  for (size_t s = 0; s < sizeof byteCounts / sizeof byteCounts[0]; s++) {
    size_t byteCount = byteCounts[s];
    size_t blockCount = byteCount > 100000 ? 4 : count;
    void *blocks[count];
    for (size_t i = 0; i < blockCount; i++) {
      blocks[i] = malloc(byteCount);
      CHECK(blocks[i] != NULL, "malloc(%zu) returned NULL", byteCount);
      if (blocks[i]) memset(blocks[i], 0xcd, malloc_usable_size(blocks[i]));
    }
    for (size_t i = 0; i < blockCount; i++) free(blocks[i]);
    for (size_t i = 0; i < blockCount; i++) {
      // Half as calloc(n, 1), half as calloc(1, n): both orders of the factors.
      unsigned char *zeroed = i % 2 ? calloc(byteCount, 1) : calloc(1, byteCount);
      blocks[i] = zeroed;
      CHECK(zeroed != NULL, "calloc(%zu) returned NULL", byteCount);
      if (zeroed == NULL) continue;
      CHECK(fixtureIsAligned(zeroed, 16), "calloc(%zu) returned %p", byteCount, (void *)zeroed);
      for (size_t b = 0; b < byteCount; b++) {
        if (zeroed[b] != 0) {
          CHECK(false, "calloc(%zu) byte %zu is 0x%02x, not zero", byteCount, b, zeroed[b]);
          break;
        }
      }
      memset(zeroed, 0xcd, byteCount);
    }
    for (size_t i = 0; i < blockCount; i++) free(blocks[i]);
  }
}

static void checkRealloc(void) {
  void *fromNull = realloc(NULL, 300);
  checkBlock(fromNull, 300, 16, "realloc(NULL, n)");
  free(fromNull);

  // realloc(p, 0) frees p and returns NULL, as glibc does.
  void *block = malloc(100);
  CHECK(block != NULL, "malloc(100) returned NULL");
  void *result = realloc(block, 0);
  CHECK(result == NULL, "realloc(p, 0) returned %p instead of freeing and returning NULL", result);
  free(result);

  // A chain of grows and shrinks across the size ranges; each step keeps the common prefix.
  const size_t byteCounts[] = {1,    10,    100,     24,       5000, 3000, 300000, 1000, 5u << 20,
                               17,   4096,  4097,    65536,    7,    2u << 20, 1u << 20, 50, 128, 2000000, 33};
  size_t previous = 0;
  unsigned char *chain = NULL;
  for (size_t i = 0; i < sizeof byteCounts / sizeof byteCounts[0]; i++) {
    size_t byteCount = byteCounts[i];
    unsigned char *grown = realloc(chain, byteCount);
    CHECK(grown != NULL, "realloc(p, %zu) returned NULL", byteCount);
    if (grown == NULL) break;
    CHECK(fixtureIsAligned(grown, 16), "realloc(p, %zu) returned %p", byteCount, (void *)grown);
    size_t kept = previous < byteCount ? previous : byteCount;
    size_t bad = fixtureMismatch(grown, kept, i);
    CHECK(bad == kept, "realloc from %zu to %zu bytes changed byte %zu", previous, byteCount, bad);
    CHECK(malloc_usable_size(grown) >= byteCount, "usable size after realloc to %zu is %zu", byteCount,
          malloc_usable_size(grown));
    fixtureFill(grown, byteCount, i + 1);
    chain = grown;
    previous = byteCount;
  }
  free(chain);

  // realloc of an over-aligned block keeps its contents (the alignment need not survive).
  unsigned char *aligned = memalign(4096, 3000);
  CHECK(aligned != NULL, "memalign(4096, 3000) returned NULL");
  if (aligned) {
    fixtureFill(aligned, 3000, 77);
    unsigned char *moved = realloc(aligned, 100000);
    CHECK(moved != NULL && fixtureMismatch(moved, 3000, 77) == 3000, "realloc of a memalign block lost contents");
    free(moved ? moved : aligned);
  }
}

static void checkPosixMemalignInvalid(void) {
  const size_t alignments[] = {0, 1, 2, 3, 4, 12, 24, 48, 4097, (size_t)1 << 63 | 8};
  for (size_t i = 0; i < sizeof alignments / sizeof alignments[0]; i++) {
    void *untouched = (void *)0x5678;
    int error = posix_memalign(&untouched, alignments[i], 100);
    CHECK(error == EINVAL, "posix_memalign(alignment %zu) returned %d instead of EINVAL", alignments[i], error);
    CHECK(untouched == (void *)0x5678, "posix_memalign(alignment %zu) changed *memptr on failure", alignments[i]);
  }
  // sizeof(void *) itself is valid.
  void *block = NULL;
  int error = posix_memalign(&block, sizeof(void *), 100);
  CHECK(error == 0, "posix_memalign(alignment 8) failed with %d", error);
  if (error == 0) checkBlock(block, 100, 8, "posix_memalign(8)");
  free(block);
  block = NULL;
  error = posix_memalign(&block, 64, 0);
  CHECK(error == 0, "posix_memalign(64, 0) failed with %d", error);
  free(block);
}

static void checkAlignedAllocations(void) {
  for (size_t alignment = 16; alignment <= ((size_t)1 << 20); alignment *= 2) {
    const size_t byteCounts[] = {1, 100, alignment - 1, alignment, alignment + 1, 3 * alignment + 5};
    for (size_t s = 0; s < sizeof byteCounts / sizeof byteCounts[0]; s++) {
      size_t byteCount = byteCounts[s];
      void *block = NULL;
      int error = posix_memalign(&block, alignment, byteCount);
      CHECK(error == 0, "posix_memalign(%zu, %zu) failed with %d", alignment, byteCount, error);
      if (error == 0) checkBlock(block, byteCount, alignment, "posix_memalign");
      free(block);

      // aligned_alloc takes sizes that are not a multiple of the alignment (C17 DR 460; glibc agrees).
      block = aligned_alloc(alignment, byteCount);
      checkBlock(block, byteCount, alignment, "aligned_alloc");
      free(block);

      block = memalign(alignment, byteCount);
      checkBlock(block, byteCount, alignment, "memalign");
      free(block);
    }
  }
}

static void checkPageAligned(void) {
  const size_t byteCounts[] = {1, 100, 4095, 4096, 4097, 100000, 3u << 20};
  for (size_t s = 0; s < sizeof byteCounts / sizeof byteCounts[0]; s++) {
    size_t byteCount = byteCounts[s];
    void *block = valloc(byteCount);
    checkBlock(block, byteCount, pageSize, "valloc");
    free(block);
    // pvalloc rounds the size up to a whole number of pages.
    size_t rounded = (byteCount + pageSize - 1) / pageSize * pageSize;
    block = pvalloc(byteCount);
    checkBlock(block, rounded, pageSize, "pvalloc");
    free(block);
  }
}

static void checkUsableSize(void) {
  CHECK(malloc_usable_size(NULL) == 0, "malloc_usable_size(NULL) is %zu, not 0", malloc_usable_size(NULL));
  for (size_t byteCount = 1; byteCount <= 2048; byteCount++) {
    void *block = malloc(byteCount);
    checkBlock(block, byteCount, 16, "malloc");
    free(block);
  }
  for (size_t byteCount = 2048; byteCount <= ((size_t)16 << 20); byteCount = byteCount * 5 / 4 + 3) {
    void *block = malloc(byteCount);
    checkBlock(block, byteCount, 16, "malloc");
    free(block);
  }
}

/// swalloc (not glibc) aligns power-of-two sizes up to the page size to their size.
static void checkNaturalAlignment(void) {
  if (!swallocActive) {
    printf("natural alignment: skipped (swalloc inactive)\n");
    return;
  }
  // Secure mode's sealed blocks keep 8 bytes for a trailer after the requested size (README, heap misuse in
  // secure mode): a power-of-two size goes to the next class, aligned to 16 bytes only (what C promises).
  // SWALLOC_SECURE=full seals every block, level 1 those above 1 KiB.
  const char *secure = getenv("SWALLOC_SECURE");
  int full = secure != NULL && (strcmp(secure, "full") == 0 || strcmp(secure, "2") == 0);
  int level1 = secure != NULL && !full && strcmp(secure, "0") != 0 && secure[0] != 0;
  size_t naturalMax = full ? 0 : level1 ? 1024 : 4096;
  for (size_t byteCount = 1; byteCount <= 4096; byteCount *= 2) {
    void *blocks[8];
    for (size_t i = 0; i < 8; i++) {
      blocks[i] = malloc(byteCount);
      CHECK(blocks[i] != NULL && fixtureIsAligned(blocks[i], byteCount < 16 || byteCount > naturalMax ? 16 : byteCount),
            "malloc(%zu) returned %p, not naturally aligned", byteCount, blocks[i]);
    }
    for (size_t i = 0; i < 8; i++) free(blocks[i]);
  }
  printf("natural alignment: checked\n");
}

typedef void FreeSized(void *, size_t);
typedef void FreeAlignedSized(void *, size_t, size_t);

/// C23's free_sized and free_aligned_sized; glibc 2.36 neither declares nor exports them.
static void checkSizedFrees(void) {
  FreeSized *freeSized = (FreeSized *)dlsym(RTLD_DEFAULT, "free_sized");
  FreeAlignedSized *freeAlignedSized = (FreeAlignedSized *)dlsym(RTLD_DEFAULT, "free_aligned_sized");
  if (freeSized == NULL || freeAlignedSized == NULL) {
    CHECK(!swallocActive, "free_sized or free_aligned_sized is not exported");
    printf("free_sized: skipped (not exported)\n");
    return;
  }
  freeSized(NULL, 0);
  freeAlignedSized(NULL, 64, 0);
  const size_t byteCounts[] = {1, 16, 100, 4096, 70000, 3u << 20};
  for (size_t s = 0; s < sizeof byteCounts / sizeof byteCounts[0]; s++) {
    size_t byteCount = byteCounts[s];
    void *block = malloc(byteCount);
    checkBlock(block, byteCount, 16, "malloc");
    freeSized(block, byteCount);
    block = calloc(byteCount, 1);
    checkBlock(block, byteCount, 16, "calloc");
    freeSized(block, byteCount);
    for (size_t alignment = 16; alignment <= 65536; alignment *= 16) {
      block = aligned_alloc(alignment, byteCount);
      checkBlock(block, byteCount, alignment, "aligned_alloc");
      freeAlignedSized(block, alignment, byteCount);
    }
  }
  printf("free_sized: checked\n");
}

/// Every C name swalloc exports must resolve into the same object as swalloc_malloc, so that no call reaches
/// glibc's allocator with one of our blocks.
static void checkExportsResolveToSwalloc(void) {
  if (!swallocActive) {
    printf("exports: skipped (swalloc inactive)\n");
    return;
  }
  Dl_info swallocInfo;
  CHECK(dladdr(dlsym(RTLD_DEFAULT, "swalloc_malloc"), &swallocInfo) != 0, "dladdr(swalloc_malloc) failed");
  const char *names[] = {"malloc",          "free",           "calloc",          "realloc",        "reallocarray",
                         "posix_memalign",  "aligned_alloc",  "memalign",        "valloc",         "pvalloc",
                         "malloc_usable_size", "free_sized",  "free_aligned_sized", "cfree",        "__libc_malloc",
                         "__libc_free",     "__libc_calloc",  "__libc_realloc",  "__libc_memalign", "__libc_valloc",
                         "__libc_pvalloc",  "__posix_memalign"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    void *symbol = dlsym(RTLD_DEFAULT, names[i]);
    Dl_info info;
    CHECK(symbol != NULL && dladdr(symbol, &info) != 0 && info.dli_fbase == swallocInfo.dli_fbase,
          "%s does not resolve into libswalloc.so (found in %s)", names[i],
          symbol && dladdr(symbol, &info) ? info.dli_fname : "nothing");
  }
  // The glibc-internal names and cfree accept each other's blocks.
  typedef void *Allocate(size_t);
  typedef void Free(void *);
  Allocate *libcMalloc = (Allocate *)dlsym(RTLD_DEFAULT, "__libc_malloc");
  Free *libcFree = (Free *)dlsym(RTLD_DEFAULT, "__libc_free");
  Free *cFree = (Free *)dlsym(RTLD_DEFAULT, "cfree");
  if (libcMalloc && libcFree && cFree) {
    void *block = libcMalloc(100);
    checkBlock(block, 100, 16, "__libc_malloc");
    free(block);
    block = malloc(200);
    checkBlock(block, 200, 16, "malloc");
    libcFree(block);
    block = malloc(300);
    checkBlock(block, 300, 16, "malloc");
    cFree(block);
  }
  printf("exports: checked\n");
}

int main(void) {
  swallocActive = fixtureReportSwalloc();
  pageSize = (size_t)sysconf(_SC_PAGESIZE);
  checkMallocAlignment();
  checkMallocZero();
  checkFree();
  checkImpossibleSizes();
  checkCallocZeroesReusedMemory();
  checkRealloc();
  checkPosixMemalignInvalid();
  checkAlignedAllocations();
  checkPageAligned();
  checkUsableSize();
  checkNaturalAlignment();
  checkSizedFrees();
  checkExportsResolveToSwalloc();
  if (failureCount != 0) {
    printf("semantics: %d checks failed\n", failureCount);
    return 1;
  }
  printf("semantics ok\n");
  return 0;
}
