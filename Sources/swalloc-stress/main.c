// swalloc-stress: threads trade randomly sized blocks through shared slots, so most frees are cross-thread,
// and every block's contents are verified before it is freed. Exit 0 and one `ok` line, or exit 1 and the
// first mismatch on stderr. Runs under any malloc: `LD_PRELOAD=libswalloc.so swalloc-stress --threads 8`.
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

// ---- Block encoding
//
// A slot holds `address | tinyByteCount`: every block is at least 8-byte aligned, so the low 3 bits are free to
// carry the byte count of a block smaller than 8 bytes. A block of 8 bytes or more stores its byte count in its
// first word, xored with the block's key. Every other byte is a pattern of (key, offset), and the key mixes the
// address with the run's seed, so a block that moved, was overwritten by another block, or was handed out twice
// no longer verifies.
//
// Alignment: blocks of 16 bytes or more must be 16-byte aligned; smaller ones 8-byte aligned, which is all C
// requires of them (jemalloc and mimalloc hand out 8-byte aligned 8-byte blocks). The semantics test holds
// swalloc to the stricter 16 bytes for every size.

enum { tinyMask = 7, maximumByteCount = 1 << 20 };

static uint64_t runSeed;

/// splitmix64's finalizer: a cheap, well-mixed 64-bit hash.
static inline uint64_t mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

/// The address of `pointer`, hidden from the optimizer: compilers assume that malloc and aligned_alloc results
/// are aligned (glibc's `__attribute_alloc_align__`) and would fold the alignment checks away.
static inline uintptr_t opaqueAddress(const void *pointer) {
  uintptr_t address = (uintptr_t)pointer;
  __asm__ volatile("" : "+r"(address));
  return address;
}

static inline uint64_t blockKey(const void *block) { return mix64((uint64_t)(uintptr_t)block ^ runSeed); }

/// The pattern word at word index `wordIndex` of a block with `key`; byte `i` of the block is byte `i % 8`
/// (little-endian) of word `i / 8`.
static inline uint64_t patternWord(uint64_t key, size_t wordIndex) {
  return key + (uint64_t)wordIndex * 0x9e3779b97f4a7c15ull;
}

static _Noreturn void failBlock(const char *what, const void *block, size_t byteCount, size_t offset) {
  fprintf(stderr, "swalloc-stress: error: %s: block %p, %zu bytes, at offset %zu\n", what, block, byteCount,
          offset);
  exit(1);
}

static _Noreturn void fail(const char *what, size_t byteCount, size_t alignment) {
  fprintf(stderr, "swalloc-stress: error: %s (size %zu, alignment %zu)\n", what, byteCount, alignment);
  exit(1);
}

/// Writes the pattern of `key` over bytes [from, to) of `block`.
static void fillRange(unsigned char *block, uint64_t key, size_t from, size_t to) {
  size_t i = from;
  for (; i < to && i % 8 != 0; i++) block[i] = (unsigned char)(patternWord(key, i / 8) >> (8 * (i % 8)));
  for (; i + 8 <= to; i += 8) {
    uint64_t word = patternWord(key, i / 8);
    memcpy(block + i, &word, 8);
  }
  for (; i < to; i++) block[i] = (unsigned char)(patternWord(key, i / 8) >> (8 * (i % 8)));
}

/// The first offset in [from, to) whose byte differs from the pattern of `key`, or `to`.
static size_t firstMismatch(const unsigned char *block, uint64_t key, size_t from, size_t to) {
  size_t i = from;
  for (; i < to && i % 8 != 0; i++)
    if (block[i] != (unsigned char)(patternWord(key, i / 8) >> (8 * (i % 8)))) return i;
  for (; i + 8 <= to; i += 8) {
    uint64_t word;
    memcpy(&word, block + i, 8);
    if (word != patternWord(key, i / 8)) break;
  }
  for (; i < to; i++)
    if (block[i] != (unsigned char)(patternWord(key, i / 8) >> (8 * (i % 8)))) return i;
  return to;
}

