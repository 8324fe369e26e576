// Shared helpers for the benchmark workloads: the scale argument, a fast deterministic RNG, object tags that
// catch corruption, RSS from /proc, and the line that proves which malloc the process really called.
// Include it first: it defines _GNU_SOURCE for dladdr and RTLD_DEFAULT.
#ifndef SWALLOC_BENCH_H
#define SWALLOC_BENCH_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/// Prints a failed check on stderr and exits with status 3, which the driver reports as FAIL.
#define BENCH_CHECK(cond, ...)                                                     \
  do {                                                                             \
    if (!(cond)) {                                                                 \
      fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond);     \
      fprintf(stderr, __VA_ARGS__);                                                \
      fputc('\n', stderr);                                                         \
      exit(3);                                                                     \
    }                                                                              \
  } while (0)

/// argv[index] as a positive scale factor (1.0 = the full benchmark), or `fallback` when absent.
static inline double bench_arg_double(int argc, char **argv, int index, double fallback) {
  if (argc <= index) return fallback;
  char *end = NULL;
  double value = strtod(argv[index], &end);
  BENCH_CHECK(end != argv[index] && *end == 0 && value > 0, "bad argument '%s'", argv[index]);
  return value;
}

/// `base * scale` rounded, never below `minimum`: iteration counts for a scaled run.
static inline long bench_scaled(double base, double scale, long minimum) {
  long n = (long)(base * scale + 0.5);
  return n < minimum ? minimum : n;
}

/// Prints `malloc_provider PATH`: the object that `malloc` resolves to for this process. The driver compares it
/// with the preloaded library, because the loader silently ignores a preload it cannot use.
static inline void bench_report_provider(void) {
  void *symbol = dlsym(RTLD_DEFAULT, "malloc");
  Dl_info info;
  if (symbol != NULL && dladdr(symbol, &info) != 0 && info.dli_fname != NULL) {
    printf("malloc_provider %s\n", info.dli_fname);
  } else {
    printf("malloc_provider unknown\n");
  }
  fflush(stdout);
}

/// splitmix64: fast, deterministic, good enough to pick sizes and slots.
static inline uint64_t bench_rng(uint64_t *state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/// A uniform value in [low, high].
static inline size_t bench_rng_range(uint64_t *state, size_t low, size_t high) {
  return low + (size_t)(bench_rng(state) % (uint64_t)(high - low + 1));
}

/// The tag an object of `size` bytes at `p` carries: ties the contents to the address and size, so a block
/// handed out twice or overwritten by a neighbour is noticed when it is checked before `free`.
static inline uint64_t bench_tag(const void *p, size_t size) {
  return ((uint64_t)(uintptr_t)p * 0x9E3779B97F4A7C15ull) ^ (uint64_t)size ^ 0x5A5A0B1ECull;
}

/// Writes the tag into the first 8 bytes (or fewer) and the last byte of an object of `size` >= 1 bytes.
static inline void bench_tag_write(void *p, size_t size) {
  uint64_t tag = bench_tag(p, size);
  memcpy(p, &tag, size < 8 ? size : 8);
  ((unsigned char *)p)[size - 1] = (unsigned char)(tag >> 56);
}

/// Checks the tag written by `bench_tag_write`; exits with status 3 when it changed.
static inline void bench_tag_check(const void *p, size_t size) {
  uint64_t tag = bench_tag(p, size), found = 0;
  memcpy(&found, p, size < 8 ? size : 8);
  uint64_t mask = size < 8 ? ((1ull << (8 * size)) - 1) : ~0ull;
  BENCH_CHECK((found & mask) == (tag & mask), "object %p of %zu bytes was overwritten", p, size);
  BENCH_CHECK(((const unsigned char *)p)[size - 1] == (unsigned char)(tag >> 56),
              "last byte of object %p of %zu bytes was overwritten", p, size);
}

/// Resident set size in KiB from /proc/self/statm (field 2, in pages).
static inline long bench_rss_kib(void) {
  FILE *file = fopen("/proc/self/statm", "r");
  BENCH_CHECK(file != NULL, "cannot open /proc/self/statm");
  long sizePages = 0, residentPages = 0;
  BENCH_CHECK(fscanf(file, "%ld %ld", &sizePages, &residentPages) == 2, "cannot parse /proc/self/statm");
  fclose(file);
  return residentPages * (sysconf(_SC_PAGESIZE) / 1024);
}

/// Monotonic seconds.
static inline double bench_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

#endif
