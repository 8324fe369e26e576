// double_free: small and medium blocks freed twice, in the patterns Swalloc's cheap checks see. Each pattern
// prints the block it frees twice (`<pattern> block=0x...`), so that the test can find the report naming it
// on stderr; afterwards malloc must never hand out one block twice, and every live block keeps its contents
// (no free-list corruption). Usage: double_free [pattern...] (default: all but `many`).
#include "fixture.h"
#include <pthread.h>

// GCC sees through free(p); free(p) and warns; the double frees are the point here.
#pragma GCC diagnostic ignored "-Wuse-after-free"

/// Blocks kept live until the end, with their sizes; checked for duplicates and contents.
enum { maximumLive = 1 << 16 };
static void *live[maximumLive];
static size_t liveSizes[maximumLive];
static size_t liveCount;

static void *allocateLive(size_t byteCount) {
  void *block = malloc(byteCount);
  FIXTURE_CHECK(block != NULL, "malloc(%zu) failed", byteCount);
  FIXTURE_CHECK(liveCount < maximumLive, "too many live blocks");
  fixtureFill(block, byteCount, liveCount);
  live[liveCount] = block;
  liveSizes[liveCount] = byteCount;
  liveCount++;
  return block;
}

static int compareAddresses(const void *a, const void *b) {
  uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
  return x < y ? -1 : x > y;
}

/// Fails if malloc handed out one block twice (two live pointers equal, or overlapping) or a live block changed.
static void verifyLive(const char *when) {
  for (size_t i = 0; i < liveCount; i++) fixtureVerify(live[i], liveSizes[i], i, when);
  static uintptr_t sorted[maximumLive];
  for (size_t i = 0; i < liveCount; i++) sorted[i] = (uintptr_t)live[i];
  qsort(sorted, liveCount, sizeof sorted[0], compareAddresses);
  for (size_t i = 1; i < liveCount; i++)
    FIXTURE_CHECK(sorted[i] != sorted[i - 1], "%s: malloc returned %p twice", when, (void *)sorted[i]);
}

/// Allocates `count` live blocks of `byteCount`: enough to run through every free list of their class.
static void allocateMany(size_t count, size_t byteCount) {
  for (size_t i = 0; i < count; i++) allocateLive(byteCount);
}

/// Allocates `count` blocks of `byteCount` without writing them (a program that fills its blocks later
/// overwrites a block's encoded link, which secure mode's malloc checks: it would see a block handed out twice
/// that way), and fails if one was handed out twice.
static void allocateUnwritten(size_t count, size_t byteCount) {
  enum { limit = 4096 };
  static void *blocks[limit];
  FIXTURE_CHECK(count <= limit, "too many blocks");
  for (size_t i = 0; i < count; i++) {
    blocks[i] = malloc(byteCount);
    FIXTURE_CHECK(blocks[i] != NULL, "malloc(%zu) failed", byteCount);
    for (size_t j = 0; j < i; j++) FIXTURE_CHECK(blocks[j] != blocks[i], "malloc returned %p twice", blocks[i]);
  }
}

/// free(B); free(B) on the current page while another block of it is live: the page does not empty, so the
/// fast path takes both. The next refill of the free list finds B linked to itself.
static void immediate(void) {
  size_t byteCount = 176;
  allocateLive(byteCount);  // keeps the page from emptying
  void *block = malloc(byteCount);
  printf("immediate block=%p\n", block);
  free(block);
  free(block);
  allocateMany(3000, byteCount);  // several pages' worth: past the refill
}

/// free(B); free(B) of the only block of a class: the page is its class's current one, and a current page
/// never empties on a free (it holds an extra count), so the second free is seen at once.
static void immediateLast(void) {
  void *block = malloc(1400);
  printf("immediate-last block=%p\n", block);
  free(block);
  free(block);
  allocateMany(500, 1400);
}

/// The last frees into a page are free(B), free(C), free(B) while D, a block of the same page, is still live:
/// the page's count reaches 0 one free early. Retiring it would hand D's memory out again; its lists show the
/// cycle B -> C -> B, so it is set aside instead, and D stays intact.
static void afterOtherFrees(void) {
  size_t byteCount = 720;
  enum { count = 200 };  // over two pages of 720-byte blocks (64 KiB / 768 = 85 a page)
  void *blocks[count];
  for (int i = 0; i < count; i++) blocks[i] = malloc(byteCount);
  // Three consecutive blocks in one 64 KiB page.
  int first = 100;
  while (((uintptr_t)blocks[first] >> 16) != ((uintptr_t)blocks[first + 2] >> 16)) first++;
  void *twice = blocks[first], *other = blocks[first + 1];
  printf("after-other-frees block=%p\n", twice);
  for (int i = 0; i < count; i++) {
    if (i < first || i > first + 2) free(blocks[i]);
  }
  // Still live: D, with the pattern verifyLive checks.
  fixtureFill(blocks[first + 2], byteCount, liveCount);
  live[liveCount] = blocks[first + 2];
  liveSizes[liveCount] = byteCount;
  liveCount++;
  free(twice);
  free(other);
  free(twice);
  allocateMany(1000, byteCount);
}

