// swalloc_fuzz: a libFuzzer target that drives the C malloc family through its real symbols, so under
// LD_PRELOAD=libswalloc.so it fuzzes swalloc (and libFuzzer itself allocates through swalloc too).
// A shadow model of 64 slots checks contents, alignment, usable size, calloc zeroing and realloc copies.
// Build and run: Tests/Fuzz/run.sh (Tests/Fuzz/README.md).
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ---- Input format
//
// The input is a sequence of 4-byte operations: [op] [slot] [size high] [size low].
// op & 3 is the thread that runs it (0 is libFuzzer's thread, 1..3 are workers), op >> 2 picks the kind.
// Every operation of thread t runs on thread t's own pthread, one at a time: the run is deterministic,
// yet blocks move between real heaps (allocated on one thread, freed or reallocated on another).

enum {
  slotCount = 64,
  threadCount = 4,
  maximumByteCount = 4 << 20,
  minimumAlignment = 16,  // swalloc's guarantee for every size (LibC.minimumAlignment)
};

typedef enum {
  opMalloc,
  opCalloc,
  opRealloc,
  opPosixMemalign,
  opAlignedAlloc,
  opFree,
  opFreeRemote,  // free on a thread other than the one that allocated the block
  opCheck,       // malloc_usable_size and a full contents check
  opRespawn,     // the thread exits (its heap is abandoned or pooled) and a new one takes its place
  opCallocOverflow,
} OpKind;

// 64 entries, so op >> 2 indexes it directly: allocation and free dominate.
static const OpKind kindTable[64] = {
  opMalloc, opMalloc, opMalloc, opMalloc, opMalloc, opMalloc, opMalloc, opMalloc,
  opMalloc, opMalloc, opMalloc, opMalloc, opCalloc, opCalloc, opCalloc, opCalloc,
  opRealloc, opRealloc, opRealloc, opRealloc, opRealloc, opRealloc, opRealloc, opRealloc,
  opPosixMemalign, opPosixMemalign, opPosixMemalign, opPosixMemalign,
  opAlignedAlloc, opAlignedAlloc, opAlignedAlloc, opAlignedAlloc,
  opFree, opFree, opFree, opFree, opFree, opFree, opFree, opFree,
  opFree, opFree, opFree, opFree,
  opFreeRemote, opFreeRemote, opFreeRemote, opFreeRemote, opFreeRemote, opFreeRemote, opFreeRemote,
  opFreeRemote,
  opCheck, opCheck, opCheck, opCheck, opCheck, opCheck,
  opRespawn, opRespawn, opCallocOverflow, opMalloc, opMalloc, opFree,
};

// Size-class and mapping boundaries (SizeClass.swift), and their neighbours.
static const size_t boundaryByteCounts[] = {
  0, 1, 7, 8, 9, 15, 16, 17, 1023, 1024, 1025, 4095, 4096, 4097, 8191, 8192, 8193,
  65535, 65536, 65537, 524287, 524288, 524289, (1 << 21) - 1, 1 << 21, (1 << 21) + 1,
  maximumByteCount - 1, maximumByteCount,
};

/// A byte count in 0 ... 4 MiB from two input bytes, skewed small: 3/8 up to 256 bytes, 1/8 up to 1 KiB,
/// 1/8 up to 8 KiB, 1/8 up to 64 KiB, 1/8 up to 512 KiB, 1/16 boundaries, 1/16 up to 4 MiB.
static size_t decodeByteCount(uint8_t high, uint8_t low) {
  unsigned range = high >> 5;
  size_t v = ((size_t)(high & 0x1f) << 8) | low;  // 13 bits
  switch (range) {
  case 0: case 1: case 2: return v % 257;
  case 3: return v % 1025;
  case 4: return v % 8193;
  case 5: return (v << 3 | (v & 7)) % 65537;
  case 6: return (v << 6 | (v & 63)) % 524289;
  default:
    if (v & 1) return boundaryByteCounts[(v >> 1) % (sizeof boundaryByteCounts / sizeof boundaryByteCounts[0])];
    return ((v >> 1) << 10 | (v & 0x3ff)) % (maximumByteCount + 1);
  }
}

// ---- Shadow model

