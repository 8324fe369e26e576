// CShim: only what Swift cannot express for Swalloc. libc headers (Embedded Swift cannot import Glibc),
// the initial-exec TLS heap slot and its inline accessors, the static empty heap and page, the segment map,
// errno, and the constructor / thread-exit / process-exit hooks that forward to Swift.
#ifndef SWALLOC_CSHIM_H
#define SWALLOC_CSHIM_H

#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>
#include <malloc.h>
#include <stdio.h>
#include <unwind.h>
#include <signal.h>

#include "swalloc.h"
#include "guarded.h"

#ifndef MAP_HUGETLB
#define MAP_HUGETLB 0x40000
#endif
#ifndef MADV_HUGEPAGE
#define MADV_HUGEPAGE 14
#endif

#define SWALLOC_INLINE static inline __attribute__((always_inline))

#pragma clang assume_nonnull begin

/// Number of direct page slots in a heap: one per 16-byte granule for sizes 0 ... 1024.
#define SWALLOC_DIRECT_COUNT 65
/// log2 of the segment size (4 MiB); the segment map has one byte per segment-sized unit of a 47-bit space.
#define SWALLOC_SEGMENT_SHIFT 22
#define SWALLOC_SEGMENT_MAP_COUNT 33554432 /* 1 << (47 - SWALLOC_SEGMENT_SHIFT) */

// ---- thread-local heap slot ------------------------------------------------------------------------------
// initial-exec: a read is one %fs-relative load (research/swift-feasibility.md section 3). It starts at the
// static empty heap, so the malloc fast path needs no "initialized?" branch.
extern __thread void *_Nonnull swalloc_tls_heap __attribute__((tls_model("initial-exec")));

SWALLOC_INLINE void *_Nonnull swalloc_heap_get(void) { return swalloc_tls_heap; }
SWALLOC_INLINE void swalloc_heap_set(void *_Nonnull heap) { swalloc_tls_heap = heap; }

/// Secure mode (SWALLOC_SECURE=1) keeps `swalloc_tls_heap` at the static empty heap, so that both fast paths
/// fall into their slow paths, and the thread's real heap here.
extern __thread void *_Nonnull swalloc_tls_secure_heap __attribute__((tls_model("initial-exec")));

SWALLOC_INLINE void *_Nonnull swalloc_secure_heap_get(void) { return swalloc_tls_secure_heap; }
SWALLOC_INLINE void swalloc_secure_heap_set(void *_Nonnull heap) { swalloc_tls_secure_heap = heap; }

/// The static empty heap: SWALLOC_DIRECT_COUNT direct slots, each pointing at the static empty page.
SWALLOC_INLINE void *_Nonnull swalloc_empty_heap_address(void) {
  extern void *swalloc_empty_heap[SWALLOC_DIRECT_COUNT];
  return swalloc_empty_heap;
}

/// The segment map: one byte per 4 MiB unit of the address space, in .bss (costs no memory until touched).
/// 0 = not Swalloc's; 1 = a segment starts in this unit; k > 1 = the segment starts k - 1 units lower.
SWALLOC_INLINE uint8_t *_Nonnull swalloc_segment_map_address(void) {
  extern uint8_t swalloc_segment_map[SWALLOC_SEGMENT_MAP_COUNT];
  return swalloc_segment_map;
}

/// Number of slots in the span cache (recently freed segments and huge spans kept for reuse).
#define SWALLOC_SPAN_CACHE_COUNT 64

SWALLOC_INLINE uint64_t *_Nonnull swalloc_span_cache_address(void) {
  extern uint64_t swalloc_span_cache[SWALLOC_SPAN_CACHE_COUNT];
  return swalloc_span_cache;
}

SWALLOC_INLINE uint64_t *_Nonnull swalloc_span_cache_time_address(void) {
  extern uint64_t swalloc_span_cache_time[SWALLOC_SPAN_CACHE_COUNT];
  return swalloc_span_cache_time;
}

/// The huge-page reserve's free-unit bitmap (4 GiB of 4 MiB units at most).
SWALLOC_INLINE uint64_t *_Nonnull swalloc_huge_reserve_bits_address(void) {
  extern uint64_t swalloc_huge_reserve_bits[16];
  return swalloc_huge_reserve_bits;
}

// ---- secure mode -------------------------------------------------------------------------------------------
/// 8 random bytes from the kernel (getrandom, which does not allocate), or 0 when it fails.
SWALLOC_INLINE uint64_t swalloc_random_word(void) {
  uint64_t word = 0;
  if (getentropy(&word, sizeof word) != 0) return 0;
  return word;
}

