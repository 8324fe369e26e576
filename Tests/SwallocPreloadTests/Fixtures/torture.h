// Self-describing blocks for the torture fixtures (torture.c, torture_plugin.c): a 16-byte header with the byte
// count and tag, then the tag's pattern on every byte of the first 4 KiB and last 64 bytes and on one byte per
// 64 elsewhere, so checking a 2 MiB block stays cheap. Failures are safe to report from a forked child.
#ifndef SWALLOC_TORTURE_H
#define SWALLOC_TORTURE_H

#include "fixture.h"

#include <unistd.h>

/// The first 16 bytes of every torture block.
typedef struct {
  /// byteCount | tortureCheck(tag) << 32: a header that was overwritten fails the check.
  uint64_t sizeWord;
  uint64_t tag;
} TortureHeader;

enum { tortureMinimumByteCount = sizeof(TortureHeader) };

/// Set in a forked child: a failure then ends it with _exit, which runs no atexit handler and flushes no stdio
/// buffer inherited from the parent (and is safe in a child forked from a signal handler).
static int tortureInChild;

/// Writes `<program>: FAIL: <message>` to stderr with one write(2), then exits 1 (_exit(1) in a child).
__attribute__((noreturn, format(printf, 1, 2))) static inline void tortureFail(const char *format, ...) {
  char message[600];
  int length = snprintf(message, sizeof message, "%s%s: FAIL: ", program_invocation_short_name,
                        tortureInChild ? " (child)" : "");
  va_list arguments;
  va_start(arguments, format);
  if (length > 0 && (size_t)length < sizeof message - 2)
    length += vsnprintf(message + length, sizeof message - 2 - (size_t)length, format, arguments);
  va_end(arguments);
  if (length < 0 || (size_t)length > sizeof message - 2) length = (int)(sizeof message - 2);
  message[length++] = '\n';
  ssize_t written = write(STDERR_FILENO, message, (size_t)length);
  (void)written;
  if (tortureInChild) _exit(1);
  exit(1);
}

#define TORTURE_CHECK(condition, ...)                                                                            \
  do {                                                                                                           \
    if (!(condition)) tortureFail(__VA_ARGS__);                                                                  \
  } while (0)

static inline uint32_t tortureCheck(uint64_t tag) { return (uint32_t)((tag * 0xd6e8feb86659fd93ull) >> 32); }

/// The offset after `offset` that carries a pattern byte in a block of `byteCount` bytes.
static inline size_t tortureNextOffset(size_t offset, size_t byteCount) {
  if (offset < 4096 || offset + 64 >= byteCount) return offset + 1;
  // offset < byteCount - 64 here, so byteCount - 64 is still ahead.
  return offset + 64 <= byteCount - 64 ? offset + 64 : byteCount - 64;
}

/// Writes the header and pattern of `tag` into `block`; returns it.
static inline void *tortureStamp(void *block, size_t byteCount, uint64_t tag) {
  TortureHeader *header = (TortureHeader *)block;
  header->sizeWord = (uint64_t)byteCount | (uint64_t)tortureCheck(tag) << 32;
  header->tag = tag;
  unsigned char *bytes = (unsigned char *)block;
  for (size_t i = sizeof *header; i < byteCount; i = tortureNextOffset(i, byteCount))
    bytes[i] = fixturePatternByte(tag, i);
  return block;
}

/// Checks the header and the pattern bytes below `limit`; fails naming `what`. Returns the block's byte count.
static inline size_t tortureVerifyPrefix(const void *block, size_t limit, const char *what) {
  const TortureHeader *header = (const TortureHeader *)block;
  size_t byteCount = (size_t)(uint32_t)header->sizeWord;
  TORTURE_CHECK((header->sizeWord >> 32) == tortureCheck(header->tag) && byteCount >= sizeof *header,
                "%s: block %p has a corrupt header (%#llx %#llx)", what, block,
                (unsigned long long)header->sizeWord, (unsigned long long)header->tag);
  const unsigned char *bytes = (const unsigned char *)block;
  for (size_t i = sizeof *header; i < byteCount && i < limit; i = tortureNextOffset(i, byteCount))
    TORTURE_CHECK(bytes[i] == fixturePatternByte(header->tag, i),
                  "%s: block %p of %zu bytes (tag %#llx) changed at offset %zu: %#x, expected %#x", what, block,
                  byteCount, (unsigned long long)header->tag, i, bytes[i], fixturePatternByte(header->tag, i));
  return byteCount;
}

static inline size_t tortureVerify(const void *block, const char *what) {
  return tortureVerifyPrefix(block, SIZE_MAX, what);
}

/// malloc(byteCount), checked for NULL and 16-byte alignment, stamped with `tag`.
static inline void *tortureAllocate(size_t byteCount, uint64_t tag, const char *what) {
  if (byteCount < tortureMinimumByteCount) byteCount = tortureMinimumByteCount;
  void *block = malloc(byteCount);
  TORTURE_CHECK(block != NULL, "%s: malloc(%zu) returned NULL", what, byteCount);
  TORTURE_CHECK(fixtureIsAligned(block, 16), "%s: malloc(%zu) returned %p, not 16-byte aligned", what, byteCount,
                block);
  return tortureStamp(block, byteCount, tag);
}

/// Checks `block` (NULL is skipped) and frees it.
static inline void tortureRelease(void *block, const char *what) {
  if (block == NULL) return;
  tortureVerify(block, what);
  free(block);
}

/// realloc(block, byteCount): checks that the common prefix survived, then stamps the block with `tag`.
static inline void *tortureResize(void *block, size_t byteCount, uint64_t tag, const char *what) {
  if (byteCount < tortureMinimumByteCount) byteCount = tortureMinimumByteCount;
  size_t oldByteCount = tortureVerify(block, what);
  void *resized = realloc(block, byteCount);
  TORTURE_CHECK(resized != NULL, "%s: realloc(%p, %zu) returned NULL", what, block, byteCount);
  TORTURE_CHECK(fixtureIsAligned(resized, 16), "%s: realloc(%zu) returned %p", what, byteCount, resized);
  // The header still holds the old byte count; check the bytes both sizes share.
  tortureVerifyPrefix(resized, byteCount < oldByteCount ? byteCount : oldByteCount, what);
  return tortureStamp(resized, byteCount, tag);
}

/// Mostly small sizes: 3/4 up to 512 bytes, 3/16 up to 16 KiB, 1/16 up to `maximumByteCount`.
static inline size_t tortureRandomByteCount(uint64_t *random, size_t maximumByteCount) {
  uint64_t r = fixtureRandom(random);
  size_t limit = r % 16 == 0 ? maximumByteCount : r % 16 <= 3 ? 16 * 1024 : 512;
  return tortureMinimumByteCount + (size_t)(r >> 8) % (limit - tortureMinimumByteCount + 1);
}

#endif
