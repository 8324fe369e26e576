// Heap misuse that secure mode (SWALLOC_SECURE=1) catches deterministically beyond guarded sampling, in C:
// reads and writes through malloc(0)'s pointer, free_sized with the wrong size, overflows and underflows of
// 1 and 32 bytes (canaries and trailers), writes after free (the fill of freed blocks). Each mode must stop the
// process; "not stopped" means it did not. `valid` does everything right (no false positive).
#pragma GCC diagnostic ignored "-Wpragmas"
#pragma GCC diagnostic ignored "-Warray-bounds"

#define MISUSE_ALLOCATE(size) ((char *)malloc(size))
#define MISUSE_RELEASE(p) free(p)
#define MISUSE_OVERFLOW_BYTE 0
#include "misuse.h"

#include <malloc.h>
#include <pthread.h>

static volatile char sink;

/// Writes `value` at `p`, or, should the byte there already be `value` (secure mode's fill byte is random:
/// 1 run in 255), `value + 1`: a write after free that changes nothing is none to catch.
static void writeChanging(char *p, char value) {
  volatile char *q = (volatile char *)launder(p);
  *q = *q == value ? (char)(value + 1) : value;
}

/// Frees a block, writes one byte into it at `offset` (beyond the 16 bytes free lists use; SWALLOC_SECURE=full
/// fills and checks every byte after them in blocks up to 64 KiB), then allocates blocks of its size until
/// it is handed out again.
static void writeAfterFree(size_t size, size_t offset, char value) {
  char *volatile p = malloc(size);
  FIXTURE_CHECK(p != NULL, "malloc failed");
  memset(p, 'a', size);
  free(p);
  writeChanging(p + offset, value);
  for (int i = 0; i < 2000; i++) escape(malloc(size));
}

/// realloc(p, `newSize`) of a freed block `p` of `size` bytes (a live neighbour kept): prints both addresses.
static void reallocFreed(size_t size, size_t newSize) {
  char *keep = malloc(size), *p = malloc(size);
  escape(keep);
  free(p);
  printf("freed %p\n", (void *)p);
  printf("realloc %p\n", realloc(p, newSize));
}

static void *freeTen(void *blocks) {
  for (int i = 0; i < 10; i++) free(((char **)blocks)[i]);
  return NULL;
}

static void *freeOnThread(void *block) {
  free(block);
  return NULL;
}

