// GuardedEntries.c: guarded sampling's hook on libswalloc.so's malloc and free (SWALLOC_GUARDED_SAMPLE,
// Sources/SwallocCore/GuardedSlots.swift). When sampling is on, the entry pointers of Exports.c point here;
// these wrappers count down to the next sample, recognize guarded blocks on free, and otherwise jump on to
// the entries that were in effect before (the default ones or secure mode's). When it is off, nothing here
// runs: the entry pointers keep their targets.
#include <stddef.h>
#include <stdint.h>

#include "CShim.h"

#define SWALLOC_HIDDEN __attribute__((visibility("hidden")))

extern void *(*swalloc_malloc_entry)(size_t);
extern void (*swalloc_free_entry)(void *);

// Implemented in Swift (Sources/SwallocPreload/Exports.swift -> GuardedSlots.swift).
void *swalloc_impl_guarded_sample(size_t size, uintptr_t caller);
void swalloc_impl_guarded_free(void *pointer, uintptr_t caller);

static void *(*inner_malloc)(size_t);
static void (*inner_free)(void *);

/// The code address that called malloc or free. When that is inside libswalloc.so itself (its C++ operator
/// new or delete, which call swalloc_malloc and swalloc_free), the first caller outside it, read through
/// the operators' frame pointers (Operators.cpp keeps them), each frame checked to lie a little above the
/// last on the same stack. Not an unwinder: full stacks come from StackCapture (GuardedSlots.swift).
__attribute__((always_inline)) static inline uintptr_t guarded_caller(uintptr_t returnAddress, void **frame) {
  extern char __ehdr_start[] SWALLOC_HIDDEN;
  extern char _end[] SWALLOC_HIDDEN;
  for (int depth = 0; depth < 4; depth++) {
    if (returnAddress < (uintptr_t)__ehdr_start || returnAddress >= (uintptr_t)_end) return returnAddress;
    void **callerFrame = (void **)frame[0];
    uintptr_t distance = (uintptr_t)callerFrame - (uintptr_t)frame;
    if (((uintptr_t)callerFrame & 7) != 0 || distance == 0 || distance > 4096) return returnAddress;
    returnAddress = (uintptr_t)callerFrame[1];
    frame = callerFrame;
  }
  return returnAddress;
}

#define GUARDED_CALLER() guarded_caller((uintptr_t)__builtin_return_address(0), (void **)__builtin_frame_address(0))

/// malloc with sampling: one thread-local decrement and a branch on top of the entry in effect.
__attribute__((noinline)) static void *guarded_malloc(size_t size) {
  long countdown = swalloc_tls_guarded_countdown - 1;
  swalloc_tls_guarded_countdown = countdown;
  if (__builtin_expect(countdown > 0, 1)) return inner_malloc(size);
  void *block = swalloc_impl_guarded_sample(size, GUARDED_CALLER());
  return block != NULL ? block : inner_malloc(size);
}

/// free that recognizes guarded blocks: one subtraction and comparison on top of the entry in effect.
__attribute__((noinline)) static void guarded_free(void *pointer) {
  if (__builtin_expect((uintptr_t)pointer - swalloc_guarded_region_start >= swalloc_guarded_region_length, 1)) {
    return inner_free(pointer);
  }
  swalloc_impl_guarded_free(pointer, GUARDED_CALLER());
}

/// Called once, when the options turn sampling on (after secure mode chose its entries).
SWALLOC_HIDDEN void swalloc_select_guarded_entries(void) {
  if (swalloc_malloc_entry == guarded_malloc) return;
  inner_malloc = swalloc_malloc_entry;
  inner_free = swalloc_free_entry;
  swalloc_malloc_entry = guarded_malloc;
  swalloc_free_entry = guarded_free;
}
