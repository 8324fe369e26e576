// probes: heap-misuse probes modelled on the test programs of GrapheneOS hardened_malloc (test/ and the older
// test/simple-memory-corruption/ in its repository), written here from what each one does, under the same names.
// `probes NAME` runs one probe; `probes --list` prints "NAME EXPECTED SOURCE" for every probe; `probes --expect
// NAME` prints the exact standard output a "value" probe must produce.
//
// EXPECTED is what hardened_malloc's test suite (test/test_smc.py) requires of the probe:
//   caught  the allocator must stop the program (SIGABRT from a detected error, or SIGSEGV from a guard page)
//   valid   the program must run to exit status 0
//   value   it must exit 0 and print exactly what `probes --expect NAME` prints (hardened_malloc's zeroing on
//           free, zeroed fresh memory and the zero first byte of its canary are what these check)
//   info    the probe exists but hardened_malloc's suite has its check commented out (the memcpy/memset family
//           overflows need its optional libc wrappers): shown, not counted
// SOURCE is "suite" when a stored test_smc.py states the expectation, "inferred" when the probe is newer than
// every stored test_smc.py and the expectation is read from the probe itself (its return codes and comments).
//
// Not included: malloc_object_size, malloc_object_size_offset, malloc_object_size_zero,
// invalid_malloc_object_size_small, invalid_malloc_object_size_small_quarantine,
// invalid_malloc_object_size_small_canary and quarantine_invalid_malloc_object_size_extended test
// malloc_object_size, an API only hardened_malloc has; mallinfo, mallinfo2, malloc_info and offset print
// statistics and check no misuse. The C++ probes are in probes_cxx.cpp.
//
// Build at -O0 so that the compiler keeps every bad access: cc -O0 -g -o probes probes.c -ldl -lpthread
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <wchar.h>

#pragma GCC diagnostic ignored "-Wfree-nonheap-object"
#pragma GCC diagnostic ignored "-Wuse-after-free"
#pragma GCC diagnostic ignored "-Walloc-size-larger-than="
#pragma GCC diagnostic ignored "-Wstringop-overflow"
#pragma GCC diagnostic ignored "-Wstringop-overread"
#pragma GCC diagnostic ignored "-Warray-bounds"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#define KiB ((size_t)1024)
#define MiB (1024 * KiB)
// hardened_malloc's "large" probes use 256 KiB, above its largest slab size class (128 KiB).
#define LARGE (256 * KiB)
#define SKIP 77  // exit status: the allocator does not export a function the probe needs

// C23's sized frees are missing from glibc 2.36: take them from whichever library provides them, if any.
static void call_free_sized(void *p, size_t size) {
  void (*fn)(void *, size_t) = (void (*)(void *, size_t))dlsym(RTLD_DEFAULT, "free_sized");
  if (fn == NULL) exit(SKIP);
  fn(p, size);
}

static void call_free_aligned_sized(void *p, size_t alignment, size_t size) {
  void (*fn)(void *, size_t, size_t) = (void (*)(void *, size_t, size_t))dlsym(RTLD_DEFAULT, "free_aligned_sized");
  if (fn == NULL) exit(SKIP);
  fn(p, alignment, size);
}

// ---- double frees

static int double_free_small(void) {
  void *p = malloc(16);
  if (p == NULL) return 1;
  free(p);
  free(p);
  return 0;
}

static int double_free_small_delayed(void) {
  void *p = malloc(16), *q = malloc(16);
  if (p == NULL || q == NULL) return 1;
  free(p);
  free(q);  // another free between the two frees of p
  free(p);
  return 0;
}

static int double_free_large(void) {
  void *p = malloc(LARGE);
  if (p == NULL) return 1;
  free(p);
  free(p);
  return 0;
}

static int double_free_large_delayed(void) {
  void *p = malloc(LARGE), *q = malloc(LARGE);
  if (p == NULL || q == NULL) return 1;
  free(p);
  free(q);
  free(p);
  return 0;
}

static int quarantine_double_free_extended(void) {
  void *p = malloc(32 * KiB);  // a size of hardened_malloc's extended size classes
  if (p == NULL) return 1;
  free(p);
  free(p);
  return 0;
}

