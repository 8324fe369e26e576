// swalloc.h: Swalloc's own C API (exported by libswalloc.so), shared by C users and the Swift API.
#ifndef SWALLOC_H
#define SWALLOC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// The version of this header and of the library built with it (MAJOR.MINOR.PATCH). The library reports
/// its own with swalloc_version(), in its statistics (`swalloc:   version`, `"version"` in JSON) and to
/// `swalloc run` / `swalloc doctor`; the `swalloc` command prints both with `swalloc version`.
#define SWALLOC_VERSION_MAJOR 0
#define SWALLOC_VERSION_MINOR 1
#define SWALLOC_VERSION_PATCH 0
#define SWALLOC_VERSION "0.1.0"

/// The version of the libswalloc.so in use, e.g. "0.1.0" (compare with SWALLOC_VERSION, the header's).
const char *swalloc_version(void);

/// A snapshot of Swalloc's statistics (the same figures SWALLOC_SHOW_STATS prints).
typedef struct swalloc_statistics {
  uint64_t allocations;             ///< malloc-family calls that returned memory
  uint64_t frees;                   ///< blocks given back
  uint64_t live_bytes;              ///< bytes in live blocks (usable sizes)
  uint64_t peak_bytes;              ///< peak of bytes in pages in use plus huge blocks
  uint64_t mapped_bytes;            ///< bytes mapped from the kernel and not yet unmapped
  uint64_t resident_bytes;          ///< the process's resident set (/proc/self/statm)
  uint64_t purged_bytes;            ///< bytes given back with MADV_DONTNEED so far
  uint64_t huge_live_blocks;        ///< live blocks above 512 KiB (each its own span)
  uint64_t huge_live_bytes;
  uint64_t spans_mapped;            ///< segments and huge spans mapped fresh
  uint64_t spans_reused;            ///< ... and taken from the span cache instead
  uint64_t heaps;                   ///< thread heaps ever created (pooled ones are reused)
  uint64_t invalid_frees;           ///< frees of pointers Swalloc does not own, ignored
  uint64_t huge_page_spans;         ///< spans mapped on explicit huge pages (SWALLOC_HUGE_PAGES=explicit)
  uint64_t huge_page_fallbacks;     ///< times explicit huge pages were asked for and normal pages used
  uint64_t huge_reserve_bytes;      ///< bytes of the huge-page reserve (SWALLOC_HUGE_RESERVE)
  uint64_t locked_bytes;            ///< bytes mapped with MAP_LOCKED (SWALLOC_LOCKED=1)
  uint64_t locked_fallbacks;        ///< times locking was refused (RLIMIT_MEMLOCK) and memory left unlocked
} swalloc_statistics;

/// Fills `*statistics`. Exact when other threads are quiet; approximate while they allocate.
void swalloc_get_statistics(swalloc_statistics *statistics);

/// Prints the statistics table (or JSON when `json` is non-zero) on stderr.
void swalloc_print_statistics(int json);

/// Purges the calling thread's free pages and every cached span now; returns the bytes given back.
size_t swalloc_purge(void);

/// Fills `frames` with up to `capacity` (at most 64) code addresses of the calling thread's stack, innermost
/// first (the caller of swalloc_backtrace first), and returns how many. Each address is inside its call
/// instruction (or is the instruction a signal interrupted). Works without frame pointers, in any thread and
/// in signal handlers; never allocates or takes a lock.
int swalloc_backtrace(void **frames, int capacity);

/// Writes the heap profile (SWALLOC_PROFILE=1 or leaks; pprof's profile.proto, gzip-compressed) to `path`, or,
/// when `path` is NULL, to <SWALLOC_PROFILE_PREFIX>.<pid>.<n>.pb.gz with n = 1, 2, ... Returns 0, or -1 with
/// errno set (EINVAL when profiling is off). Allocates nothing from the heap; safe in a signal handler.
int swalloc_profile_dump(const char *path);

#ifdef __cplusplus
}
#endif

#endif
