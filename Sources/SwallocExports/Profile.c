// Profile.c: the heap profiler's entry points (SWALLOC_PROFILE). When profiling is on, libswalloc.so's
// allocating entry pointers (Exports.c) point here: each call counts its bytes down the thread's sampling
// countdown and goes on to the unsampled function; when the countdown runs out, the call stack is captured
// here, in C (the unwinder needs call-frame information for every frame, which Embedded Swift code lacks),
// and the Swift side allocates and records the sample. Off, none of this runs: the pointers keep the plain
// implementations, and malloc and free execute the same instructions as without a profiler.
#include <errno.h>
#include <stdint.h>

#include "CShim.h"
#include "swalloc.h"

void *swalloc_impl_malloc(size_t size);
void *swalloc_impl_calloc(size_t count, size_t size);
void *swalloc_impl_realloc(void *pointer, size_t size);
void *swalloc_impl_reallocarray(void *pointer, size_t count, size_t size);
int swalloc_impl_posix_memalign(void **result, size_t alignment, size_t size);
void *swalloc_impl_aligned_alloc(size_t alignment, size_t size);
void *swalloc_impl_memalign(size_t alignment, size_t size);
void *swalloc_impl_valloc(size_t size);
void *swalloc_impl_pvalloc(size_t size);
int swalloc_impl_profile_begin(void);
void *swalloc_impl_profile_adopt(void *block, size_t size, const uintptr_t *frames, int frame_count);
int swalloc_impl_profile_forget(void *block);
void *swalloc_impl_profile_allocate(int kind, void *pointer, size_t size, size_t alignment, const uintptr_t *frames,
                                    int frame_count);
int swalloc_impl_profile_dump(const char *path);

extern void *(*swalloc_malloc_entry)(size_t);
extern void *(*swalloc_calloc_entry)(size_t, size_t);
extern void *(*swalloc_realloc_entry)(void *, size_t);
extern void *(*swalloc_reallocarray_entry)(void *, size_t, size_t);
extern int (*swalloc_posix_memalign_entry)(void **, size_t, size_t);
extern void *(*swalloc_aligned_alloc_entry)(size_t, size_t);
extern void *(*swalloc_memalign_entry)(size_t, size_t);
extern void *(*swalloc_valloc_entry)(size_t);
extern void *(*swalloc_pvalloc_entry)(size_t);

enum { kind_malloc = 0, kind_calloc = 1, kind_aligned = 3 };

/// malloc underneath: the entry in effect before profiling (the default one, secure mode's, or another hook's).
static void *(*profile_base_malloc)(size_t) = swalloc_impl_malloc;

/// Counts `size` bytes down the thread's countdown: 1 when this allocation is not sampled.
static inline __attribute__((always_inline)) int profile_pass(size_t size) {
  swalloc_sampler *sampler = swalloc_sampler_state();
  uint64_t left = sampler->countdown;
  if (__builtin_expect(size < left, 1)) {
    sampler->countdown = left - size;
    return 1;
  }
  return !swalloc_impl_profile_begin();
}

/// Captures the stack (the library's own frames left out) and has the Swift side allocate and record.
static __attribute__((noinline)) void *profile_sample(int kind, void *pointer, size_t size, size_t alignment) {
  uintptr_t frames[SWALLOC_BACKTRACE_MAX];
  int count = swalloc_backtrace_capture(frames, SWALLOC_BACKTRACE_MAX, 1);
  return swalloc_impl_profile_allocate(kind, pointer, size, alignment, frames, count);
}

static int is_power_of_two(size_t value) { return value != 0 && (value & (value - 1)) == 0; }

/// malloc when the countdown ran out (or was never drawn).
__attribute__((used)) static void *profile_malloc_slow(size_t size) {
  if (!swalloc_impl_profile_begin()) return profile_base_malloc(size);
  return profile_sample(kind_malloc, NULL, size, 16);
}

/// malloc (and C++ new): naked, like the exported forwards, so that the countdown costs 6 instructions and no
/// frame (SwiftPM compiles C with frame pointers: a C body would add 7 more). The countdown is the first word
/// of the thread's initial-exec sampler state; below the size, or 0, the slow path decides.
__attribute__((naked)) static void *profile_malloc(size_t size) {
  __asm__ volatile(
    "movq swalloc_tls_sampler@gottpoff(%rip), %rax\n"
    "movq %fs:(%rax), %rcx\n"
    "subq %rdi, %rcx\n"
    "jbe 1f\n"
    "movq %rcx, %fs:(%rax)\n"
    "jmp *profile_base_malloc(%rip)\n"
    "1: jmp profile_malloc_slow\n");
}