static int quarantine_double_free_extended_delayed(void) {
  void *first = malloc(64 * KiB);
  if (first == NULL) return 1;
  void *more[100];
  for (int i = 0; i < 100; i++) {
    more[i] = malloc(64 * KiB);
    if (more[i] == NULL) return 1;
  }
  free(first);
  for (int i = 0; i < 100; i++) free(more[i]);  // pushes the first block out of any short quarantine
  free(first);
  return 0;
}

static int realloc_c23_undefined_behaviour_double_free(void) {
  char *p = malloc(16);
  if (p == NULL) return 1;
  char *q = realloc(p, 0);  // glibc: frees p, returns NULL; hardened_malloc: frees p, returns a 0-byte block
  (void)q;
  free(p);
  return 0;
}

// ---- invalid frees

static int unaligned_free_small(void) {
  char *p = malloc(16);
  if (p == NULL) return 1;
  free(p + 1);
  return 0;
}

static int unaligned_free_large(void) {
  char *p = malloc(LARGE);
  if (p == NULL) return 1;
  free(p + 1);
  return 0;
}

static int invalid_free_small_region(void) {
  char *p = malloc(16);
  if (p == NULL) return 1;
  free(p + 16 * KiB);  // 4 pages further: most likely inside the same small-object region
  return 0;
}

static int invalid_free_small_region_far(void) {
  char *p = malloc(16);
  if (p == NULL) return 1;
  free(p + 1024 * MiB);  // 1 GiB further: memory the allocator reserved but never handed out (hardened_malloc)
  return 0;
}

