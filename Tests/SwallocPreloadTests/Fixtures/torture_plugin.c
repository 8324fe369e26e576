// Shared library for `torture dlopen`: its constructor allocates a table, its functions allocate, resize and
// hand blocks across the boundary, and its destructor checks and frees the table and leaves one new block in
// the program's outbox, which the program frees after dlclose has unmapped this code.
#include "torture.h"

enum { tableCount = 24 };

static void *table[tableCount];
static int loadCount;
static void **outbox;
static uint64_t outboxTag;
/// Dynamic TLS (the library is dlopen'ed): glibc allocates it with malloc for each thread that touches it.
static __thread unsigned char threadBuffer[16384];

static size_t tableByteCount(size_t index) {
  // One block above 1 MiB, the rest from 16 bytes to about 50 KiB.
  return index == tableCount - 1 ? (3u << 19) + 17 : 16 + index * index * 90;
}

__attribute__((constructor)) static void pluginLoad(void) {
  loadCount++;
  for (size_t i = 0; i < tableCount; i++) table[i] = tortureAllocate(tableByteCount(i), i, "plugin table");
}

__attribute__((destructor)) static void pluginUnload(void) {
  for (size_t i = 0; i < tableCount; i++) {
    TORTURE_CHECK(tortureVerify(table[i], "plugin table at unload") == tableByteCount(i),
                  "plugin table block %zu has the wrong size", i);
    free(table[i]);
    table[i] = NULL;
  }
  if (outbox) *outbox = tortureAllocate(777, outboxTag, "plugin destructor block");
}

/// How many times this copy's constructor ran: 1 unless the library was not unloaded in between.
__attribute__((visibility("default"))) int tortureLoadCount(void) { return loadCount; }

/// Where the destructor leaves a block tagged `tag`.
__attribute__((visibility("default"))) void tortureSetOutbox(void **slot, uint64_t tag) {
  outbox = slot;
  outboxTag = tag;
}

/// Allocates, resizes and frees inside the plugin; returns a checksum that depends only on `seed`.
__attribute__((visibility("default"))) uint64_t tortureWork(uint64_t seed) {
  for (size_t i = 0; i < tableCount; i++) tortureVerify(table[i], "plugin table");
  uint64_t random = seed * 2 + 1;
  uint64_t checksum = 0;
  void *held[16] = {0};
  for (size_t round = 0; round < 300; round++) {
    void **slot = &held[round % 16];
    size_t byteCount = tortureRandomByteCount(&random, 200 * 1024);
    if (*slot && round % 3 == 0) {
      *slot = tortureResize(*slot, byteCount, round, "plugin block");
    } else {
      tortureRelease(*slot, "plugin block");
      *slot = tortureAllocate(byteCount, round, "plugin block");
    }
    checksum = checksum * 31 + byteCount;
  }
  for (size_t i = 0; i < 16; i++) tortureRelease(held[i], "plugin block");
  threadBuffer[seed % sizeof threadBuffer] = (unsigned char)seed;
  return checksum + threadBuffer[seed % sizeof threadBuffer];
}

/// A block for the program to free, possibly after this library is unloaded.
__attribute__((visibility("default"))) void *tortureHandOut(size_t byteCount, uint64_t tag) {
  return tortureAllocate(byteCount, tag, "plugin block handed out");
}

/// Checks and frees a block the program allocated.
__attribute__((visibility("default"))) void tortureTakeIn(void *block) {
  tortureRelease(block, "program block freed in the plugin");
}