typedef struct {
  unsigned char *block;  // NULL: empty (or a live zero-byte block when `live` is set)
  size_t byteCount;      // requested
  size_t alignment;      // requested (16 for malloc, calloc and realloc)
  uint64_t key;          // contents pattern: mixes slot and generation
  int owner;             // the thread that allocated it
  int live;
} Slot;

static Slot slots[slotCount];
static uint64_t generation;

static uint64_t mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

static void fail(const char *what, int slot, const Slot *s, size_t offset) {
  fprintf(stderr, "swalloc_fuzz: %s: slot %d block %p byteCount %zu alignment %zu owner %d offset %zu\n", what,
          slot, (void *)(s ? s->block : NULL), s ? s->byteCount : 0, s ? s->alignment : 0, s ? s->owner : -1,
          offset);
  abort();
}

/// The pattern word for word index `w` of a block with `key`; byte i of the block is byte i % 8 of word i / 8.
static inline uint64_t patternWord(uint64_t key, size_t w) { return key ^ (w * 0x9e3779b97f4a7c15ull); }

static void fill(unsigned char *block, size_t byteCount, uint64_t key) {
  size_t words = byteCount / 8;
  for (size_t w = 0; w < words; w++) {
    uint64_t value = patternWord(key, w);
    memcpy(block + w * 8, &value, 8);
  }
  uint64_t last = patternWord(key, words);
  memcpy(block + words * 8, &last, byteCount % 8);
}

/// The offset of the first byte in [0, byteCount) that differs from the pattern, or SIZE_MAX.
static size_t firstMismatch(const unsigned char *block, size_t byteCount, uint64_t key) {
  size_t words = byteCount / 8;
  for (size_t w = 0; w < words; w++) {
    uint64_t value;
    memcpy(&value, block + w * 8, 8);
    if (value != patternWord(key, w)) {
      for (size_t i = w * 8;; i++) {
        uint64_t expected = patternWord(key, w);
        if (block[i] != ((unsigned char *)&expected)[i % 8]) return i;
      }
    }
  }
  uint64_t last = patternWord(key, words);
  for (size_t i = words * 8; i < byteCount; i++) {
    if (block[i] != ((unsigned char *)&last)[i % 8]) return i;
  }
  return SIZE_MAX;
}

static void verify(int slot, const char *when) {
  Slot *s = &slots[slot];
  if (!s->live || s->byteCount == 0) return;
  size_t offset = firstMismatch(s->block, s->byteCount, s->key);
  if (offset != SIZE_MAX) {
    char what[96];
    snprintf(what, sizeof what, "contents changed (checked %s)", when);
    fail(what, slot, s, offset);
  }
}

/// Checks a fresh block and records it in `slot` (which must be empty), then fills it.
static void adopt(int slot, unsigned char *block, size_t byteCount, size_t alignment, int thread) {
  Slot *s = &slots[slot];
  *s = (Slot){block, byteCount, alignment, mix64(++generation * slotCount + (uint64_t)slot), thread, 1};
  if ((uintptr_t)block % alignment != 0) fail("misaligned block", slot, s, (uintptr_t)block % alignment);
  size_t usable = malloc_usable_size(block);
  if (usable < byteCount) fail("malloc_usable_size below the requested size", slot, s, usable);
  // No two live blocks overlap (a block handed out twice, or a wrong size class).
  for (int other = 0; other < slotCount; other++) {
    const Slot *o = &slots[other];
    if (other == slot || !o->live || o->block == NULL) continue;
    size_t aEnd = (uintptr_t)block + (byteCount ? byteCount : 1);
    size_t bEnd = (uintptr_t)o->block + (o->byteCount ? o->byteCount : 1);
    if ((uintptr_t)block < bEnd && (uintptr_t)o->block < aEnd) fail("overlaps a live block", slot, s, other);
  }
  fill(block, byteCount, s->key);
}

static void release(int slot) {
  Slot *s = &slots[slot];
  if (!s->live) return;
  verify(slot, "before free");
  free(s->block);
  *s = (Slot){0};
}

// ---- Operations

typedef struct {
  OpKind kind;
  int slot;
  int thread;  // the thread this runs on
  size_t byteCount;
  size_t alignment;
  size_t callocCount;
} Operation;