static int invalid_free_protected(void) {
  free(malloc(16));  // the allocator is initialized
  char *map = mmap(NULL, 16 * 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (map == MAP_FAILED) return 1;
  free(map + 8 * 4096);  // a pointer into an inaccessible mapping the allocator does not own
  return 0;
}

static int invalid_free_unprotected(void) {
  free(malloc(16));
  char *map = mmap(NULL, 16 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (map == MAP_FAILED) return 1;
  free(map + 8 * 4096);  // a pointer into a readable mapping the allocator does not own
  return 0;
}

static int uninitialized_free(void) {
  free((void *)1);
  return 0;
}

static int uninitialized_realloc(void) {
  void *p = realloc((void *)1, 16);
  return p == NULL;
}

static int invalid_free_aligned_sized_small(void) {
  void *p = malloc(16);
  if (p == NULL) return 1;
  call_free_aligned_sized(p, 3, 16);  // 3 is no power of two
  return 0;
}

// ---- malloc_usable_size of what is no live block

static int invalid_malloc_usable_size_small(void) {
  char *p = malloc(16);
  if (p == NULL) return 1;
  malloc_usable_size(p + 16 * KiB);
  return 0;
}

// The newer name of the same probe in hardened_malloc's test/ (the old one lives in simple-memory-corruption/).
static int invalid_malloc_usable_size_small_unused(void) { return invalid_malloc_usable_size_small(); }

static int invalid_malloc_usable_size_small_quarantine(void) {
  void *p = malloc(16);
  if (p == NULL) return 1;
  free(p);
  malloc_usable_size(p);
  return 0;
}

static int quarantine_invalid_malloc_usable_size_extended(void) {
  void *p = malloc(32 * KiB);
  if (p == NULL) return 1;
  free(p);
  malloc_usable_size(p);
  return 0;
}

static int unaligned_malloc_usable_size_small(void) {
  char *p = malloc(16);
  if (p == NULL) return 1;
  malloc_usable_size(p + 1);
  return 0;
}

static int uninitialized_malloc_usable_size(void) {
  malloc_usable_size((void *)1);
  return 0;
}

// ---- overflows

static int overflow_small_1_byte(void) {
  char *p = malloc(8);
  if (p == NULL) return 1;
  p[malloc_usable_size(p)] = 1;  // the first byte past what the allocator says is usable
  free(p);
  return 0;
}

static int overflow_small_8_byte(void) {
  char *p = malloc(8);
  if (p == NULL) return 1;
  p[malloc_usable_size(p) + 7] ^= 1;  // the 8th byte past the usable size, changed whatever it held
  free(p);
  return 0;
}

static int overflow_large_1_byte(void) {
  char *p = malloc(LARGE);
  if (p == NULL) return 1;
  p[malloc_usable_size(p)] = 0;
  free(p);
  return 0;
}

static int overflow_large_8_byte(void) {
  char *p = malloc(LARGE);
  if (p == NULL) return 1;
  p[malloc_usable_size(p) + 7] = 0;
  free(p);
  return 0;
}

static int overflow_large_aligned(void) {
  void *p = NULL;
  if (posix_memalign(&p, 64 * KiB, LARGE) != 0) return 1;
  ((char *)p)[malloc_usable_size(p)] = 0;
  free(p);
  return 0;
}

static int overflow_realloc_shrink_large(void) {
  char *p = malloc(4 * MiB);
  if (p == NULL) return 1;
  memset(p, 'a', 4 * MiB);
  char *q = realloc(p, 1 * MiB);
  if (q == NULL) return 1;
  q[malloc_usable_size(q)] = 0;  // past the end of the shrunk block
  free(q);
  return 0;
}

static int read_after_realloc_shrink_large(void) {
  char *p = malloc(4 * MiB);
  if (p == NULL) return 1;
  memset(p, 'a', 4 * MiB);
  if (realloc(p, 1 * MiB) == NULL) return 1;
  // hardened_malloc: the tail cut off by the shrink is guarded or quarantined, so this read faults
  return p[2 * MiB] == 'a' ? 0 : 1;
}

static int string_overflow(void) {
  char *p = malloc(16);
  if (p == NULL) return 1;
  size_t size = malloc_usable_size(p);
  memset(p, 'a', size);  // no terminating zero inside the block
  printf("overflow by %zu bytes\n", strlen(p) - size);
  return 0;
}

// ---- uses after free

static int read_after_free_small(void) {
  char *p = malloc(16);
  if (p == NULL) return 1;
  memset(p, 'a', 16);
  free(p);
  for (size_t i = 0; i < 16; i++) {
    printf("%x\n", p[i]);
    if (p[i] != 0) return 1;
  }
  return 0;
}

static int read_after_free_large(void) {
  char *p = malloc(LARGE);
  if (p == NULL) return 1;
  memset(p, 'a', 16);
  free(p);
  for (size_t i = 0; i < LARGE; i++) {
    printf("%x\n", p[i]);
    if (p[i] != 0) return 1;
  }
  return 0;
}

static int write_after_free_small(void) {
  char *p = malloc(128);
  if (p == NULL) return 1;
  free(p);
  p[65] = 'a';
  for (int i = 0; i < 100000; i++) free(malloc(128));  // hand the freed block out again
  return 0;
}

static int write_after_free_small_reuse(void) {
  char *p = malloc(128);
  if (p == NULL) return 1;
  free(p);
  volatile char *q = malloc(128);  // may be the same block
  (void)q;
  p[65] = 'a';
  for (int i = 0; i < 100000; i++) free(malloc(128));
  return 0;
}

static int write_after_free_large(void) {
  char *p = malloc(LARGE);
  if (p == NULL) return 1;
  free(p);
  p[64 * KiB + 1] = 'a';
  return 0;
}

static int write_after_free_large_reuse(void) {
  char *p = malloc(LARGE);
  if (p == NULL) return 1;
  free(p);
  volatile char *q = malloc(LARGE);
  (void)q;
  p[64 * KiB + 1] = 'a';
  return 0;
}

static int quarantine_write_after_free_extended_reuse(void) {
  char *p = malloc(32 * KiB);
  if (p == NULL) return 1;
  free(p);
  p[100] = 'a';
  for (int i = 0; i < 10000; i++) free(malloc(32 * KiB));
  return 0;
}

static int realloc_c23_undefined_behaviour_use_after_free(void) {
  char *p = malloc(LARGE);
  if (p == NULL) return 1;
  char *q = realloc(p, 0);
  printf("%c\n", *p);  // p was freed by realloc
  free(q);
  return 0;
}

// ---- zero-size blocks

static int read_zero_size(void) {
  char *p = malloc(0);
  if (p == NULL) return 1;
  printf("%c\n", *p);
  return 0;
}

static int write_zero_size(void) {
  char *p = malloc(0);
  if (p == NULL) return 1;
  *p = 5;
  return 0;
}

// ---- valid programs (must run to exit 0)

static int uninitialized_read_small(void) {
  char *p = malloc(8);
  for (int i = 0; i < 8; i++)
    if (p[i] != 0) return 1;  // hardened_malloc hands out zeroed memory
  free(p);
  return 0;
}

static int uninitialized_read_large(void) {
  char *p = malloc(LARGE);
  for (size_t i = 0; i < LARGE; i++)
    if (p[i] != 0) return 1;
  free(p);
  return 0;
}

static int calloc_zeroed(void) {
  unsigned char *p = calloc(128, 16);
  if (p == NULL) return 1;
  for (size_t i = 0; i < 128 * 16; i++)
    if (p[i] != 0) return 1;
  free(p);
  return 0;
}

static int calloc_overflow(void) {
  errno = 0;
  void *p = calloc(SIZE_MAX, 2);
  return !(p == NULL && errno == ENOMEM);
}

static int reallocarray_overflow(void) {
  errno = 0;
  void *p = reallocarray(NULL, SIZE_MAX / 2 + 2, 2);  // the product wraps to 2
  return !(p == NULL && errno == ENOMEM);
}

static int impossibly_large_malloc(void) {
  volatile size_t size = (size_t)-8;
  return malloc(size) != NULL;
}

static int impossibly_large_realloc(void) {
  size_t size = 40 * MiB;
  char *p = malloc(size);
  if (p == NULL) return 1;
  memset(p, 'a', size);
  errno = 0;
  volatile size_t huge = SIZE_MAX / 2;
  char *q = realloc(p, huge);
  if (q != NULL || errno != ENOMEM || p[0] != 'a' || p[size - 1] != 'a') return 1;  // p must be intact
  free(p);
  return 0;
}

static int realloc_split_mapping_large(void) {
  size_t size = 40 * MiB;
  char *p = malloc(size);
  if (p == NULL) return 1;
  memset(p, 'a', size);
  if (mprotect(p + size / 2, 4096, PROT_READ) != 0) return 1;  // splits the block's mapping in two
  uintptr_t old = (uintptr_t)p;
  char *q = realloc(p, 2 * size);
  if (q == NULL) return 1;
  for (size_t i = 0; i < size; i += 4096)
    if (q[i] != 'a' || q[i + 4095] != 'a') return 1;
  // hardened_malloc's own check: the old mapping is gone (an allocator that caches it fails here, exit 1)
  unsigned char vec;
  if (mincore((void *)old, 4096, &vec) != -1 || errno != ENOMEM) return 1;
  free(q);
  return 0;
}

static void *realloc_init_thread(void *arg) {
  void *p = realloc(arg, 1024);  // a block of the main thread, reallocated by another
  if (p == NULL) exit(EXIT_FAILURE);
  free(p);
  return NULL;
}

static int realloc_init(void) {
  void *p = realloc(NULL, 12);
  if (p == NULL) return 1;
  pthread_t thread;
  if (pthread_create(&thread, NULL, realloc_init_thread, p) != 0) return 1;
  return pthread_join(thread, NULL) != 0;
}

static int realloc_c23_undefined_behaviour(void) {
  char *p = malloc(16);
  if (p == NULL) return 1;
  char *q = realloc(p, 0);
  free(q);  // NULL (glibc) or the 0-byte block (hardened_malloc): both may be freed
  return 0;
}

static int large_array_growth(void) {
  void *p = NULL;
  size_t size = LARGE;
  for (int i = 0; i < 20; i++) {
    p = realloc(p, size);
    if (p == NULL) return 1;
    memset(p, 'a', size);
    size = size * 3 / 2;
  }
  return 0;
}

static int malloc_zero_different(void) {
  char *p = malloc(0), *q = malloc(0);
  return p == q;
}

static int malloc_noreuse(void) {
  char *zero = malloc(0);
  for (int i = 0; i < 512; i++) {
    char *p = malloc(64);
    if (p == zero) return 1;  // a malloc(0) block still live must never be handed out again
    free(p);
  }
  return 0;
}

static int free_sized_small(void) {
  char *p = malloc(100);
  if (p == NULL) return 1;
  memset(p, 'a', 100);
  call_free_sized(p, 100);
  return 0;
}

static int free_sized_large(void) {
  char *p = malloc(1 * MiB);
  if (p == NULL) return 1;
  memset(p, 'a', 1 * MiB);
  call_free_sized(p, 1 * MiB);
  return 0;
}

static int aligned_sized_delete_small_min_align(void) {
  void *p = NULL;
  if (posix_memalign(&p, 16, 0) != 0) return 1;
  call_free_aligned_sized(p, 16, 0);
  return 0;
}

static int aligned_alloc_einval(void) {
  errno = 0;
  volatile size_t alignment = 17;  // no power of two
  void *p = aligned_alloc(alignment, 100);
  return !(p == NULL && errno == EINVAL);
}

static int aligned_alloc_zero_size(void) {
  size_t alignment = 8192;
  void *p = aligned_alloc(alignment, 0);
  if (p == NULL || (uintptr_t)p % alignment != 0) return 1;
  call_free_aligned_sized(p, alignment, 0);
  void *q = NULL;
  if (posix_memalign(&q, alignment, 0) != 0 || q == NULL || (uintptr_t)q % alignment != 0) return 1;
  free(q);
  return 0;
}

static int posix_memalign_einval(void) {
  void *p = (void *)1;
  if (posix_memalign(&p, 17, 100) != EINVAL) return 1;
  return p != (void *)1;  // left as it was
}

static int pvalloc_probe(void) {
  void *p = pvalloc(0);
  if (p == NULL) return 1;
  free(p);
  void *q = pvalloc(100);
  if (q == NULL) return 1;
  free(q);
  return 0;
}

static int canary_leak(void) {
  // hardened_malloc's canary starts with a zero byte, so a string copy of the 8 bytes after an 8-byte block
  // stops at once and does not leak what memcpy sees there.
  char as_string[8] = {0}, as_bytes[8] = {0};
  char *p = malloc(8);
  if (p == NULL) return 1;
  strncpy(as_string, p + 8, 8);
  memcpy(as_bytes, p + 8, 8);
  int same = memcmp(as_string, as_bytes, 8) == 0;
  free(p);
  return same;
}

// ---- memcpy and friends between heap blocks (hardened_malloc can check their sizes in its libc wrappers)

#define MEMOP_VALID(NAME, STMT_SAME, STMT_MISMATCHED)                   \
  static int NAME##_valid_same(void) {                                \
    char *dst = malloc(16), *src = malloc(16);                        \
    if (dst == NULL || src == NULL) return 1;                         \
    memset(src, 'a', 16);                                             \
    size_t n = 16;                                                    \
    STMT_SAME;                                                        \
    return 0;                                                         \
  }                                                                   \
  static int NAME##_valid_mismatched(void) {                          \
    char *dst = malloc(32), *src = malloc(16);                        \
    if (dst == NULL || src == NULL) return 1;                         \
    memset(src, 'a', 16);                                             \
    size_t n = 16;                                                    \
    STMT_MISMATCHED;                                                  \
    return 0;                                                         \
  }

