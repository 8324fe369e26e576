// Loads libswalloc.so (argv[1]) with dlopen into a program that is not preloaded, and allocates through its
// swalloc_ C API from two threads. The program's own malloc stays glibc's; only the swalloc_ calls reach swalloc.
#include "fixture.h"

#include <pthread.h>

typedef void *SwallocMalloc(size_t);
typedef void SwallocFree(void *);
typedef size_t SwallocUsableSize(const void *);

static SwallocMalloc *swallocMalloc;
static SwallocFree *swallocFree;
static SwallocUsableSize *swallocUsableSize;

enum { blockCount = 2000 };

/// Allocates blocks of many sizes through swalloc and checks alignment, usable size and contents.
static void *allocateBlocks(void *argument) {
  uint64_t tag = (uint64_t)(uintptr_t)argument;
  void **blocks = calloc(blockCount, sizeof *blocks);
  FIXTURE_CHECK(blocks != NULL, "calloc failed");
  for (size_t i = 0; i < blockCount; i++) {
    size_t byteCount = i % 10 == 9 ? i * 1000 : i;
    unsigned char *block = swallocMalloc(byteCount);
    FIXTURE_CHECK(block != NULL, "swalloc_malloc(%zu) returned NULL", byteCount);
    FIXTURE_CHECK(fixtureIsAligned(block, 16), "swalloc_malloc(%zu) returned %p", byteCount, (void *)block);
    size_t usable = swallocUsableSize(block);
    FIXTURE_CHECK(usable >= byteCount, "swalloc_malloc_usable_size is %zu for %zu bytes", usable, byteCount);
    fixtureFill(block, usable, tag + i);
    blocks[i] = block;
  }
  return blocks;
}

static void freeBlocks(void **blocks, uint64_t tag) {
  for (size_t i = 0; i < blockCount; i++) {
    fixtureVerify(blocks[i], swallocUsableSize(blocks[i]), tag + i, "swalloc block");
    swallocFree(blocks[i]);
  }
  free(blocks);
}

int main(int argc, char **argv) {
  FIXTURE_CHECK(argc == 2, "usage: dlopen_library <libswalloc.so>");
  void *library = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  FIXTURE_CHECK(library != NULL, "dlopen: %s", dlerror());
  swallocMalloc = (SwallocMalloc *)dlsym(library, "swalloc_malloc");
  swallocFree = (SwallocFree *)dlsym(library, "swalloc_free");
  swallocUsableSize = (SwallocUsableSize *)dlsym(library, "swalloc_malloc_usable_size");
  printf("swalloc_malloc %s\n", swallocMalloc ? "found" : "missing");
  printf("swalloc_free %s\n", swallocFree ? "found" : "missing");
  printf("swalloc_malloc_usable_size %s\n", swallocUsableSize ? "found" : "missing");
  FIXTURE_CHECK(swallocMalloc && swallocFree && swallocUsableSize, "a swalloc_ symbol is missing");

  swallocFree(NULL);
  FIXTURE_CHECK(swallocUsableSize(NULL) == 0, "swalloc_malloc_usable_size(NULL) is not 0");

  // Blocks allocated by another thread, freed by this one, and the other way round.
  pthread_t thread;
  int error = pthread_create(&thread, NULL, allocateBlocks, (void *)(uintptr_t)1000000);
  FIXTURE_CHECK(error == 0, "pthread_create: %s", strerror(error));
  void **mine = allocateBlocks((void *)(uintptr_t)2000000);
  void *theirs = NULL;
  pthread_join(thread, &theirs);
  freeBlocks(theirs, 1000000);
  freeBlocks(mine, 2000000);
  printf("dlopen library ok\n");
  return 0;
}