/// Moves the mapping [old, old + old_byte_count) to `target`, grown to `new_byte_count` (the growth is fresh
/// zeroed memory); whatever was mapped at the target is replaced. Returns whether it worked. The pages move with
/// their page tables: nothing is copied or faulted in. mremap(MREMAP_MAYMOVE | MREMAP_FIXED) through syscall(2)
/// (mremap is variadic, and declared only under _GNU_SOURCE). Keeps errno.
SWALLOC_INLINE int swalloc_move_mapping(void *old, size_t old_byte_count, size_t new_byte_count, void *target) {
  int saved = errno;
  long moved = syscall(SYS_mremap, old, old_byte_count, new_byte_count, 1 /* MREMAP_MAYMOVE */ | 2 /* MREMAP_FIXED */,
                       target);
  errno = saved;
  return moved == (long)(uintptr_t)target;
}

/// Points libswalloc.so's malloc and free at secure mode's entry points (Sources/SwallocExports/Exports.c):
/// level 1's, or, when `full` is non-zero, SWALLOC_SECURE=full's. Elsewhere (the Swift API's copy of the core)
/// the function is absent and nothing happens.
SWALLOC_INLINE void swalloc_use_secure_entries(int full) {
  extern void swalloc_select_secure_entries(int full) __attribute__((weak));
  if (swalloc_select_secure_entries) swalloc_select_secure_entries(full);
}

/// abort(3): the end of a process whose heap was misused in secure mode.
void swalloc_abort(void) __attribute__((noreturn));

// ---- errno -------------------------------------------------------------------------------------------------
SWALLOC_INLINE int swalloc_errno_get(void) { return errno; }
SWALLOC_INLINE void swalloc_errno_set(int value) { errno = value; }

// ---- version -----------------------------------------------------------------------------------------------
/// SWALLOC_VERSION (swalloc.h) for the Swift core, which must not import the macro as a String.
SWALLOC_INLINE const char *swalloc_version_text(void) { return SWALLOC_VERSION; }

// ---- environment -------------------------------------------------------------------------------------------
SWALLOC_INLINE char *_Nullable *_Nullable swalloc_environ(void) {
  extern char **environ;
  return environ;
}

/// open(2) for reading (Swift cannot call the variadic `open`).
SWALLOC_INLINE int swalloc_open_read_only(const char *path) { return open(path, O_RDONLY | O_CLOEXEC); }

/// A close-on-exec duplicate of `fd` numbered 100 or above, or -1 (fcntl is variadic: Swift cannot call it).
SWALLOC_INLINE int swalloc_duplicate_descriptor(int fd) { return fcntl(fd, F_DUPFD_CLOEXEC, 100); }

/// The file descriptor behind a stdio stream, after flushing what the stream buffered (malloc_info).
SWALLOC_INLINE int swalloc_stream_descriptor(void *stream) {
  FILE *file = (FILE *)stream;
  fflush(file);
  return fileno(file);
}

// ---- clock -------------------------------------------------------------------------------------------------
/// Monotonic milliseconds (clock_gettime through the vDSO; no allocation).
SWALLOC_INLINE uint64_t swalloc_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/// An empty instruction sequence after a slow-path call keeps that call out of tail position, so that the
/// fast path of free needs no stack frame (SwiftPM builds with frame pointers, and a tail call from a
/// function with a frame must set up and pop that frame on every path).
SWALLOC_INLINE void swalloc_after_slow_call(void) { __asm__ volatile(""); }

// ---- thread exit -------------------------------------------------------------------------------------------
/// Registers `heap` so that swalloc_core_thread_exit(heap) runs when the calling thread exits
/// (a pthread key destructor; the key is created on first use, which does not allocate).
void swalloc_thread_register(void *heap);

// ---- backtraces and symbols (Backtrace.swift, the heap profiler) ----------------------------------------
/// The bounds of the loaded object that contains `address` (_dl_find_object: lock-free and
/// async-signal-safe); 0 when no object contains it.
int swalloc_object_bounds(const void *address, uintptr_t *start, uintptr_t *end);

/// The most frames a backtrace keeps.
#define SWALLOC_BACKTRACE_MAX 64

/// Fills `frames` with up to `capacity` (at most SWALLOC_BACKTRACE_MAX) code addresses of the calling
/// thread's stack, innermost first, and returns how many. Each is inside its call instruction (a return
/// address less one), or is the instruction a signal interrupted: ready for symbolization. With
/// `skip_own_frames`, the leading frames of the object that holds this code (libswalloc.so) are left out.
/// Never allocates or locks; safe in signal handlers and forked children (Backtrace.c).
/// Every frame between the program and this function needs call-frame information (.eh_frame), which Embedded
/// Swift code lacks: from Swift, call swalloc_backtrace_capture_from_swift. The walk stops at the first frame
/// without it.
int swalloc_backtrace_capture(uintptr_t *frames, int capacity, int skip_own_frames);

