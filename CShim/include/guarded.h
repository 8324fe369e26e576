// guarded.h: what guarded sampling (SWALLOC_GUARDED_SAMPLE, Sources/SwallocCore/GuardedSlots.swift) needs
// from C: the guarded region's bounds,
// the thread id, the SIGSEGV/SIGBUS handler (installed with sigaction, chained to the previous one), and
// symbolization of code addresses without allocating (dladdr).
#ifndef SWALLOC_GUARDED_H
#define SWALLOC_GUARDED_H

#include <stddef.h>
#include <stdint.h>
#include <unistd.h>
#include <sys/syscall.h>

#pragma clang assume_nonnull begin

/// The guarded region: [start, start + length). Length 0 until the region exists. free's slow path tests a
/// pointer against it (the region is no segment: free's fast path never takes its blocks).
extern uintptr_t swalloc_guarded_region_start;
extern uintptr_t swalloc_guarded_region_length;

static inline __attribute__((always_inline)) uintptr_t swalloc_guarded_start(void) {
  return swalloc_guarded_region_start;
}
static inline __attribute__((always_inline)) uintptr_t swalloc_guarded_length(void) {
  return swalloc_guarded_region_length;
}
/// Publishes the region (once, before the first guarded block is handed out).
static inline __attribute__((always_inline)) void swalloc_guarded_set_region(uintptr_t start, uintptr_t length) {
  swalloc_guarded_region_start = start;
  __atomic_store_n(&swalloc_guarded_region_length, length, __ATOMIC_RELEASE);
}

/// SWALLOC_SECURE=full: non-zero once a freed large block's middle was made inaccessible
/// (SecureLargeBlocks.swift). From then on the handler offers faults outside the guarded region to
/// swalloc_core_freed_large_fault as well.
extern int swalloc_freed_large_faults;

static inline __attribute__((always_inline)) int swalloc_freed_large_faults_enabled(void) {
  return __atomic_load_n(&swalloc_freed_large_faults, __ATOMIC_ACQUIRE);
}
static inline __attribute__((always_inline)) void swalloc_freed_large_faults_enable(void) {
  __atomic_store_n(&swalloc_freed_large_faults, 1, __ATOMIC_RELEASE);
}

/// The kernel's id of the calling thread (gettid; syscall(2) is variadic, which Swift cannot call).
static inline __attribute__((always_inline)) int32_t swalloc_thread_id(void) {
  return (int32_t)syscall(SYS_gettid);
}

/// The return address of the function this is inlined into.
static inline __attribute__((always_inline)) uintptr_t swalloc_return_address(void) {
  return (uintptr_t)__builtin_return_address(0);
}

/// Installs the SIGSEGV and SIGBUS handler once (sigaction; no allocation), remembering the handlers the
/// program had, which get every fault outside the guarded region. Returns 0 on success.
int swalloc_guarded_install_handler(void);

/// Implemented in Swift (GuardedReport.swift): when `address` is in the guarded region, prints the report
/// and returns 1 (the handler then restores the previous disposition and lets the access fault again, so
/// the process dies of the original signal or the program's own handler sees it); otherwise 0.
/// `access`: 0 unknown, 1 read, 2 write, plus the access size in bytes shifted left by 4 (0: unknown). `pc`:
/// the faulting instruction, or 0.
int swalloc_core_guarded_fault(uintptr_t address, int access, uintptr_t pc);

/// Implemented in Swift (SecureLargeBlocks.swift): when `address` is in the inaccessible middle of a freed
/// large block, prints the report and returns 1 (then as swalloc_core_guarded_fault); otherwise 0.
int swalloc_core_freed_large_fault(uintptr_t address, int access, uintptr_t pc);

/// How many bytes of memory the x86-64 instruction at `code` reads or writes (its memory operand's size), or 0
/// when it is not one AccessSize.c decodes. Safe in a signal handler.
int swalloc_access_size(const uint8_t *code);

/// Symbolizes a code address without allocating: the module's file name (no directory) and load base from
/// dladdr(3) (swalloc_symbolize, the heap profiler's), and the name and start of the function containing it,
/// from dladdr's exported symbols or else
/// from the module file's own symbol table (.symtab, mapped read-only for the look-up). Returns 0 when the
/// address is in no module; `name` is then empty, as when no symbol contains it.
int swalloc_guarded_symbolize(uintptr_t address, char *_Nonnull name, size_t capacity,
                              uintptr_t *_Nonnull symbol_address, char *_Nonnull module, size_t module_capacity,
                              uintptr_t *_Nonnull module_base);

/// Points C++'s sized operator delete at secure mode's size check (Sources/SwallocExports/CheckedDelete.c).
/// Absent in the Swift API's copy.
static inline __attribute__((always_inline)) void swalloc_use_checked_sized_delete(void) {
  extern void swalloc_select_checked_sized_delete(void) __attribute__((weak));
  if (swalloc_select_checked_sized_delete) swalloc_select_checked_sized_delete();
}

#pragma clang assume_nonnull end

#endif