static void *profile_calloc(size_t count, size_t size) {
  size_t total;
  if (__builtin_mul_overflow(count, size, &total) || profile_pass(total)) return swalloc_impl_calloc(count, size);
  return profile_sample(kind_calloc, NULL, total, 16);
}

/// realloc's result when it is a new block (the old one moved, or realloc(NULL, n)): counted down like a
/// malloc of `size` and, when sampled, handed to the Swift side, which records it (a huge span already) or moves
/// it into a span of its own. A realloc that stays within its block allocates nothing and is not counted: one
/// that grows a block in small steps within its room would otherwise count its whole size at every step.
static void *profile_realloc_result(void *pointer, void *result, size_t size) {
  if (result == NULL) return NULL;
  // In place: a new allocation only for a sampled block, whose span's room let it stay where an unsampled block
  // would have moved (its sample is dropped, and the resized block counts down as a new one).
  // A sampled block starts 16 KiB into its 4 MiB-aligned span (after the header; larger alignments, rarely
  // reallocated, are left out): a three-instruction filter before the lookup.
  if (result == pointer &&
      (((uintptr_t)pointer & ((1u << SWALLOC_SEGMENT_SHIFT) - 1)) != 16384 || !swalloc_impl_profile_forget(pointer))) {
    return result;
  }
  if (profile_pass(size)) return result;
  uintptr_t frames[SWALLOC_BACKTRACE_MAX];
  int count = swalloc_backtrace_capture(frames, SWALLOC_BACKTRACE_MAX, 1);
  return swalloc_impl_profile_adopt(result, size, frames, count);
}

static void *profile_realloc(void *pointer, size_t size) {
  return profile_realloc_result(pointer, swalloc_impl_realloc(pointer, size), size);
}

static void *profile_reallocarray(void *pointer, size_t count, size_t size) {
  // On overflow reallocarray fails (NULL): nothing is counted.
  return profile_realloc_result(pointer, swalloc_impl_reallocarray(pointer, count, size), count * size);
}

static int profile_posix_memalign(void **result, size_t alignment, size_t size) {
  if (alignment < sizeof(void *) || !is_power_of_two(alignment) || profile_pass(size)) {
    return swalloc_impl_posix_memalign(result, alignment, size);
  }
  int saved = errno;
  void *block = profile_sample(kind_aligned, NULL, size, alignment);
  if (!block) {
    errno = saved;
    return ENOMEM;
  }
  *result = block;
  return 0;
}

static void *profile_aligned_alloc(size_t alignment, size_t size) {
  if (!is_power_of_two(alignment) || profile_pass(size)) return swalloc_impl_aligned_alloc(alignment, size);
  return profile_sample(kind_aligned, NULL, size, alignment);
}

static void *profile_memalign(size_t alignment, size_t size) {
  if (!is_power_of_two(alignment) || alignment > ((size_t)1 << 40) || profile_pass(size)) {
    return swalloc_impl_memalign(alignment, size);
  }
  return profile_sample(kind_aligned, NULL, size, alignment);
}

static void *profile_valloc(size_t size) {
  if (profile_pass(size)) return swalloc_impl_valloc(size);
  return profile_sample(kind_aligned, NULL, size, 4096);
}

static void *profile_pvalloc(size_t size) {
  size_t rounded = size == 0 ? 4096 : (size + 4095) & ~(size_t)4095;
  if (size > SIZE_MAX - 4096 || profile_pass(rounded)) return swalloc_impl_pvalloc(size);
  return profile_sample(kind_aligned, NULL, rounded, 4096);
}

/// Called once, when the options turn profiling on. malloc chains onto the entry in effect (the default one,
/// secure mode's, or another hook's, such as guarded sampling's), so that hooks compose in either order.
__attribute__((visibility("hidden"))) void swalloc_select_profile_entries(int secure) {
  (void)secure;
  if (swalloc_malloc_entry == profile_malloc) return;
  profile_base_malloc = swalloc_malloc_entry;
  swalloc_calloc_entry = profile_calloc;
  swalloc_realloc_entry = profile_realloc;
  swalloc_reallocarray_entry = profile_reallocarray;
  swalloc_posix_memalign_entry = profile_posix_memalign;
  swalloc_aligned_alloc_entry = profile_aligned_alloc;
  swalloc_memalign_entry = profile_memalign;
  swalloc_valloc_entry = profile_valloc;
  swalloc_pvalloc_entry = profile_pvalloc;
  swalloc_malloc_entry = profile_malloc;
}

__attribute__((visibility("default"))) int swalloc_profile_dump(const char *path) {
  return swalloc_impl_profile_dump(path);
}