/// The same, called from the library's Embedded Swift code, whose frames have frame pointers but no .eh_frame:
/// they are walked by frame pointer up to the program's call, and the CFI walk goes on from there.
int swalloc_backtrace_capture_from_swift(uintptr_t *frames, int capacity);

// ---- heap profiler (Sampler.swift, Profile.swift, Sources/SwallocExports/Profile.c) -----------------------
/// A thread's sampling state: the random generator's state, and whether the thread is inside the profiler (a
/// nested allocation, from a signal handler or the profiler itself, is never sampled). The countdowns live in
/// the heap (SamplePoints.swift).
typedef struct swalloc_sampler {
  uint64_t unused;
  uint64_t random;
  uint64_t busy;
} swalloc_sampler;

extern __thread swalloc_sampler swalloc_tls_sampler __attribute__((tls_model("initial-exec")));

SWALLOC_INLINE swalloc_sampler *_Nonnull swalloc_sampler_state(void) { return &swalloc_tls_sampler; }

/// Installs the profiler's handler for `signal` (SWALLOC_PROFILE_SIGNAL): it calls swalloc_core_profile_signal.
void swalloc_profile_install_signal(int signal);

/// Restores `signal`'s default action and raises it again (after the profile of a terminating signal).
void swalloc_reraise_default(int signal);

/// USDT probes (sys/sdt.h; a NOP each until a tracer attaches): swalloc:sample (block, requested bytes, bytes
/// the sample stands for) and swalloc:sample_free (block, requested bytes).
void swalloc_probe_sample(void *block, size_t byte_count, size_t weight);
void swalloc_probe_free(void *block, size_t byte_count);

/// open(2) for writing a new file (created 0644, truncated, close-on-exec), or -1.
SWALLOC_INLINE int swalloc_open_write(const char *path) {
  return open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
}

/// Wall-clock time in nanoseconds since the epoch. A system call, not the vDSO: read once per profile, often
/// at the exit of a process that never read the clock, whose first vDSO read faults in its data page (8 us).
SWALLOC_INLINE uint64_t swalloc_realtime_ns(void) {
  struct timespec ts = {0, 0};
  syscall(SYS_clock_gettime, CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/// The process id, through syscall(2) as `swalloc_realtime_ns` calls it: libc's getpid sits on a code page of
/// its own that nothing else a profiled process runs may touch, and its first call mapped the 64 KiB of libc's
/// code around it (the kernel's fault-around), counted in the resident set of every profiled process.
SWALLOC_INLINE int32_t swalloc_process_id(void) { return (int32_t)syscall(SYS_getpid); }

/// What dladdr knows about an address. The strings belong to the loader.
typedef struct swalloc_symbol {
  const char *_Nullable object_name;
  uintptr_t object_base;
  const char *_Nullable symbol_name;
  uintptr_t symbol_address;
} swalloc_symbol;

/// dladdr: 1 and `*symbol` filled when a loaded object contains `address`. Takes the loader's lock (no
/// allocation): for exit and dump time only, never inside malloc.
int swalloc_symbolize(uintptr_t address, swalloc_symbol *symbol);

/// swalloc_symbolize from an index of each object's exported functions, built once per object (glibc's dladdr
/// scans the whole dynamic symbol table at every call). The same answer for functions with a size; for the
/// profile dumps, which release the index after with swalloc_symbol_tables_release.
int swalloc_symbolize_indexed(uintptr_t address, swalloc_symbol *symbol);
void swalloc_symbol_tables_release(void);

/// One object the loader has loaded (the program, its libraries, the vDSO), as dl_iterate_phdr reports it.
typedef struct swalloc_loaded_object {
  /// The load bias: an address in the object's program headers plus `base` is where it is mapped.
  uintptr_t base;
  /// The object's ELF64 program headers (in memory), `program_header_count` of them.
  const void *_Nullable program_headers;
  size_t program_header_count;
  /// The loader's name for it: "" for the program, else the path it was loaded from (or linux-vdso.so.1).
  const char *_Nullable name;
} swalloc_loaded_object;

typedef void (*swalloc_loaded_object_visitor)(const swalloc_loaded_object *object, void *_Nullable context);

/// The program's path as given to execve (getauxval(AT_EXECFN)), or NULL.
const char *_Nullable swalloc_program_path(void);

/// Calls `visit` for each loaded object (dl_iterate_phdr: the loader's lock is held meanwhile, nothing is
/// allocated): for exit and dump time only, never inside malloc or a signal handler.
void swalloc_each_loaded_object(swalloc_loaded_object_visitor visit, void *_Nullable context);

#pragma clang assume_nonnull end

#endif
