// Exports.c: the public C names of libswalloc.so. Each `swalloc_` function is one jump to the hidden Swift
// implementation in Sources/SwallocPreload/Exports.swift; the C library's names are aliases of them.
// Defined in C so that they have default visibility: see Exports.swift for why. They are naked (no frame
// setup: SwiftPM compiles with frame pointers, which would cost four instructions per forward).
#include <malloc.h>
#include <stddef.h>
#include <stdio.h>

#include "swalloc.h"
#include "CShim.h"

#define SWALLOC_EXPORT __attribute__((visibility("default"), naked))
#define SWALLOC_FORWARD(name) __asm__ volatile("jmp swalloc_impl_" #name)
#define SWALLOC_ALIAS(target) __attribute__((alias(#target), visibility("default")))

void *swalloc_impl_malloc(size_t size);
void swalloc_impl_free(void *pointer);
void *swalloc_impl_calloc(size_t count, size_t size);
void *swalloc_impl_realloc(void *pointer, size_t size);
void *swalloc_impl_reallocarray(void *pointer, size_t count, size_t size);
int swalloc_impl_posix_memalign(void **result, size_t alignment, size_t size);
void *swalloc_impl_aligned_alloc(size_t alignment, size_t size);
void *swalloc_impl_memalign(size_t alignment, size_t size);
void *swalloc_impl_valloc(size_t size);
void *swalloc_impl_pvalloc(size_t size);
size_t swalloc_impl_malloc_usable_size(void *pointer);
void swalloc_impl_free_sized(void *pointer, size_t size);
void swalloc_impl_free_aligned_sized(void *pointer, size_t alignment, size_t size);
int swalloc_impl_malloc_trim(size_t pad);
struct mallinfo2 swalloc_impl_mallinfo2(void);
struct mallinfo swalloc_impl_mallinfo(void);
int swalloc_impl_mallopt(int parameter, int value);
void swalloc_impl_malloc_stats(void);
int swalloc_impl_malloc_info(int options, FILE *stream);
void swalloc_impl_get_statistics(swalloc_statistics *statistics);
void swalloc_impl_print_statistics(int json);
size_t swalloc_impl_purge(void);

// malloc and free jump through these: the default implementations, or secure mode's, which
// swalloc_select_secure_entries installs when SWALLOC_SECURE is on (before the first heap exists). An
// indirect jump is one instruction, like the direct one: the default paths pay nothing for the choice.
// SWALLOC_SECURE=full has its own pair (the per-block checks compiled in), so level 1's pair runs no test of
// the level.
void *swalloc_impl_secure_malloc(size_t size);
void swalloc_impl_secure_free(void *pointer);
void *swalloc_impl_secure_full_malloc(size_t size);
void swalloc_impl_secure_full_free(void *pointer);
__attribute__((visibility("hidden"))) void *(*swalloc_malloc_entry)(size_t) = swalloc_impl_malloc;
__attribute__((visibility("hidden"))) void (*swalloc_free_entry)(void *) = swalloc_impl_free;

__attribute__((visibility("hidden"))) void swalloc_select_secure_entries(int full) {
  swalloc_malloc_entry = full ? swalloc_impl_secure_full_malloc : swalloc_impl_secure_malloc;
  swalloc_free_entry = full ? swalloc_impl_secure_full_free : swalloc_impl_secure_free;
}