#define MEMOP_OVERFLOW(NAME, STMT)                                      \
  static int NAME##_buffer_overflow(void) { /* writes 32 bytes into a 16-byte block */ \
    char *dst = malloc(16), *src = malloc(32);                        \
    if (dst == NULL || src == NULL) return 1;                         \
    memset(src, 'a', 32);                                             \
    size_t n = 32;                                                    \
    STMT;                                                             \
    return 1;                                                         \
  }                                                                   \
  static int NAME##_read_overflow(void) { /* reads 32 bytes from a 16-byte block */ \
    char *dst = malloc(32), *src = malloc(16);                        \
    if (dst == NULL || src == NULL) return 1;                         \
    memset(src, 'a', 16);                                             \
    size_t n = 32;                                                    \
    STMT;                                                             \
    return 1;                                                         \
  }

#define WN (n / sizeof(wchar_t))
MEMOP_VALID(memcpy, memcpy(dst, src, n), memcpy(dst, src, n))
MEMOP_VALID(memmove, memmove(dst, src, n), memmove(dst, src, n))
MEMOP_VALID(memccpy, memccpy(dst, src, 'b', n), memccpy(dst, src, 'b', n))
MEMOP_VALID(memset, memset(dst, 'b', n), memset(dst, 'b', n))
MEMOP_VALID(wmemcpy, wmemcpy((wchar_t *)dst, (wchar_t *)src, WN), wmemcpy((wchar_t *)dst, (wchar_t *)src, WN))
MEMOP_VALID(wmemmove, wmemmove((wchar_t *)dst, (wchar_t *)src, WN), wmemmove((wchar_t *)dst, (wchar_t *)src, WN))
MEMOP_VALID(wmemset, wmemset((wchar_t *)dst, L'b', WN), wmemset((wchar_t *)dst, L'b', WN))
MEMOP_OVERFLOW(memcpy, memcpy(dst, src, n))
MEMOP_OVERFLOW(memmove, memmove(dst, src, n))
MEMOP_OVERFLOW(memccpy, memccpy(dst, src, 'b', n))
MEMOP_OVERFLOW(wmemcpy, wmemcpy((wchar_t *)dst, (wchar_t *)src, WN))
MEMOP_OVERFLOW(wmemmove, wmemmove((wchar_t *)dst, (wchar_t *)src, WN))

