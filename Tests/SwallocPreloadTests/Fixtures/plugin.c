// Shared library for the dlopen fixture: its constructor allocates a table that its destructor checks and frees,
// it trades blocks with the program that loaded it, and its thread-local buffer is dynamic TLS, which glibc
// allocates with malloc for every thread that touches it.
#include "fixture.h"

#include <malloc.h>

enum { tableCount = 64 };

static void *table[tableCount];
static __thread unsigned char threadBuffer[8192];

__attribute__((constructor)) static void pluginLoad(void) {
  for (size_t i = 0; i < tableCount; i++) {
    table[i] = malloc(16 + i * 40);
    FIXTURE_CHECK(table[i] != NULL, "plugin constructor: malloc failed");
    fixtureFill(table[i], 16 + i * 40, i);
  }
}

__attribute__((destructor)) static void pluginUnload(void) {
  for (size_t i = 0; i < tableCount; i++) {
    fixtureVerify(table[i], 16 + i * 40, i, "plugin table at unload");
    free(table[i]);
    table[i] = NULL;
  }
}

/// Allocates, grows and frees inside the plugin; returns a checksum of the work so the caller can compare.
__attribute__((visibility("default"))) uint64_t pluginWork(uint64_t seed) {
  uint64_t random = seed | 1;
  uint64_t checksum = 0;
  for (size_t i = 0; i < tableCount; i++) fixtureVerify(table[i], 16 + i * 40, i, "plugin table");
  for (size_t round = 0; round < 200; round++) {
    size_t byteCount = 1 + fixtureRandom(&random) % 3000;
    unsigned char *block = malloc(byteCount);
    FIXTURE_CHECK(block != NULL, "plugin: malloc(%zu) failed", byteCount);
    fixtureFill(block, byteCount, round);
    unsigned char *grown = realloc(block, byteCount * 4);
    FIXTURE_CHECK(grown != NULL, "plugin: realloc failed");
    fixtureVerify(grown, byteCount, round, "plugin block after realloc");
    checksum += grown[byteCount - 1] + byteCount;
    free(grown);
  }
  threadBuffer[seed % sizeof threadBuffer] = (unsigned char)seed;
  return checksum + threadBuffer[seed % sizeof threadBuffer];
}

/// A block for the caller to free: allocated here, freed in the main program.
__attribute__((visibility("default"))) void *pluginAllocate(size_t byteCount, uint64_t tag) {
  void *block = malloc(byteCount);
  FIXTURE_CHECK(block != NULL, "plugin: malloc(%zu) failed", byteCount);
  fixtureFill(block, byteCount, tag);
  return block;
}

/// Frees a block the main program allocated.
__attribute__((visibility("default"))) void pluginRelease(void *block, size_t byteCount, uint64_t tag) {
  fixtureVerify(block, byteCount, tag, "block handed to the plugin");
  FIXTURE_CHECK(malloc_usable_size(block) >= byteCount, "plugin: usable size too small");
  free(block);
}