/// Encodes `byteCount` and the pattern into `block` and returns its slot value.
static uintptr_t encodeBlock(void *block, size_t byteCount) {
  uintptr_t address = opaqueAddress(block);
  size_t requiredAlignment = byteCount >= 16 ? 16 : 8;
  if (address % requiredAlignment != 0) fail("allocation is misaligned", byteCount, requiredAlignment);
  uint64_t key = blockKey(block);
  if (byteCount <= tinyMask) {
    fillRange(block, key, 0, byteCount);
    return address | byteCount;
  }
  uint64_t header = (uint64_t)byteCount ^ key;
  memcpy(block, &header, 8);
  fillRange(block, key, 8, byteCount);
  return address;
}

static inline void *slotBlock(uintptr_t slot) { return (void *)(slot & ~(uintptr_t)tinyMask); }

/// Verifies the whole block behind `slot` and returns its byte count.
static size_t verifyBlock(uintptr_t slot) {
  unsigned char *block = slotBlock(slot);
  uint64_t key = blockKey(block);
  size_t byteCount = slot & tinyMask;
  size_t from = 0;
  if (byteCount == 0) {
    uint64_t header;
    memcpy(&header, block, 8);
    byteCount = (size_t)(header ^ key);
    if (byteCount <= tinyMask || byteCount > maximumByteCount) failBlock("corrupt size word", block, byteCount, 0);
    from = 8;
  }
  size_t bad = firstMismatch(block, key, from, byteCount);
  if (bad != byteCount) failBlock("contents changed while allocated", block, byteCount, bad);
  if (malloc_usable_size(block) < byteCount) failBlock("malloc_usable_size shrank", block, byteCount, 0);
  return byteCount;
}

static void verifyAndFree(uintptr_t slot) {
  if (slot == 0) return;
  verifyBlock(slot);
  free(slotBlock(slot));
}

// ---- Random numbers and sizes

typedef struct {
  uint64_t state;
} Random;

static inline uint64_t nextRandom(Random *random) {
  random->state += 0x9e3779b97f4a7c15ull;
  return mix64(random->state);
}

static inline size_t randomBelow(Random *random, size_t bound) { return (size_t)(nextRandom(random) % bound); }

/// 90% of sizes are at most 1 KiB (log-uniform, so most are far smaller), 9% at most 64 KiB, 1% up to 1 MiB.
static size_t randomByteCount(Random *random) {
  size_t band = randomBelow(random, 100);
  if (band < 90) return 1 + randomBelow(random, (size_t)1 << (1 + randomBelow(random, 10)));
  if (band < 99) return 1025 + randomBelow(random, 65536 - 1024);
  return 65537 + randomBelow(random, maximumByteCount - 65536);
}

static size_t randomAlignment(Random *random) {
  // 16 B .. 64 KiB; the larger ones rarely.
  size_t shift = 4 + randomBelow(random, randomBelow(random, 8) == 0 ? 13 : 9);
  return (size_t)1 << shift;
}

// ---- The shared slots and the workers

static _Atomic uintptr_t *slots;
static size_t slotCount = 4096;
static atomic_bool stopRequested;

typedef struct {
  _Alignas(64) pthread_t thread;  // one cache line per worker: opCount is written on every op
  Random random;
  uint64_t opBudget;  // 0: run until stopRequested
  uint64_t opCount;
} Worker;

/// Puts `slot` into a random shared slot and verifies and frees the block it displaces,
/// which another thread often allocated.
static void publish(Worker *worker, uintptr_t slot) {
  size_t index = randomBelow(&worker->random, slotCount);
  verifyAndFree(atomic_exchange_explicit(&slots[index], slot, memory_order_acq_rel));
}

static void *allocateOrDie(void *block, const char *what, size_t byteCount, size_t alignment) {
  if (block == NULL) fail(what, byteCount, alignment);
  if (malloc_usable_size(block) < byteCount)
    fail("malloc_usable_size is below the requested size", byteCount, alignment);
  return block;
}

static void opMalloc(Worker *worker) {
  size_t byteCount = randomByteCount(&worker->random);
  unsigned char *block = allocateOrDie(malloc(byteCount), "malloc returned NULL", byteCount, 0);
  // Now and then the whole usable size must be writable, not just the request.
  if (randomBelow(&worker->random, 16) == 0) memset(block, 0xa5, malloc_usable_size(block));
  publish(worker, encodeBlock(block, byteCount));
}