static void execute(const Operation *op) {
  int slot = op->slot;
  Slot *s = &slots[slot];
  switch (op->kind) {
  case opMalloc: {
    release(slot);
    unsigned char *block = malloc(op->byteCount);
    if (block == NULL) {
      if (op->byteCount == 0) return;
      fail("malloc returned NULL", slot, s, op->byteCount);
    }
    adopt(slot, block, op->byteCount, minimumAlignment, op->thread);
    break;
  }
  case opCalloc: {
    release(slot);
    size_t count = op->callocCount, each = op->byteCount / count, total = count * each;
    unsigned char *block = calloc(count, each);
    if (block == NULL) {
      if (total == 0) return;
      fail("calloc returned NULL", slot, s, total);
    }
    for (size_t i = 0; i < total; i++) {
      if (block[i] != 0) {
        Slot probe = {block, total, minimumAlignment, 0, op->thread, 1};
        fail("calloc block not zeroed", slot, &probe, i);
      }
    }
    adopt(slot, block, total, minimumAlignment, op->thread);
    break;
  }
  case opRealloc: {
    if (s->live) verify(slot, "before realloc");
    Slot old = *s;
    errno = 0;
    unsigned char *block = realloc(old.live ? old.block : NULL, op->byteCount);
    if (block == NULL) {
      // glibc: realloc(p, 0) frees p and returns NULL; realloc(NULL, 0) may return NULL.
      if (op->byteCount == 0) {
        *s = (Slot){0};
        return;
      }
      fail("realloc returned NULL", slot, s, op->byteCount);
    }
    *s = (Slot){0};
    if (old.live) {
      // The prefix moved or stayed, unchanged: check it against the old key before the new fill.
      size_t kept = old.byteCount < op->byteCount ? old.byteCount : op->byteCount;
      size_t offset = firstMismatch(block, kept, old.key);
      if (offset != SIZE_MAX) {
        Slot moved = {block, op->byteCount, minimumAlignment, old.key, op->thread, 1};
        fail("realloc lost the prefix", slot, &moved, offset);
      }
    }
    adopt(slot, block, op->byteCount, minimumAlignment, op->thread);
    break;
  }
  case opPosixMemalign: {
    release(slot);
    void *block = NULL;
    int result = posix_memalign(&block, op->alignment, op->byteCount);
    if (result != 0) {
      Slot probe = {NULL, op->byteCount, op->alignment, 0, op->thread, 0};
      fail("posix_memalign failed", slot, &probe, (size_t)result);
    }
    if (block == NULL) {
      if (op->byteCount == 0) return;
      fail("posix_memalign returned 0 and NULL", slot, s, op->byteCount);
    }
    adopt(slot, block, op->byteCount, op->alignment, op->thread);
    break;
  }
  case opAlignedAlloc: {
    release(slot);
    // Any size is accepted (C17 DR 460; glibc 2.38 and later), not only multiples of the alignment.
    unsigned char *block = aligned_alloc(op->alignment, op->byteCount);
    if (block == NULL) {
      if (op->byteCount == 0) return;
      Slot probe = {NULL, op->byteCount, op->alignment, 0, op->thread, 0};
      fail("aligned_alloc returned NULL", slot, &probe, (size_t)errno);
    }
    adopt(slot, block, op->byteCount, op->alignment, op->thread);
    break;
  }
  case opFree:
  case opFreeRemote:
    release(slot);
    break;
  case opCheck:
    if (!s->live) {
      if (malloc_usable_size(NULL) != 0) fail("malloc_usable_size(NULL) is not 0", slot, s, 0);
      return;
    }
    verify(slot, "by malloc_usable_size");
    if (malloc_usable_size(s->block) < s->byteCount) fail("usable size shrank", slot, s, 0);
    break;
  case opCallocOverflow: {
    errno = 0;
    void *block = calloc(SIZE_MAX / 2 + 2, 2 + (size_t)slot);
    if (block != NULL || errno != ENOMEM) fail("calloc overflow not refused with ENOMEM", slot, s, (size_t)errno);
    break;
  }
  case opRespawn:
    break;  // handled by the dispatcher: it has to happen outside the worker
  }
}

