// misuse.h: the overflow and underflow probes misuse.c (malloc/free) and misuse_cxx.cpp (new[]/delete[])
// share. The includer defines MISUSE_ALLOCATE(size) (a char *), MISUSE_RELEASE(p) and MISUSE_OVERFLOW_BYTE
// (what a one-byte overflow writes) first.
#ifndef MISUSE_H
#define MISUSE_H

#include "fixture.h"

static char source[64] = "0123456789abcdefghijklmnopqrstuvwxyz";

/// Keeps the compiler from seeing through the misuse.
static void escape(void *p) { __asm__ volatile("" : : "r"(p) : "memory"); }

/// The same pointer, out of the compiler's sight: it may not drop the writes past the block as undefined.
static char *launder(char *p) {
  __asm__ volatile("" : "+r"(p) : : "memory");
  return p;
}

/// Writes `count` bytes just past the `size` bytes asked for (a string's zero, or a memcpy), then frees.
/// The sizes leave at least `count` bytes of slack in default mode's size class: harmless there.
static void overflow(size_t size, size_t count) {
  char *volatile p = MISUSE_ALLOCATE(size);
  FIXTURE_CHECK(p != NULL, "allocation failed");
  if (count == 1) {
    *(volatile char *)launder(p + size) = MISUSE_OVERFLOW_BYTE;
  } else {
    memcpy(launder(p + size), source, count);
  }
  MISUSE_RELEASE(p);
}

/// A live block whose address neighbour below is live too: never the first block of its page, which has no
/// block before it to check (secure mode hands blocks out in a random order: a block taken at random was its
/// page's first in about 1 run in 150).
static char *blockAfterLive(size_t size) {
  // Blocks are handed out in a random order: allocate until two are neighbours. At SWALLOC_SECURE=full a
  // block of `size` bytes sits in the class of size + 8 (its trailer): blocks that far apart (16-byte
  // classes: sizes up to 1 KiB).
  size_t stride = (size + 8 + 15) / 16 * 16;
  static char *blocks[1024];
  for (int i = 0; i < 1024; i++) {
    blocks[i] = MISUSE_ALLOCATE(size);
    FIXTURE_CHECK(blocks[i] != NULL, "allocation failed");
    for (int j = 0; j < i; j++) {
      if (blocks[j] + stride == blocks[i]) return blocks[i];
      if (blocks[i] + stride == blocks[j]) return blocks[j];
    }
  }
  return blocks[1023];
}

/// Writes `count` bytes just before the block `p` (the end of the block before it), then frees `p`.
static void underflowBefore(char *volatile p, size_t count) {
  // One byte: changed for sure (a fixed value equals the byte there, the top byte of the keyed trailer, in 1
  // run in 256, and is then no change to catch).
  if (count == 1) {
    volatile char *q = (volatile char *)launder(p - 1);
    *q = (char)(*q + 1);
  } else {
    memcpy(launder(p - count), source, count);
  }
  MISUSE_RELEASE(p);
}

/// `underflowBefore` a block of `size` bytes (a 16-byte class) whose neighbour below is live.
static void underflow(size_t size, size_t count) { underflowBefore(blockAfterLive(size), count); }

#endif