static void opCalloc(Worker *worker) {
  size_t byteCount = randomByteCount(&worker->random);
  size_t elementSize = (byteCount % 4 == 0) ? 4 : 1;
  unsigned char *block = allocateOrDie(calloc(byteCount / elementSize, elementSize), "calloc returned NULL",
                                       byteCount, 0);
  for (size_t i = 0; i < byteCount; i++)
    if (block[i] != 0) failBlock("calloc memory is not zero", block, byteCount, i);
  publish(worker, encodeBlock(block, byteCount));
}

static void opRealloc(Worker *worker) {
  // Take a block out of the shared slots (so it is ours alone), resize it, check the kept prefix, put it back.
  size_t index = randomBelow(&worker->random, slotCount);
  uintptr_t slot = atomic_exchange_explicit(&slots[index], 0, memory_order_acq_rel);
  if (slot == 0) {
    opMalloc(worker);
    return;
  }
  size_t oldByteCount = verifyBlock(slot);
  unsigned char *oldBlock = slotBlock(slot);
  uint64_t oldKey = blockKey(oldBlock);
  size_t newByteCount = randomByteCount(&worker->random);
  unsigned char *block = allocateOrDie(realloc(oldBlock, newByteCount), "realloc returned NULL", newByteCount, 0);
  size_t keptByteCount = oldByteCount < newByteCount ? oldByteCount : newByteCount;
  // The first word of a block of 8 bytes or more is its size word, not pattern.
  size_t from = oldByteCount > tinyMask ? 8 : 0;
  if (keptByteCount > from) {
    size_t bad = firstMismatch(block, oldKey, from, keptByteCount);
    if (bad != keptByteCount) failBlock("realloc lost contents", block, newByteCount, bad);
  }
  if (from == 8) {
    uint64_t header = (uint64_t)oldByteCount ^ oldKey;
    size_t headerByteCount = keptByteCount < 8 ? keptByteCount : 8;
    if (memcmp(block, &header, headerByteCount) != 0)
      failBlock("realloc lost the size word", block, newByteCount, 0);
  }
  publish(worker, encodeBlock(block, newByteCount));
}

static void opAligned(Worker *worker) {
  size_t alignment = randomAlignment(&worker->random);
  size_t byteCount = randomByteCount(&worker->random);
  void *block = NULL;
  switch (randomBelow(&worker->random, 3)) {
  case 0: {
    int error = posix_memalign(&block, alignment, byteCount);
    if (error != 0) fail("posix_memalign failed", byteCount, alignment);
    break;
  }
  case 1:
    // aligned_alloc takes any size since C17 (DR 460); glibc accepts it too.
    block = aligned_alloc(alignment, byteCount);
    break;
  default:
    block = memalign(alignment, byteCount);
    break;
  }
  allocateOrDie(block, "aligned allocation returned NULL", byteCount, alignment);
  if (opaqueAddress(block) % alignment != 0) fail("aligned allocation is misaligned", byteCount, alignment);
  publish(worker, encodeBlock(block, byteCount));
}

static void opFree(Worker *worker) {
  size_t index = randomBelow(&worker->random, slotCount);
  verifyAndFree(atomic_exchange_explicit(&slots[index], 0, memory_order_acq_rel));
}

static void *runWorker(void *argument) {
  Worker *worker = argument;
  for (;;) {
    if (worker->opBudget != 0) {
      if (worker->opCount == worker->opBudget) break;
    } else if (worker->opCount % 256 == 0 && atomic_load_explicit(&stopRequested, memory_order_relaxed)) {
      break;
    }
    size_t choice = randomBelow(&worker->random, 100);
    if (choice < 55) opMalloc(worker);
    else if (choice < 65) opCalloc(worker);
    else if (choice < 80) opRealloc(worker);
    else if (choice < 90) opAligned(worker);
    else opFree(worker);
    worker->opCount++;
  }
  return NULL;
}

// ---- Command line and main

static void usage(FILE *stream) {
  fprintf(stream,
          "usage: swalloc-stress [--threads N] [--seconds S | --ops N] [--seed N] [--slots N]\n"
          "  --threads N  worker threads (default 4)\n"
          "  --seconds S  run for S seconds (default 10)\n"
          "  --ops N      run exactly N operations in total instead of a fixed time\n"
          "  --seed N     random seed (default 1)\n"
          "  --slots N    shared slots (default 4096)\n");
}