static int memset_buffer_overflow(void) {
  char *dst = malloc(16);
  if (dst == NULL) return 1;
  memset(dst, 'a', 32);
  return 1;
}

static int wmemset_buffer_overflow(void) {
  char *dst = malloc(16);
  if (dst == NULL) return 1;
  wmemset((wchar_t *)dst, L'a', 32 / sizeof(wchar_t));
  return 1;
}

// ---- the table

typedef struct {
  const char *name;
  int (*run)(void);
  const char *expected;  // caught, valid, value, info
  const char *source;    // suite, inferred
  const char *output;    // for value probes: the exact standard output
} Probe;

#define P(NAME, EXPECTED, SOURCE) {#NAME, NAME, EXPECTED, SOURCE, NULL}
static const Probe probes[] = {
  P(double_free_small, "caught", "suite"),
  P(double_free_small_delayed, "caught", "suite"),
  P(double_free_large, "caught", "suite"),
  P(double_free_large_delayed, "caught", "suite"),
  P(quarantine_double_free_extended, "caught", "suite"),
  P(quarantine_double_free_extended_delayed, "caught", "suite"),
  P(realloc_c23_undefined_behaviour_double_free, "caught", "inferred"),
  P(unaligned_free_small, "caught", "suite"),
  P(unaligned_free_large, "caught", "suite"),
  P(invalid_free_small_region, "caught", "suite"),
  P(invalid_free_small_region_far, "caught", "suite"),
  P(invalid_free_protected, "caught", "suite"),
  P(invalid_free_unprotected, "caught", "suite"),
  P(uninitialized_free, "caught", "suite"),
  P(uninitialized_realloc, "caught", "suite"),
  P(invalid_free_aligned_sized_small, "caught", "inferred"),
  P(invalid_malloc_usable_size_small, "caught", "suite"),
  P(invalid_malloc_usable_size_small_unused, "caught", "inferred"),
  P(invalid_malloc_usable_size_small_quarantine, "caught", "suite"),
  P(quarantine_invalid_malloc_usable_size_extended, "caught", "suite"),
  P(unaligned_malloc_usable_size_small, "caught", "suite"),
  P(uninitialized_malloc_usable_size, "caught", "suite"),
  P(overflow_small_1_byte, "caught", "suite"),
  P(overflow_small_8_byte, "caught", "suite"),
  P(overflow_large_1_byte, "caught", "suite"),
  P(overflow_large_8_byte, "caught", "suite"),
  P(overflow_large_aligned, "caught", "inferred"),
  P(overflow_realloc_shrink_large, "caught", "inferred"),
  P(read_after_realloc_shrink_large, "caught", "inferred"),
  P(read_after_free_large, "caught", "suite"),
  P(write_after_free_small, "caught", "suite"),
  P(write_after_free_small_reuse, "caught", "suite"),
  P(write_after_free_large, "caught", "suite"),
  P(write_after_free_large_reuse, "caught", "suite"),
  P(quarantine_write_after_free_extended_reuse, "caught", "suite"),
  P(realloc_c23_undefined_behaviour_use_after_free, "caught", "inferred"),
  P(read_zero_size, "caught", "suite"),
  P(write_zero_size, "caught", "suite"),
  {"read_after_free_small", read_after_free_small, "value", "suite", "0\n0\n0\n0\n0\n0\n0\n0\n0\n0\n0\n0\n0\n0\n0\n0\n"},
  {"string_overflow", string_overflow, "value", "suite", "overflow by 0 bytes\n"},
  P(canary_leak, "valid", "inferred"),
  P(uninitialized_read_small, "valid", "suite"),
  P(uninitialized_read_large, "valid", "suite"),
  P(calloc_zeroed, "valid", "inferred"),
  P(calloc_overflow, "valid", "inferred"),
  P(reallocarray_overflow, "valid", "inferred"),
  P(impossibly_large_malloc, "valid", "suite"),
  P(impossibly_large_realloc, "valid", "inferred"),
  P(realloc_split_mapping_large, "valid", "inferred"),
  P(realloc_init, "valid", "suite"),
  P(realloc_c23_undefined_behaviour, "valid", "inferred"),
  P(large_array_growth, "valid", "suite"),
  P(malloc_zero_different, "valid", "suite"),
  P(malloc_noreuse, "valid", "suite"),
  P(free_sized_small, "valid", "inferred"),
  P(free_sized_large, "valid", "inferred"),
  P(aligned_sized_delete_small_min_align, "valid", "suite"),
  P(aligned_alloc_einval, "valid", "inferred"),
  P(aligned_alloc_zero_size, "valid", "inferred"),
  P(posix_memalign_einval, "valid", "inferred"),
  {"pvalloc", pvalloc_probe, "valid", "inferred", NULL},
  P(memcpy_valid_same, "valid", "suite"),
  P(memcpy_valid_mismatched, "valid", "suite"),
  P(memmove_valid_same, "valid", "suite"),
  P(memmove_valid_mismatched, "valid", "suite"),
  P(memccpy_valid_same, "valid", "suite"),
  P(memccpy_valid_mismatched, "valid", "suite"),
  P(memset_valid_same, "valid", "suite"),
  P(memset_valid_mismatched, "valid", "suite"),
  P(wmemcpy_valid_same, "valid", "suite"),
  P(wmemcpy_valid_mismatched, "valid", "suite"),
  P(wmemmove_valid_same, "valid", "suite"),
  P(wmemmove_valid_mismatched, "valid", "suite"),
  P(wmemset_valid_same, "valid", "suite"),
  P(wmemset_valid_mismatched, "valid", "suite"),
  P(memcpy_buffer_overflow, "info", "suite"),
  P(memcpy_read_overflow, "info", "suite"),
  P(memmove_buffer_overflow, "info", "suite"),
  P(memmove_read_overflow, "info", "suite"),
  P(memccpy_buffer_overflow, "info", "suite"),
  P(memccpy_read_overflow, "info", "suite"),
  P(memset_buffer_overflow, "info", "suite"),
  P(wmemcpy_buffer_overflow, "info", "suite"),
  P(wmemcpy_read_overflow, "info", "suite"),
  P(wmemmove_buffer_overflow, "info", "suite"),
  P(wmemmove_read_overflow, "info", "suite"),
  P(wmemset_buffer_overflow, "info", "suite"),
};
#define COUNT (sizeof(probes) / sizeof(probes[0]))

int main(int argc, char **argv) {
  if (argc == 2 && strcmp(argv[1], "--list") == 0) {
    for (size_t i = 0; i < COUNT; i++) printf("%s %s %s\n", probes[i].name, probes[i].expected, probes[i].source);
    return 0;
  }
  if (argc == 3 && strcmp(argv[1], "--expect") == 0) {
    for (size_t i = 0; i < COUNT; i++)
      if (strcmp(argv[2], probes[i].name) == 0) {
        if (probes[i].output != NULL) fputs(probes[i].output, stdout);
        return 0;
      }
    return 2;
  }
  if (argc != 2) {
    fprintf(stderr, "usage: probes NAME | --list | --expect NAME\n");
    return 2;
  }
  for (size_t i = 0; i < COUNT; i++)
    if (strcmp(argv[1], probes[i].name) == 0) return probes[i].run();
  fprintf(stderr, "probes: no probe %s\n", argv[1]);
  return 2;
}
