// alignment_sweep: every power-of-two alignment from 16 B to 64 MiB, with sizes around the alignment and around
// the allocator's size boundaries, from posix_memalign, aligned_alloc and memalign in turn, each block freed in
// one of five ways: free, free_sized, free_aligned_sized, realloc (grown and shrunk, contents kept, then freed)
// and free on another thread. Every block is checked for alignment, usable size and its pattern at both ends
// before it goes. Runs in both modes: a correct program must never be stopped by secure mode (issue 12: every
// block aligned to 4 MiB or more aborted as a double free there).
#include "fixture.h"

#include <malloc.h>
#include <pthread.h>

typedef void FreeSized(void *, size_t);
typedef void FreeAlignedSized(void *, size_t, size_t);

static FreeSized *freeSized;
static FreeAlignedSized *freeAlignedSized;

enum FreeKind { viaFree, viaFreeSized, viaFreeAlignedSized, viaRealloc, viaOtherThread, freeKindCount };

/// How many bytes at each end of a block carry the pattern (the middle of a 64 MiB block is left untouched).
enum { edgeByteCount = 256 };

static void fillEdges(unsigned char *block, size_t byteCount, uint64_t tag) {
  if (byteCount <= 2 * edgeByteCount) return fixtureFill(block, byteCount, tag);
  fixtureFill(block, edgeByteCount, tag);
  fixtureFill(block + byteCount - edgeByteCount, edgeByteCount, tag + 1);
}

static void verifyEdges(const unsigned char *block, size_t byteCount, uint64_t tag, const char *what) {
  if (byteCount <= 2 * edgeByteCount) return fixtureVerify(block, byteCount, tag, what);
  fixtureVerify(block, edgeByteCount, tag, what);
  fixtureVerify(block + byteCount - edgeByteCount, edgeByteCount, tag + 1, what);
}

/// A block handed to the freeing thread, and the thread's answer.
static void *handedBlock;

static void *freeOnThread(void *unused) {
  (void)unused;
  free(handedBlock);
  return NULL;
}

static void *allocate(int via, size_t alignment, size_t byteCount) {
  switch (via % 3) {
  case 0: {
    void *block = NULL;
    int status = posix_memalign(&block, alignment, byteCount);
    FIXTURE_CHECK(status == 0, "posix_memalign(%zu, %zu) returned %d", alignment, byteCount, status);
    return block;
  }
  case 1: return aligned_alloc(alignment, byteCount);
  default: return memalign(alignment, byteCount);
  }
}

static const char *allocatorName(int via) {
  return via % 3 == 0 ? "posix_memalign" : via % 3 == 1 ? "aligned_alloc" : "memalign";
}

static void release(unsigned char *block, size_t alignment, size_t byteCount, enum FreeKind kind, uint64_t tag) {
  switch (kind) {
  case viaFree: free(block); break;
  case viaFreeSized: freeSized(block, byteCount); break;
  case viaFreeAlignedSized: freeAlignedSized(block, alignment, byteCount); break;
  case viaRealloc: {
    // Grown (a copy or in place), then shrunk: the kept bytes must come along, and the result be freeable.
    size_t kept = byteCount < edgeByteCount ? byteCount : edgeByteCount;
    unsigned char *grown = realloc(block, byteCount + byteCount / 2 + 17);
    FIXTURE_CHECK(grown != NULL, "realloc of a %zu-aligned %zu-byte block failed", alignment, byteCount);
    fixtureVerify(grown, kept, tag, "a block grown by realloc");
    unsigned char *shrunk = realloc(grown, kept);
    FIXTURE_CHECK(shrunk != NULL, "realloc down to %zu failed", kept);
    fixtureVerify(shrunk, kept, tag, "a block shrunk by realloc");
    free(shrunk);
    break;
  }
  case viaOtherThread: {
    handedBlock = block;
    pthread_t thread;
    FIXTURE_CHECK(pthread_create(&thread, NULL, freeOnThread, NULL) == 0, "pthread_create failed");
    FIXTURE_CHECK(pthread_join(thread, NULL) == 0, "pthread_join failed");
    break;
  }
  default: break;
  }
}

int main(void) {
  int active = fixtureReportSwalloc();
  freeSized = (FreeSized *)dlsym(RTLD_DEFAULT, "free_sized");
  freeAlignedSized = (FreeAlignedSized *)dlsym(RTLD_DEFAULT, "free_aligned_sized");
  FIXTURE_CHECK(!active || (freeSized != NULL && freeAlignedSized != NULL), "free_sized is not exported");
  if (freeSized == NULL || freeAlignedSized == NULL) {
    // Another malloc without the C23 frees: plain free stands in for them.
    freeSized = (FreeSized *)(void (*)(void))free;
    freeAlignedSized = NULL;
  }
  // Sizes around the allocator's boundaries: direct slots, the small, medium and large page limits, huge spans,
  // the 4 MiB segment.
  const size_t fixedSizes[] = {1, 1024, 8192, 8193, 65535, 65537, 524287, 524289, (4u << 20) - 1, (4u << 20) + 1};
  const size_t fixedCount = sizeof fixedSizes / sizeof fixedSizes[0];
  uint64_t tag = 1;
  size_t blockCount = 0;
  for (size_t alignment = 16; alignment <= ((size_t)64 << 20); alignment *= 2) {
    size_t sizes[16];
    size_t count = 0;
    // Around the alignment itself, then the fixed boundaries that are not far above it (a 64 MiB alignment
    // with a 1-byte block already maps 128 MiB).
    sizes[count++] = alignment - 1;
    sizes[count++] = alignment;
    sizes[count++] = alignment + 1;
    for (size_t i = 0; i < fixedCount; i++)
      if (fixedSizes[i] <= 4 * alignment || alignment >= (4u << 20)) sizes[count++] = fixedSizes[i];
    for (size_t s = 0; s < count; s++) {
      size_t byteCount = sizes[s];
      for (int kind = 0; kind < freeKindCount; kind++) {
        if (kind == viaFreeAlignedSized && freeAlignedSized == NULL) continue;
        int via = (int)(tag % 3);
        unsigned char *block = allocate(via, alignment, byteCount);
        FIXTURE_CHECK(block != NULL, "%s(%zu, %zu) returned NULL", allocatorName(via), alignment, byteCount);
        FIXTURE_CHECK(fixtureIsAligned(block, alignment), "%s(%zu, %zu) returned %p, not aligned",
                      allocatorName(via), alignment, byteCount, (void *)block);
        size_t usable = malloc_usable_size(block);
        FIXTURE_CHECK(usable >= byteCount, "%s(%zu, %zu): usable size %zu", allocatorName(via), alignment,
                      byteCount, usable);
        fillEdges(block, byteCount, tag);
        // A neighbour allocated meanwhile must not disturb it.
        void *other = malloc(byteCount % 3000 + 1);
        FIXTURE_CHECK(other != NULL, "malloc failed");
        verifyEdges(block, byteCount, tag, "an aligned block");
        free(other);
        release(block, alignment, byteCount, (enum FreeKind)kind, tag);
        tag += 2;
        blockCount++;
      }
    }
  }
  printf("alignment sweep ok: %zu blocks, 16 B to 64 MiB alignments, 5 ways to free\n", blockCount);
  return 0;
}
