// double_free_random: a random program with one double free in it, for secure mode. From a seed: random
// mallocs and frees of a few size classes (some by a second thread), one block freed, written after free (a
// word at a random offset, random or zero, or nothing), freed again (by this thread or another) or given to
// realloc, then more random work. Secure mode must either abort, naming the misuse, or keep the heap sound:
// malloc never hands out a block that is live (each new block is compared with every live one before it is
// written), and live blocks keep their contents. Exits 0 when the heap stayed sound; fails (exit 1) when
// malloc handed out a live block or a live block changed. Usage: double_free_random SEED [ROUNDS [wide] [nowrite]];
// `wide` adds medium and large blocks (20 000 to 300 000 bytes) and C23's free_sized as the second free;
// `nowrite` writes nothing to the freed block (a plain double free, which the default mode must survive too).
#include "fixture.h"
#include <pthread.h>

#pragma GCC diagnostic ignored "-Wuse-after-free"

enum { slotCount = 192 };
static unsigned char *slots[slotCount];
static size_t sizes[slotCount];
static uint64_t tags[slotCount];
static uint64_t nextTag = 1;
static uint64_t state;
static int wide;
static int noWrite;

static uint64_t draw(uint64_t bound) { return fixtureRandom(&state) % bound; }

/// Sizes of a few neighbouring classes (16 to 1 KiB, and one sealed class above 1 KiB at level 1), so that
/// the blocks freed are the ones handed out again.
static size_t drawSize(size_t victimSize) {
  static const size_t others[] = {16, 24, 48, 64, 100, 200, 700, 1500, 20000, 100000};
  return draw(3) != 0 ? victimSize : others[draw(wide ? 10 : 8)];
}

/// A new block for `slot`, compared with every live block before anything is written to it.
static void allocate(int slot, size_t byteCount) {
  unsigned char *block = malloc(byteCount);
  FIXTURE_CHECK(block != NULL, "malloc(%zu) failed", byteCount);
  for (int i = 0; i < slotCount; i++) {
    if (slots[i] == NULL) continue;
    FIXTURE_CHECK(block + byteCount <= slots[i] || slots[i] + sizes[i] <= block,
                  "malloc(%zu) returned %p, inside the live block %p of %zu bytes", byteCount, (void *)block,
                  (void *)slots[i], sizes[i]);
  }
  slots[slot] = block;
  sizes[slot] = byteCount;
  tags[slot] = nextTag++;
  fixtureFill(block, byteCount, tags[slot]);
}

static void *freeOnThread(void *block) {
  free(block);
  return NULL;
}

static void freeRemotely(void *block) {
  pthread_t thread;
  FIXTURE_CHECK(pthread_create(&thread, NULL, freeOnThread, block) == 0, "pthread_create failed");
  FIXTURE_CHECK(pthread_join(thread, NULL) == 0, "pthread_join failed");
}

static void release(int slot, int remote) {
  fixtureVerify(slots[slot], sizes[slot], tags[slot], "a live block");
  if (remote) freeRemotely(slots[slot]); else free(slots[slot]);
  slots[slot] = NULL;
}

/// `count` random steps: allocate into an empty slot, or free a full one (one in 8 by another thread).
static void work(int count, size_t victimSize) {
  for (int step = 0; step < count; step++) {
    int slot = (int)draw(slotCount);
    if (slots[slot] == NULL) allocate(slot, drawSize(victimSize));
    else release(slot, draw(8) == 0);
  }
}

