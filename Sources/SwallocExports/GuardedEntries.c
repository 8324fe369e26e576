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
void swalloc_impl_guarded_store_stack(void *block, const uintptr_t *frames, int count);
void swalloc_impl_guarded_free(void *pointer, uintptr_t caller, const uintptr_t *frames, int count);

/// Frames kept per stack (StackCapture.frameCapacity).
#define GUARDED_FRAMES 16

__attribute__((used)) static void *(*inner_malloc)(size_t);
__attribute__((used)) static void (*inner_free)(void *);

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

/// malloc when the countdown ran out: the sample, or the entry in effect when it declines. Its caller is
/// malloc's (guarded_malloc jumps here).
/// The stack is captured here, in C, after the sample was taken (the unwinder needs call-frame information
/// in every frame up to the program's, which Embedded Swift does not emit); libswalloc.so's own frames
/// (this one, C++'s operator new) are left out.
__attribute__((noinline, used)) static void *guarded_malloc_sample(size_t size) {
  void *block = swalloc_impl_guarded_sample(size, GUARDED_CALLER());
  if (block == NULL) return inner_malloc(size);
  uintptr_t frames[GUARDED_FRAMES];
  int count = swalloc_backtrace_capture(frames, GUARDED_FRAMES, 1);
  if (count > 0) swalloc_impl_guarded_store_stack(block, frames, count);
  return block;
}

/// free of a pointer in the guarded region. Its caller is free's (guarded_free jumps here).
__attribute__((noinline, used)) static void guarded_free_slow(void *pointer) {
  uintptr_t frames[GUARDED_FRAMES];
  int count = swalloc_backtrace_capture(frames, GUARDED_FRAMES, 1);
  swalloc_impl_guarded_free(pointer, GUARDED_CALLER(), frames, count);
}

/// malloc with sampling: a decrement of the thread's countdown and a branch on top of the entry in effect
/// (naked: SwiftPM compiles C with frame pointers, and a frame would cost six instructions more).
__attribute__((naked, used)) static void *guarded_malloc(size_t size) {
  __asm__ volatile(
      "movq swalloc_tls_guarded_countdown@gottpoff(%rip), %rax\n"
      "subq $1, %fs:(%rax)\n"
      "jle 1f\n"
      "jmp *inner_malloc(%rip)\n"
      "1: jmp guarded_malloc_sample\n");
}

/// free that recognizes guarded blocks: a subtraction and a comparison on top of the entry in effect.
__attribute__((naked, used)) static void guarded_free(void *pointer) {
  __asm__ volatile(
      "movq %rdi, %rax\n"
      "subq swalloc_guarded_region_start(%rip), %rax\n"
      "cmpq swalloc_guarded_region_length(%rip), %rax\n"
      "jb 1f\n"
      "jmp *inner_free(%rip)\n"
      "1: jmp guarded_free_slow\n");
}

/// Called once, when the options turn sampling on (after secure mode chose its entries).
SWALLOC_HIDDEN void swalloc_select_guarded_entries(void) {
  if (swalloc_malloc_entry == guarded_malloc) return;
  inner_malloc = swalloc_malloc_entry;
  inner_free = swalloc_free_entry;
  swalloc_malloc_entry = guarded_malloc;
  swalloc_free_entry = guarded_free;
}