/// Large blocks (80 KiB to 512 KiB) allocated, checked and freed in a random order, some freed on another
/// thread, some resized: SWALLOC_SECURE=full parks the blocks their page's owner frees (wholly inaccessible)
/// and takes them back when a page has nothing else; a valid program must never see it.
static void largeChurn(void) {
  enum { SLOTS = 96 };
  static char *blocks[SLOTS];
  static size_t sizes[SLOTS];
  unsigned random = 12345;
  for (int round = 0; round < 6000; round++) {
    random = random * 1103515245u + 12345u;
    int i = (int)((random >> 8) % SLOTS);
    if (blocks[i] != NULL) {
      for (size_t offset = 0; offset < sizes[i]; offset += 4096) {
        FIXTURE_CHECK(blocks[i][offset] == (char)i, "large block %d changed at %zu", i, offset);
      }
      FIXTURE_CHECK(blocks[i][sizes[i] - 1] == (char)~i, "large block %d changed at its end", i);
      if (round % 7 == 0) {
        pthread_t thread;
        FIXTURE_CHECK(pthread_create(&thread, NULL, freeOnThread, blocks[i]) == 0, "pthread_create");
        pthread_join(thread, NULL);
      } else {
        free(blocks[i]);
      }
      blocks[i] = NULL;
      continue;
    }
    sizes[i] = (70000 + (random >> 12) % 440000) & ~(size_t)1;  // even: the last byte is no multiple of 4096
    blocks[i] = malloc(sizes[i]);
    FIXTURE_CHECK(blocks[i] != NULL, "malloc(%zu)", sizes[i]);
    if (round % 5 == 0) {
      sizes[i] = (sizes[i] / 2 + 70000) & ~(size_t)1;
      blocks[i] = realloc(blocks[i], sizes[i]);
      FIXTURE_CHECK(blocks[i] != NULL, "realloc(%zu)", sizes[i]);
    }
    for (size_t offset = 0; offset < sizes[i]; offset += 4096) blocks[i][offset] = (char)i;
    blocks[i][sizes[i] - 1] = (char)~i;
  }
  for (int i = 0; i < SLOTS; i++) free(blocks[i]);
  // One size class: its pages fill, every other block is freed (parked at full; the blocks between keep
  // the pages in use), then as many are allocated again, which come back from the parked ones.
  for (int i = 0; i < 60; i++) {
    blocks[i] = malloc(200000);
    FIXTURE_CHECK(blocks[i] != NULL, "malloc(200000)");
    memset(blocks[i], i, 200000);
  }
  for (int round = 0; round < 4; round++) {
    for (int i = round % 2; i < 60; i += 2) {
      FIXTURE_CHECK(blocks[i][0] == (char)i && blocks[i][199999] == (char)i, "block %d changed", i);
      free(blocks[i]);
    }
    for (int i = round % 2; i < 60; i += 2) {
      blocks[i] = malloc(200000);
      FIXTURE_CHECK(blocks[i] != NULL, "malloc(200000)");
      memset(blocks[i], i, 200000);
    }
  }
  for (int i = 0; i < 60; i++) free(blocks[i]);
}

/// A live block of `size` bytes whose address neighbour below is live too, for any size (blockAfterLive
/// knows the 16-byte classes only): among 256 blocks handed out in a random order, the closest pair lies one
/// block apart in one page (the class's size, whatever it is at each level).
static char *blockAfterLiveSized(size_t size) {
  static char *blocks[256];
  for (int i = 0; i < 256; i++) {
    blocks[i] = malloc(size);
    FIXTURE_CHECK(blocks[i] != NULL, "allocation failed");
  }
  size_t closest = SIZE_MAX;
  char *upper = NULL;
  for (int i = 0; i < 256; i++) {
    for (int j = 0; j < 256; j++) {
      if (blocks[j] > blocks[i] && (size_t)(blocks[j] - blocks[i]) < closest) {
        closest = (size_t)(blocks[j] - blocks[i]);
        upper = blocks[j];
      }
    }
  }
  FIXTURE_CHECK(upper != NULL && closest < 2 * size, "no neighbouring blocks of %zu bytes", size);
  return upper;
}

/// `underflow` for blocks of any size.
static void underflowSized(size_t size, size_t count) { underflowBefore(blockAfterLiveSized(size), count); }