/// free(B); free(B) of a 20 000-byte block outside the first 64 KiB slice of its medium page: such frees take
/// the slow path, which sees B at the head of the page's local frees and ignores the second free.
static void medium(void) {
  size_t byteCount = 20000;
  for (int i = 0; i < 12; i++) allocateLive(byteCount);
  void *block = malloc(byteCount);  // the 13th: at 13 * 20 KiB, past the first slice
  printf("medium block=%p\n", block);
  free(block);
  free(block);
  allocateMany(100, byteCount);
}

/// Runs `body(argument)` on a new thread and waits for it.
static void onThread(void *(*body)(void *), void *argument) {
  pthread_t thread;
  FIXTURE_CHECK(pthread_create(&thread, NULL, body, argument) == 0, "pthread_create failed");
  FIXTURE_CHECK(pthread_join(thread, NULL) == 0, "pthread_join failed");
}

static void *freeTwice(void *block) {
  free(block);
  free(block);
  return NULL;
}

/// Another thread frees B twice in a row: the second free finds B at the head of the page's thread-free list.
static void remote(void) {
  size_t byteCount = 96;
  allocateLive(byteCount);
  void *block = malloc(byteCount);
  printf("remote block=%p\n", block);
  onThread(freeTwice, block);
  allocateMany(3000, byteCount);
}

/// Twelve double frees (medium blocks, seen at the second free): more than Swalloc reports without
/// SWALLOC_VERBOSE.
static void many(void) {
  for (int i = 0; i < 12; i++) {
    void *block = malloc(30000);
    printf("many block=%p\n", block);
    free(block);
    free(block);
  }
  allocateMany(100, 30000);
}

static void *freeWithOthersBetween(void *argument) {
  void **blocks = argument;
  free(blocks[0]);
  free(blocks[1]);
  free(blocks[0]);
  return NULL;
}

/// Another thread frees B, C, B: B's second push makes the thread-free list loop (B -> C -> B). The owner
/// sees the list is longer than the page's count of outstanding blocks when it collects, and drops it.
static void remoteAfterOtherFrees(void) {
  size_t byteCount = 112;
  allocateLive(byteCount);
  void *blocks[2] = {malloc(byteCount), malloc(byteCount)};
  printf("remote-after-other-frees block=%p\n", blocks[0]);
  onThread(freeWithOthersBetween, blocks);
  allocateMany(3000, byteCount);
}

/// free(B), free(C), a write over B's second word (a use after free), free(B) again: the write took away the
/// mark that tells secure mode's free that B is free. Secure mode only (onlyWhenNamed): by default, nothing
/// marks freed blocks.
static void writtenThenFreedAgain(void) {
  size_t byteCount = 48;
  allocateLive(byteCount);
  long *block = malloc(byteCount);
  void *other = malloc(byteCount);
  printf("written-then-freed-again block=%p\n", (void *)block);
  fflush(stdout);  // the process aborts
  free(block);
  free(other);
  block[1] = 42;
  free(block);
  allocateUnwritten(1000, byteCount);
}

static void *freeOnce(void *block) {
  free(block);
  return NULL;
}

/// The owner frees X, B and Y, writes over B's second word, and another thread frees B again: B goes on the
/// page's thread-free list while it is on its local list (found in a real sequence: malloc then handed B out
/// over and over). Secure mode only.
static void remoteWrittenThenFreedAgain(void) {
  size_t byteCount = 48;
  allocateLive(byteCount);
  void *x = malloc(byteCount);
  long *block = malloc(byteCount);
  void *y = malloc(byteCount);
  printf("remote-written-then-freed-again block=%p\n", (void *)block);
  fflush(stdout);  // the process aborts
  free(y);
  free(block);
  free(x);
  block[1] = 42;
  onThread(freeOnce, block);
  allocateUnwritten(1000, byteCount);
}

static const struct {
  const char *name;
  void (*run)(void);
  int onlyWhenNamed;
} patterns[] = {
  {"immediate", immediate, 0},
  {"immediate-last", immediateLast, 0},
  {"after-other-frees", afterOtherFrees, 0},
  {"medium", medium, 0},
  {"remote", remote, 0},
  {"remote-after-other-frees", remoteAfterOtherFrees, 0},
  {"many", many, 1},
  {"written-then-freed-again", writtenThenFreedAgain, 1},
  {"remote-written-then-freed-again", remoteWrittenThenFreedAgain, 1},
};

int main(int argc, char **argv) {
  FIXTURE_CHECK(fixtureReportSwalloc(), "libswalloc.so is not loaded");
  size_t patternCount = sizeof patterns / sizeof patterns[0];
  for (size_t p = 0; p < patternCount; p++) {
    int selected = argc < 2 && !patterns[p].onlyWhenNamed;
    for (int a = 1; a < argc; a++) selected |= strcmp(argv[a], patterns[p].name) == 0;
    if (!selected) continue;
    fflush(stdout);
    patterns[p].run();
    fflush(stdout);
    verifyLive(patterns[p].name);
  }
  // The allocator still works for every class, and the live blocks survive a full round of frees.
  for (size_t i = 0; i < liveCount; i++) {
    fixtureVerify(live[i], liveSizes[i], i, "a live block at the end");
    free(live[i]);
  }
  liveCount = 0;
  allocateMany(2000, 176);
  allocateMany(2000, 720);
  verifyLive("after freeing everything");
  printf("double-free ok\n");
  return 0;
}