// ---- Workers: thread t > 0 runs its operations on its own pthread, one at a time

typedef struct {
  pthread_t thread;
  pthread_mutex_t lock;
  pthread_cond_t changed;
  const Operation *pending;  // set by the dispatcher, cleared by the worker when done
  int quit;
} Worker;

static Worker workers[threadCount];

static void *workerMain(void *argument) {
  Worker *w = argument;
  pthread_mutex_lock(&w->lock);
  for (;;) {
    while (w->pending == NULL && !w->quit) pthread_cond_wait(&w->changed, &w->lock);
    if (w->pending == NULL) break;
    pthread_mutex_unlock(&w->lock);
    execute(w->pending);
    pthread_mutex_lock(&w->lock);
    w->pending = NULL;
    pthread_cond_broadcast(&w->changed);
  }
  pthread_mutex_unlock(&w->lock);
  return NULL;
}

static void startWorker(int t) {
  Worker *w = &workers[t];
  w->pending = NULL;
  w->quit = 0;
  if (pthread_create(&w->thread, NULL, workerMain, w) != 0) {
    fprintf(stderr, "swalloc_fuzz: pthread_create failed\n");
    abort();
  }
}

static void stopWorker(int t) {
  Worker *w = &workers[t];
  pthread_mutex_lock(&w->lock);
  w->quit = 1;
  pthread_cond_broadcast(&w->changed);
  pthread_mutex_unlock(&w->lock);
  pthread_join(w->thread, NULL);
}

static void runOn(int t, const Operation *op) {
  if (t == 0) {
    execute(op);
    return;
  }
  Worker *w = &workers[t];
  pthread_mutex_lock(&w->lock);
  w->pending = op;
  pthread_cond_broadcast(&w->changed);
  while (w->pending != NULL) pthread_cond_wait(&w->changed, &w->lock);
  pthread_mutex_unlock(&w->lock);
}

// ---- libFuzzer entry points

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  // A preload file that is missing is silently ignored by the loader: prove swalloc is the malloc in use.
  const char *allowOther = getenv("SWALLOC_FUZZ_ANY_MALLOC");
  if (dlsym(RTLD_DEFAULT, "swalloc_malloc") == NULL && !(allowOther && *allowOther == '1')) {
    fprintf(stderr, "swalloc_fuzz: swalloc is not loaded (run with LD_PRELOAD=.../libswalloc.so, or set "
                    "SWALLOC_FUZZ_ANY_MALLOC=1 to fuzz the default malloc)\n");
    exit(2);
  }
  for (int t = 1; t < threadCount; t++) {
    pthread_mutex_init(&workers[t].lock, NULL);
    pthread_cond_init(&workers[t].changed, NULL);
    startWorker(t);
  }
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t byteCount) {
  for (size_t at = 0; at + 4 <= byteCount; at += 4) {
    Operation op = {0};
    op.kind = kindTable[data[at] >> 2];
    op.thread = data[at] & 3;
    op.slot = data[at + 1] % slotCount;
    op.byteCount = decodeByteCount(data[at + 2], data[at + 3]);
    op.alignment = (size_t)minimumAlignment << ((data[at + 1] >> 6) * 4 + (data[at + 3] & 3)) % 13;  // 16 ... 64 KiB
    op.callocCount = 1 + (data[at + 3] >> 5);
    Slot *s = &slots[op.slot];
    if (op.kind == opFreeRemote) {
      // Another thread than the owner, chosen by the input.
      op.thread = (s->owner + 1 + (data[at] & 3) % (threadCount - 1)) % threadCount;
    }
    if (op.kind == opRespawn) {
      if (op.thread != 0) {
        stopWorker(op.thread);
        startWorker(op.thread);
      }
      continue;
    }
    runOn(op.thread, &op);
  }
  // Leave nothing behind for the next input: free each live block from a thread chosen by its slot.
  for (int slot = 0; slot < slotCount; slot++) {
    if (!slots[slot].live) continue;
    Operation op = {.kind = opFree, .slot = slot, .thread = slot % threadCount};
    runOn(op.thread, &op);
  }
  return 0;
}