/// A block boundary of the first extension of a fresh page, other than the one block handed out there: the
/// first request of `request` bytes takes a fresh page of the `blockSize`-byte class (64 KiB pages, not a
/// segment's first), whose first extension carves `count` blocks from the page's start.
static void *neverHandedOut(size_t request, size_t blockSize, size_t count) {
  char *p = malloc(request);
  FIXTURE_CHECK(p != NULL, "allocation failed");
  uintptr_t start = fixtureAddress(p) & ~(uintptr_t)0xFFFF;
  FIXTURE_CHECK((fixtureAddress(p) & 0x3FFFFF) >= 0x10000, "the block is in its segment's first page");
  size_t index = (fixtureAddress(p) - start) / blockSize;
  FIXTURE_CHECK(index < count && start + index * blockSize == fixtureAddress(p), "not a block of a fresh page");
  return (void *)(start + (index + 1) % count * blockSize);
}

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
  } else if (strcmp(mode, "free-never-handed-out") == 0) {
    // A block boundary carved with the one block handed out, and never handed out itself: the first 1600-byte
    // request takes a fresh page of the 1792-byte class (also with the 8 bytes of a trailer), whose first
    // extension carves 4 blocks.
    free(neverHandedOut(1600, 1792, 4));
  } else if (strcmp(mode, "free-never-handed-out-small") == 0) {
    // The same in a class up to 1 KiB (no seal at SWALLOC_SECURE=1): 1000 bytes, the 1024-byte class, 8 blocks
    // an extension (full: also with the trailer's 8 bytes).
    free(neverHandedOut(1000, 1024, 8));
  } else if (strcmp(mode, "usable-size-never-handed-out") == 0) {
    printf("usable %zu\n", malloc_usable_size(neverHandedOut(1000, 1024, 8)));
  } else if (strcmp(mode, "usable-size-interior") == 0) {
    char *p = malloc(64);
    fixtureAddress(p);
    printf("usable %zu\n", malloc_usable_size(p + 16));
  } else if (strcmp(mode, "usable-size-freed") == 0) {
    char *keep = malloc(64), *p = malloc(64);
    escape(keep);
    free(p);
    printf("usable %zu\n", malloc_usable_size(p));
  } else if (strcmp(mode, "realloc-freed-in-place") == 0) {
    // A size realloc would keep in place (40 of a 48-byte block's room): a freed block came back resized.
    reallocFreed(48, 40);
  } else if (strcmp(mode, "realloc-freed-sealed") == 0) {
    // The same for a sealed block (above 1 KiB), whose trailer still held its size.
    reallocFreed(3000, 2500);
  } else if (strcmp(mode, "realloc-interior-in-place") == 0) {
    char *p = malloc(64);
    fixtureAddress(p);
    printf("realloc %p\n", realloc(p + 16, 40));
  } else if (strcmp(mode, "usable-size-foreign") == 0) {
    static char notHeap[64];
    printf("usable %zu\n", malloc_usable_size(notHeap + 16));
  } else if (strcmp(mode, "free-aligned-sized") == 0) {
    void (*freeAlignedSized)(void *, size_t, size_t) =
        (void (*)(void *, size_t, size_t))dlsym(RTLD_DEFAULT, "free_aligned_sized");
    FIXTURE_CHECK(freeAlignedSized != NULL, "no free_aligned_sized");
    char *p = aligned_alloc(64, 128);
    freeAlignedSized(p, 3, 128);
  } else if (strcmp(mode, "overflow-1-small") == 0) {
    overflow(24, 1);
  } else if (strcmp(mode, "overflow-32-small") == 0) {
    overflow(260, 32);
  } else if (strcmp(mode, "overflow-1-medium") == 0) {
    overflow(20000, 1);
  } else if (strcmp(mode, "overflow-32-medium") == 0) {
    overflow(20000, 32);
  } else if (strcmp(mode, "overflow-1-large") == 0) {
    overflow(300000, 1);
  } else if (strcmp(mode, "overflow-32-large") == 0) {
    overflow(300000, 32);
  } else if (strcmp(mode, "underflow-1") == 0) {
    underflow(40, 1);
  } else if (strcmp(mode, "underflow-32") == 0) {
    underflow(40, 32);
  } else if (strcmp(mode, "underflow-1-medium") == 0) {
    underflowSized(20000, 1);
  } else if (strcmp(mode, "underflow-32-medium") == 0) {
    underflowSized(20000, 32);
  } else if (strcmp(mode, "write-after-free") == 0) {
    writeAfterFree(100, 20, 'x');
  } else if (strcmp(mode, "zero-after-free") == 0) {
    writeAfterFree(100, 20, 0);
  } else if (strcmp(mode, "write-after-free-anywhere") == 0) {
    // hardened_malloc's write_after_free_small: byte 65 of a 128-byte block (no word the fill had before
    // checking every byte).
    writeAfterFree(128, 65, 'x');
  } else if (strcmp(mode, "write-after-free-medium") == 0) {
    writeAfterFree(20000, 12345, 'x');
  } else if (strcmp(mode, "large-after-free") == 0) {
    // hardened_malloc's write_after_free_large: a write into a freed large block (64 KiB to 512 KiB), which
    // SWALLOC_SECURE=full makes inaccessible but for its first and last 4 KiB: it faults at once.
    char *volatile p = malloc(300000);
    FIXTURE_CHECK(p != NULL, "malloc failed");
    memset(p, 'a', 300000);
    free(p);
    *(volatile char *)launder(p + 100000) = 'x';
  } else if (strcmp(mode, "large-after-free-first-byte") == 0) {
    // hardened_malloc's read_after_free_large: byte 0 of a freed 256 KiB block (where a free list would keep
    // its link).
    char *volatile p = malloc(256 << 10);
    FIXTURE_CHECK(p != NULL, "malloc failed");
    memset(p, 'a', 16);
    free(p);
    sink = *(volatile char *)launder(p);
  } else if (strcmp(mode, "large-after-remote-free-uncollected") == 0) {
    // A large block freed by another thread and not collected yet by its page's owner (this thread makes no
    // allocation after it): byte 0 read at once, where the thread-free list's link would be.
    char *p = malloc(200000);
    FIXTURE_CHECK(p != NULL, "malloc failed");
    memset(p, 'a', 200000);
    pthread_t thread;
    FIXTURE_CHECK(pthread_create(&thread, NULL, freeOnThread, p) == 0, "pthread_create");
    pthread_join(thread, NULL);
    sink = *(volatile char *)p;
  } else if (strcmp(mode, "large-after-remote-free-first-byte") == 0) {
    // Ten large blocks freed by another thread (on their page's thread-free list, their first 4 KiB
    // readable), then blocks of their size allocated until one of them comes back: the owner collected the
    // list then (SWALLOC_SECURE=full parks what it collects) and took one back; byte 0 of another is read.
    static char *blocks[40];
    for (int i = 0; i < 40; i++) {
      blocks[i] = malloc(200000);
      FIXTURE_CHECK(blocks[i] != NULL, "malloc failed");
      memset(blocks[i], 'a', 200000);
    }
    pthread_t thread;
    FIXTURE_CHECK(pthread_create(&thread, NULL, freeTen, blocks) == 0, "pthread_create");
    pthread_join(thread, NULL);
    int found = -1;
    for (int k = 0; k < 200 && found < 0; k++) {
      char *q = malloc(200000);
      for (int j = 0; j < 10; j++) {
        if (q == blocks[j]) found = j;
      }
    }
    FIXTURE_CHECK(found >= 0, "no freed block came back");
    sink = *(volatile char *)launder(blocks[(found + 1) % 10]);
  } else if (strcmp(mode, "large-after-realloc-zero") == 0) {
    // hardened_malloc's realloc_c23_undefined_behaviour_use_after_free: realloc(p, 0) frees p (glibc's
    // answer, NULL), then byte 0 is read.
    char *volatile p = malloc(256 << 10);
    FIXTURE_CHECK(p != NULL, "malloc failed");
    char *q = realloc(p, 0);
    sink = *(volatile char *)launder(p);
    free(q);
  } else if (strcmp(mode, "large-double-free") == 0) {
    // A second free of a freed large block, which SWALLOC_SECURE=full keeps wholly inaccessible.
    char *volatile p = malloc(200000);
    escape(malloc(200000));
    free(p);
    free(launder(p));
  } else if (strcmp(mode, "large-usable-size-freed") == 0) {
    char *volatile p = malloc(200000);
    escape(malloc(200000));
    free(p);
    printf("usable %zu\n", malloc_usable_size(launder(p)));
  } else if (strcmp(mode, "large-realloc-freed") == 0) {
    char *volatile p = malloc(200000);
    escape(malloc(200000));
    free(p);
    escape(realloc(launder(p), 300000));
  } else if (strcmp(mode, "huge-after-free") == 0) {
    // A read of a freed huge block (above 512 KiB), which waits in the span cache.
    char *volatile p = malloc(3000000);
    FIXTURE_CHECK(p != NULL, "malloc failed");
    memset(p, 'a', 3000000);
    free(p);
    sink = p[1000000];
  } else if (strcmp(mode, "huge-after-shrink") == 0) {
    // hardened_malloc's read_after_realloc_shrink_large: a read past a huge block that realloc shrank in
    // place (the block stays where it was).
    char *volatile p = malloc(4 << 20);
    FIXTURE_CHECK(p != NULL, "malloc failed");
    memset(p, 'a', 4 << 20);
    char *q = realloc(p, 1 << 20);
    FIXTURE_CHECK(q == p, "realloc moved the block");
    sink = p[2 << 20];
  } else if (strcmp(mode, "large-after-free-reuse") == 0) {
    // The same after another block of the class was allocated (the freed one is not handed out again first),
    // and a read.
    char *volatile p = malloc(200000);
    FIXTURE_CHECK(p != NULL, "malloc failed");
    memset(p, 'a', 200000);
    free(p);
    escape(malloc(200000));
    sink = p[150000];
  } else if (strcmp(mode, "stale-after-realloc") == 0) {
    // realloc moves the block; a write through the old pointer is a write after free.
    char *volatile old = malloc(100);
    char *grown = realloc(old, 5000);
    FIXTURE_CHECK(grown != NULL && grown != old, "realloc did not move");
    writeChanging(old + 20, 1);
    for (int i = 0; i < 2000; i++) escape(malloc(100));
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
    void (*freeAlignedSized)(void *, size_t, size_t) =
        (void (*)(void *, size_t, size_t))dlsym(RTLD_DEFAULT, "free_aligned_sized");
    // aligned_alloc blocks freed by free_aligned_sized with their alignment and size (secure mode checks both).
    for (size_t alignment = 1; alignment <= (1u << 22); alignment *= 4) {
      for (size_t size = alignment; size < 3000000; size = size * 3 + 1) {
        char *p = aligned_alloc(alignment, size);
        FIXTURE_CHECK(p != NULL, "aligned_alloc(%zu, %zu)", alignment, size);
        FIXTURE_CHECK(malloc_usable_size(p) >= size, "aligned block's usable size");
        if (freeAlignedSized != NULL) freeAlignedSized(p, alignment, size); else free(p);
      }
    }
    for (size_t size = 1; size < 3000000; size = size * 3 + 1) {
      char *p = malloc(size);
      memset(p, 2, size);
      if (freeSized != NULL) freeSized(p, size); else free(p);
    }
    // Every byte up to malloc_usable_size is the program's, in every size range and through realloc in
    // place, calloc and the aligned family (secure mode's canary follows it).
    for (size_t size = 0; size < 600000; size = size * 5 / 4 + 1) {
      char *p = malloc(size);
      memset(p, 3, malloc_usable_size(p));
      p = realloc(p, size / 2 + 1);
      memset(p, 4, malloc_usable_size(p));
      p = realloc(p, size + 7);
      memset(p, 5, malloc_usable_size(p));
      free(p);
      char *zeroed = calloc(1, size);
      for (size_t i = 0; i < size; i++) FIXTURE_CHECK(zeroed[i] == 0, "calloc byte %zu of %zu", i, size);
      memset(zeroed, 6, malloc_usable_size(zeroed));
      free(zeroed);
      void *aligned = NULL;
      FIXTURE_CHECK(posix_memalign(&aligned, 256, size) == 0, "posix_memalign");
      memset(aligned, 7, malloc_usable_size(aligned));
      free(aligned);
      aligned = aligned_alloc(4096, size);
      memset(aligned, 8, malloc_usable_size(aligned));
      free(aligned);
    }
    largeChurn();
    printf("valid ok\n");
    return 0;
  } else {
    fixtureFail("unknown mode %s", mode);
  }
  printf("not stopped\n");
  return 0;
}