static unsigned long long parseNumber(const char *option, const char *text, unsigned long long maximum) {
  char *end = NULL;
  errno = 0;
  unsigned long long value = strtoull(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || text[0] == '-' || value > maximum) {
    fprintf(stderr, "swalloc-stress: invalid value for %s: '%s'\n", option, text);
    exit(2);
  }
  return value;
}

static double elapsedSeconds(const struct timespec *start) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (double)(now.tv_sec - start->tv_sec) + (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}

int main(int argc, char **argv) {
  size_t threadCount = 4;
  double seconds = 10;
  unsigned long long totalOps = 0;
  unsigned long long seed = 1;
  for (int i = 1; i < argc; i++) {
    const char *option = argv[i];
    if (strcmp(option, "--help") == 0 || strcmp(option, "-h") == 0) {
      usage(stdout);
      return 0;
    }
    if (i + 1 >= argc) {
      usage(stderr);
      return 2;
    }
    const char *value = argv[++i];
    if (strcmp(option, "--threads") == 0) {
      threadCount = (size_t)parseNumber(option, value, 1024);
    } else if (strcmp(option, "--seconds") == 0) {
      char *end = NULL;
      seconds = strtod(value, &end);
      if (end == value || *end != '\0' || !(seconds > 0) || seconds > 1e6) {
        fprintf(stderr, "swalloc-stress: invalid value for --seconds: '%s'\n", value);
        return 2;
      }
    } else if (strcmp(option, "--ops") == 0) {
      totalOps = parseNumber(option, value, UINT64_MAX);
    } else if (strcmp(option, "--seed") == 0) {
      seed = parseNumber(option, value, UINT64_MAX);
    } else if (strcmp(option, "--slots") == 0) {
      slotCount = (size_t)parseNumber(option, value, (size_t)1 << 24);
    } else {
      usage(stderr);
      return 2;
    }
  }
  if (threadCount == 0 || slotCount == 0) {
    fprintf(stderr, "swalloc-stress: --threads and --slots must be at least 1\n");
    return 2;
  }

  runSeed = mix64(seed);
  slots = calloc(slotCount, sizeof *slots);
  Worker *workers = calloc(threadCount, sizeof *workers);
  if (slots == NULL || workers == NULL) fail("cannot allocate the slot table", slotCount, 0);

  struct timespec start;
  clock_gettime(CLOCK_MONOTONIC, &start);
  for (size_t i = 0; i < threadCount; i++) {
    workers[i].random.state = mix64(seed * 0x100000001b3ull + i + 1);
    // Split --ops as evenly as possible; a worker with a budget of 0 would run until stopped, so give it 1.
    if (totalOps != 0) {
      uint64_t share = totalOps / threadCount + (i < totalOps % threadCount ? 1 : 0);
      workers[i].opBudget = share == 0 ? 1 : share;
    }
    int error = pthread_create(&workers[i].thread, NULL, runWorker, &workers[i]);
    if (error != 0) {
      fprintf(stderr, "swalloc-stress: error: pthread_create: %s\n", strerror(error));
      return 1;
    }
  }
  if (totalOps == 0) {
    struct timespec pause = {.tv_sec = 0, .tv_nsec = 10 * 1000 * 1000};
    while (elapsedSeconds(&start) < seconds) nanosleep(&pause, NULL);
    atomic_store(&stopRequested, true);
  }
  uint64_t opCount = 0;
  for (size_t i = 0; i < threadCount; i++) {
    pthread_join(workers[i].thread, NULL);
    opCount += workers[i].opCount;
  }
  double elapsed = elapsedSeconds(&start);

  // The blocks still in the slots were last written by any of the (now finished) workers.
  for (size_t i = 0; i < slotCount; i++) verifyAndFree(atomic_load(&slots[i]));
  free((void *)slots);
  free(workers);

  printf("swalloc-stress: %" PRIu64 " ops, %zu threads, %.1f s, ok\n", opCount, threadCount, elapsed);
  return 0;
}
