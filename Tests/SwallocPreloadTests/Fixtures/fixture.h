// Shared helpers for the C and C++ fixture programs: the "is swalloc loaded" probe, failure reporting, and a
// content pattern that ties each byte to its block and offset. Header-only; every fixture is one file.
#ifndef SWALLOC_FIXTURE_H
#define SWALLOC_FIXTURE_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

/// A function the compiler keeps whole and under its own name, for profiles and reports that name it: GCC's
/// noipa (no inlining, and no clones such as f.isra.0, which Go's pprof cannot name); clang has no noipa
/// (it ignores it, and inlines) and makes no such clones: noinline.
#if defined(__clang__)
#define FIXTURE_SITE __attribute__((noinline))
#else
#define FIXTURE_SITE __attribute__((noipa))
#endif

/// Prints `swalloc active` when libswalloc.so is loaded (its `swalloc_malloc` is visible in the global scope),
/// `swalloc inactive` otherwise, so a fixture also runs under plain glibc. Returns whether it is active.
static inline int fixtureReportSwalloc(void) {
  int active = dlsym(RTLD_DEFAULT, "swalloc_malloc") != NULL;
  printf("swalloc %s\n", active ? "active" : "inactive");
  fflush(stdout);
  return active;
}

/// The address of `pointer`, hidden from the optimizer: GCC assumes that malloc results and objects of
/// over-aligned types are aligned and would fold an alignment check to true.
static inline uintptr_t fixtureAddress(const void *pointer) {
  uintptr_t address = (uintptr_t)pointer;
  __asm__ volatile("" : "+r"(address));
  return address;
}

static inline int fixtureIsAligned(const void *pointer, size_t alignment) {
  return fixtureAddress(pointer) % alignment == 0;
}

/// Prints `<fixture>: FAIL: <message>` to stderr and exits 1.
__attribute__((noreturn, format(printf, 1, 2))) static inline void fixtureFail(const char *format, ...) {
  va_list arguments;
  va_start(arguments, format);
  fprintf(stderr, "%s: FAIL: ", program_invocation_short_name);
  vfprintf(stderr, format, arguments);
  fputc('\n', stderr);
  va_end(arguments);
  exit(1);
}

#define FIXTURE_CHECK(condition, ...)                                                                            \
  do {                                                                                                           \
    if (!(condition)) fixtureFail(__VA_ARGS__);                                                                  \
  } while (0)

/// The pattern byte at `offset` of a block tagged `tag`.
static inline unsigned char fixturePatternByte(uint64_t tag, size_t offset) {
  uint64_t x = (tag ^ (offset >> 3)) * 0x9e3779b97f4a7c15ull;
  return (unsigned char)(x >> (56 - 8 * (offset & 7)));
}

static inline void fixtureFill(void *block, size_t byteCount, uint64_t tag) {
  unsigned char *bytes = (unsigned char *)block;
  for (size_t i = 0; i < byteCount; i++) bytes[i] = fixturePatternByte(tag, i);
}

/// The first offset whose byte is not the pattern of `tag`, or `byteCount` when all match.
static inline size_t fixtureMismatch(const void *block, size_t byteCount, uint64_t tag) {
  const unsigned char *bytes = (const unsigned char *)block;
  for (size_t i = 0; i < byteCount; i++)
    if (bytes[i] != fixturePatternByte(tag, i)) return i;
  return byteCount;
}

/// Fails unless `block` still holds the pattern of `tag`; `what` names the block in the message.
static inline void fixtureVerify(const void *block, size_t byteCount, uint64_t tag, const char *what) {
  size_t bad = fixtureMismatch(block, byteCount, tag);
  FIXTURE_CHECK(bad == byteCount, "%s: block %p of %zu bytes changed at offset %zu", what, block, byteCount, bad);
}

/// xorshift64*: small deterministic random numbers; the state must not be 0.
static inline uint64_t fixtureRandom(uint64_t *state) {
  uint64_t x = *state;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *state = x;
  return x * 0x2545f4914f6cdd1dull;
}

#ifdef __cplusplus
}
#endif

#endif