int main(int argc, char **argv) {
  FIXTURE_CHECK(argc >= 2, "usage: double_free_random SEED [ROUNDS]");
  FIXTURE_CHECK(fixtureReportSwalloc(), "libswalloc.so is not loaded");
  uint64_t seed = strtoull(argv[1], NULL, 10);
  int rounds = argc > 2 ? atoi(argv[2]) : 2000;
  for (int i = 3; i < argc; i++) {
    wide |= strcmp(argv[i], "wide") == 0;
    noWrite |= strcmp(argv[i], "nowrite") == 0;
  }
  state = seed * 0x9e3779b97f4a7c15ull + 1;
  static const size_t victimSizes[] = {16, 32, 48, 96, 256, 1024, 1500, 20000, 100000, 300000};
  size_t victimSize = victimSizes[draw(wide ? 10 : 7)];
  work((int)draw(rounds), victimSize);

  unsigned char *victim = malloc(victimSize);
  FIXTURE_CHECK(victim != NULL, "malloc failed");
  int firstRemote = draw(4) == 0;
  int secondRemote = draw(2) == 0;
  int secondRealloc = !secondRemote && draw(3) == 0;  // realloc of the freed block instead of a second free
  int secondSized = wide && !secondRemote && !secondRealloc && draw(2) == 0;  // free_sized
  size_t reallocSize = 1 + draw(2 * victimSize);
  int between = (int)draw(8);
  int writeKind = (int)draw(4);  // 0: nothing; 1: the second word; 2: a random word; 3: zero at a random word
  if (noWrite) writeKind = 0;
  size_t words = victimSize / 8;
  size_t offset = writeKind == 1 ? 8 : 8 * draw(words);
  uint64_t value = writeKind == 3 ? 0 : fixtureRandom(&state);
  printf("seed %llu: %zu-byte block %p, first free %s, %d steps, write %d at %zu, then %s\n",
         (unsigned long long)seed, victimSize, (void *)victim, firstRemote ? "remote" : "local", between,
         writeKind, offset,
         secondRemote ? "free remote" : secondRealloc ? "realloc" : secondSized ? "free_sized" : "free local");
  fflush(stdout);
  if (firstRemote) freeRemotely(victim); else free(victim);
  work(between, victimSize);
  // A block handed out again in between is live: its second free would be a stale free of a live block,
  // which no allocator without a quarantine sees. Such a seed frees nothing twice.
  int reused = 0;
  for (int i = 0; i < slotCount; i++) {
    reused |= slots[i] != NULL && slots[i] < victim + victimSize && victim < slots[i] + sizes[i];
  }
  if (reused) {
    printf("the block was handed out again: no double free\n");
  } else {
    if (writeKind != 0) memcpy(victim + offset, &value, 8);
    if (secondRemote) {
      freeRemotely(victim);
    } else if (secondRealloc) {
      // The block it returns is live: kept in a slot, as any other.
      unsigned char *moved = realloc(victim, reallocSize);
      FIXTURE_CHECK(moved != NULL, "realloc failed");
      int slot = 0;
      while (slot < slotCount - 1 && slots[slot] != NULL) slot++;
      if (slots[slot] != NULL) release(slot, 0);
      for (int i = 0; i < slotCount; i++) {
        if (slots[i] == NULL) continue;
        FIXTURE_CHECK(moved + reallocSize <= slots[i] || slots[i] + sizes[i] <= moved,
                      "realloc returned %p, inside the live block %p", (void *)moved, (void *)slots[i]);
      }
      slots[slot] = moved;
      sizes[slot] = reallocSize;
      tags[slot] = nextTag++;
      fixtureFill(moved, reallocSize, tags[slot]);
    } else if (secondSized) {
      void (*freeSized)(void *, size_t) = (void (*)(void *, size_t))dlsym(RTLD_DEFAULT, "free_sized");
      FIXTURE_CHECK(freeSized != NULL, "no free_sized");
      freeSized(victim, victimSize);
    } else {
      free(victim);
    }
  }
  fflush(stdout);
  work(rounds, victimSize);
  for (int i = 0; i < slotCount; i++) {
    if (slots[i] != NULL) release(i, 0);
  }
  // Past the end of every free list of the class: 3000 more blocks, each compared with the others before
  // it is written; every other one is never written (a block a free list holds twice is then handed out
  // again with its first word, the encoded link, intact).
  enum { tailLimit = 3000 };
  static unsigned char *tail[tailLimit];
  int tailCount = (int)((64u << 20) / victimSize);  // at most 64 MiB
  if (tailCount > tailLimit) tailCount = tailLimit;
  for (int i = 0; i < tailCount; i++) {
    tail[i] = malloc(victimSize);
    FIXTURE_CHECK(tail[i] != NULL, "malloc failed");
    for (int j = 0; j < i; j++) {
      FIXTURE_CHECK(tail[i] + victimSize <= tail[j] || tail[j] + victimSize <= tail[i],
                    "malloc(%zu) returned %p, inside the live block %p", victimSize, (void *)tail[i], (void *)tail[j]);
    }
    if (i % 2 == 0) fixtureFill(tail[i], victimSize, (uint64_t)i);
  }
  for (int i = 0; i < tailCount; i += 2) fixtureVerify(tail[i], victimSize, (uint64_t)i, "a live block");
  for (int i = 0; i < tailCount; i++) free(tail[i]);
  printf("double-free-random ok\n");
  return 0;
}