// The other allocating entry points jump through pointers too (one jump, as a direct one costs). Nothing switches
// them today: the heap profiler and guarded sampling choose their samples in the slow path (SamplePoints.swift);
// they stay a place to hook a whole entry point.
#define SWALLOC_ENTRY(name, result, ...) \
  __attribute__((visibility("hidden"))) result (*swalloc_##name##_entry)(__VA_ARGS__) = swalloc_impl_##name;
SWALLOC_ENTRY(calloc, void *, size_t, size_t)
SWALLOC_ENTRY(realloc, void *, void *, size_t)
SWALLOC_ENTRY(reallocarray, void *, void *, size_t, size_t)
SWALLOC_ENTRY(posix_memalign, int, void **, size_t, size_t)
SWALLOC_ENTRY(aligned_alloc, void *, size_t, size_t)
SWALLOC_ENTRY(memalign, void *, size_t, size_t)
SWALLOC_ENTRY(valloc, void *, size_t)
SWALLOC_ENTRY(pvalloc, void *, size_t)
#define SWALLOC_FORWARD_ENTRY(name) __asm__ volatile("jmp *swalloc_" #name "_entry(%rip)")

SWALLOC_EXPORT void *swalloc_malloc(size_t size) { __asm__ volatile("jmp *swalloc_malloc_entry(%rip)"); }
SWALLOC_EXPORT void swalloc_free(void *pointer) { __asm__ volatile("jmp *swalloc_free_entry(%rip)"); }
SWALLOC_EXPORT void *swalloc_calloc(size_t count, size_t size) { SWALLOC_FORWARD_ENTRY(calloc); }
SWALLOC_EXPORT void *swalloc_realloc(void *pointer, size_t size) { SWALLOC_FORWARD_ENTRY(realloc); }
SWALLOC_EXPORT void *swalloc_reallocarray(void *pointer, size_t count, size_t size) { SWALLOC_FORWARD_ENTRY(reallocarray); }
SWALLOC_EXPORT int swalloc_posix_memalign(void **result, size_t alignment, size_t size) { SWALLOC_FORWARD_ENTRY(posix_memalign); }
SWALLOC_EXPORT void *swalloc_aligned_alloc(size_t alignment, size_t size) { SWALLOC_FORWARD_ENTRY(aligned_alloc); }
SWALLOC_EXPORT void *swalloc_memalign(size_t alignment, size_t size) { SWALLOC_FORWARD_ENTRY(memalign); }
SWALLOC_EXPORT void *swalloc_valloc(size_t size) { SWALLOC_FORWARD_ENTRY(valloc); }
SWALLOC_EXPORT void *swalloc_pvalloc(size_t size) { SWALLOC_FORWARD_ENTRY(pvalloc); }
SWALLOC_EXPORT size_t swalloc_malloc_usable_size(void *pointer) { SWALLOC_FORWARD(malloc_usable_size); }
SWALLOC_EXPORT void swalloc_free_sized(void *pointer, size_t size) { SWALLOC_FORWARD(free_sized); }
SWALLOC_EXPORT void swalloc_free_aligned_sized(void *pointer, size_t alignment, size_t size) { SWALLOC_FORWARD(free_aligned_sized); }

// glibc's introspection calls, answered from Swalloc's statistics (Introspection.swift).
SWALLOC_EXPORT int malloc_trim(size_t pad) { SWALLOC_FORWARD(malloc_trim); }
SWALLOC_EXPORT struct mallinfo2 mallinfo2(void) { SWALLOC_FORWARD(mallinfo2); }
SWALLOC_EXPORT struct mallinfo mallinfo(void) { SWALLOC_FORWARD(mallinfo); }
SWALLOC_EXPORT int mallopt(int parameter, int value) { SWALLOC_FORWARD(mallopt); }
SWALLOC_EXPORT void malloc_stats(void) { SWALLOC_FORWARD(malloc_stats); }
SWALLOC_EXPORT int malloc_info(int options, FILE *stream) { SWALLOC_FORWARD(malloc_info); }

// Swalloc's own C API (swalloc.h).
SWALLOC_EXPORT void swalloc_get_statistics(swalloc_statistics *statistics) { SWALLOC_FORWARD(get_statistics); }
SWALLOC_EXPORT void swalloc_print_statistics(int json) { SWALLOC_FORWARD(print_statistics); }
SWALLOC_EXPORT size_t swalloc_purge(void) { SWALLOC_FORWARD(purge); }
__attribute__((visibility("default"))) int swalloc_backtrace(void **frames, int capacity) {
  return swalloc_backtrace_capture((uintptr_t *)frames, capacity, 1);
}

void *malloc(size_t size) SWALLOC_ALIAS(swalloc_malloc);
void *__libc_malloc(size_t size) SWALLOC_ALIAS(swalloc_malloc);
void free(void *pointer) SWALLOC_ALIAS(swalloc_free);
void __libc_free(void *pointer) SWALLOC_ALIAS(swalloc_free);
void cfree(void *pointer) SWALLOC_ALIAS(swalloc_free);
void *calloc(size_t count, size_t size) SWALLOC_ALIAS(swalloc_calloc);
void *__libc_calloc(size_t count, size_t size) SWALLOC_ALIAS(swalloc_calloc);
void *realloc(void *pointer, size_t size) SWALLOC_ALIAS(swalloc_realloc);
void *__libc_realloc(void *pointer, size_t size) SWALLOC_ALIAS(swalloc_realloc);
void *reallocarray(void *pointer, size_t count, size_t size) SWALLOC_ALIAS(swalloc_reallocarray);
int posix_memalign(void **result, size_t alignment, size_t size) SWALLOC_ALIAS(swalloc_posix_memalign);
int __posix_memalign(void **result, size_t alignment, size_t size) SWALLOC_ALIAS(swalloc_posix_memalign);
void *aligned_alloc(size_t alignment, size_t size) SWALLOC_ALIAS(swalloc_aligned_alloc);
void *memalign(size_t alignment, size_t size) SWALLOC_ALIAS(swalloc_memalign);
void *__libc_memalign(size_t alignment, size_t size) SWALLOC_ALIAS(swalloc_memalign);
void *valloc(size_t size) SWALLOC_ALIAS(swalloc_valloc);
void *__libc_valloc(size_t size) SWALLOC_ALIAS(swalloc_valloc);
void *pvalloc(size_t size) SWALLOC_ALIAS(swalloc_pvalloc);
void *__libc_pvalloc(size_t size) SWALLOC_ALIAS(swalloc_pvalloc);
size_t malloc_usable_size(void *pointer) SWALLOC_ALIAS(swalloc_malloc_usable_size);
void free_sized(void *pointer, size_t size) SWALLOC_ALIAS(swalloc_free_sized);
void free_aligned_sized(void *pointer, size_t alignment, size_t size) SWALLOC_ALIAS(swalloc_free_aligned_sized);
