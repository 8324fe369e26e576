// fail_mmap: a preload library that defines mmap itself and fails it on demand (MAP_FAILED, errno ENOMEM).
// Preloaded after libswalloc.so (LD_PRELOAD="libswalloc.so libfail_mmap.so"), it is where libswalloc.so's
// calls to mmap bind; glibc's own mappings (thread stacks, the loader) use internal calls and never come here.
// The program steers it through the functions below, found with dlsym(RTLD_DEFAULT, ...).
#define _GNU_SOURCE
#include <errno.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))

/// Calls seen, calls failed.
static atomic_long callCount;
static atomic_long failureCount;
/// Injection: the next `skipCount` calls succeed, then `failCount` calls fail (-1: all of them).
static atomic_long skipCount;
static atomic_long failCount;
/// With `period` > 0 instead: of every `period` calls, the first `failing` fail.
static atomic_long period;
static atomic_long failing;

/// Lets the next `skip` calls through, then fails `count` calls (-1: until fail_mmap_stop).
EXPORT void fail_mmap_inject(long skip, long count) {
  atomic_store(&period, 0);
  atomic_store(&skipCount, skip);
  atomic_store(&failCount, count);
}

/// From now on, of every `n` calls the first `failingCount` fail (0 < failingCount < n).
EXPORT void fail_mmap_pattern(long n, long failingCount) {
  atomic_store(&failCount, 0);
  atomic_store(&failing, failingCount);
  atomic_store(&period, n);
}

/// Every call succeeds again.
EXPORT void fail_mmap_stop(void) {
  atomic_store(&period, 0);
  atomic_store(&failCount, 0);
}

EXPORT long fail_mmap_calls(void) { return atomic_load(&callCount); }
EXPORT long fail_mmap_failures(void) { return atomic_load(&failureCount); }

static int shouldFail(long call) {
  long n = atomic_load(&period);
  if (n > 0) return call % n < atomic_load(&failing);
  long skip = atomic_load(&skipCount);
  while (skip > 0) {
    if (atomic_compare_exchange_weak(&skipCount, &skip, skip - 1)) return 0;
  }
  long count = atomic_load(&failCount);
  while (count != 0) {
    if (count < 0 || atomic_compare_exchange_weak(&failCount, &count, count - 1)) return 1;
  }
  return 0;
}

EXPORT void *mmap(void *address, size_t length, int protection, int flags, int fd, off_t offset) {
  long call = atomic_fetch_add(&callCount, 1) + 1;
  if (shouldFail(call)) {
    atomic_fetch_add(&failureCount, 1);
    errno = ENOMEM;
    return MAP_FAILED;
  }
  long result = syscall(SYS_mmap, address, length, protection, flags, fd, offset);
  return result == -1 ? MAP_FAILED : (void *)result;
}

// glibc declares mmap64 as an alias of mmap on 64-bit targets: a caller built with _FILE_OFFSET_BITS=64 binds it.
EXPORT void *mmap64(void *address, size_t length, int protection, int flags, int fd, off_t offset)
  __attribute__((alias("mmap")));
