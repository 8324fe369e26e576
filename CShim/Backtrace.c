// Backtrace.c: the calling thread's call stack as code addresses, for the heap profiler's samples (and guarded
// sampling). Works without frame pointers, in any thread and in signal handlers, without allocating or taking a
// lock that malloc could hold.
//
// The walk is libgcc's DWARF CFI unwinder (_Unwind_Backtrace), linked statically into libswalloc.so from
// libgcc_eh.a with its symbols kept local (Package.swift: ldd still shows libc alone). gcc 12's copy finds each
// frame's FDE through glibc's _dl_find_object (lock-free, async-signal-safe, no allocation) and the object's
// .eh_frame_hdr search table, and steps over signal frames by recognising glibc's __restore_rt. Its only
// allocating and locking code (the FDEs of objects registered with __register_frame_info) is skipped after one
// load: nothing registers objects with this hidden copy. The Swift API's build uses the process's libgcc_s.
//
// libgcc's walk needs call-frame information (.eh_frame) for every frame between the program and the unwinder,
// and Embedded Swift emits none (its functions are nounwind: .debug_frame only). The allocator's Swift frames
// all keep frame pointers, though, so swalloc_backtrace_capture_from_swift walks them by their frame pointers up
// to the program's call into the library; from there the program's frames are walked by their call-frame
// information, with cached frame rules (Unwind.c), or by libgcc, handed that frame's registers through a
// trampoline whose call-frame information names them (swalloc_unwind_trampoline below).
#include "CShim.h"

typedef struct cursor {
  uintptr_t *frames;
  int capacity;
  int count;
  /// Leading frames inside [skip_start, skip_end) are dropped (the library's own frames).
  uintptr_t skip_start;
  uintptr_t skip_end;
} cursor;

static _Unwind_Reason_Code step(struct _Unwind_Context *context, void *argument) {
  cursor *walk = argument;
  int before_instruction = 0;
  uintptr_t instruction = _Unwind_GetIPInfo(context, &before_instruction);
  if (instruction == 0) return _URC_END_OF_STACK;
  // A return address points after its call: step back into the call (not for a frame a signal interrupted,
  // whose address is the interrupted instruction itself).
  uintptr_t address = before_instruction ? instruction : instruction - 1;
  if (walk->count == 0 && address >= walk->skip_start && address < walk->skip_end) return _URC_NO_REASON;
  walk->frames[walk->count++] = address;
  return walk->count == walk->capacity ? _URC_END_OF_STACK : _URC_NO_REASON;
}

__attribute__((noinline)) int swalloc_backtrace_capture(uintptr_t *frames, int capacity, int skip_own_frames) {
  cursor walk = {frames, capacity < SWALLOC_BACKTRACE_MAX ? capacity : SWALLOC_BACKTRACE_MAX, 0, 0, 0};
  if (walk.capacity <= 0) return 0;
  if (skip_own_frames) swalloc_object_bounds((const void *)&swalloc_backtrace_capture, &walk.skip_start, &walk.skip_end);
  _Unwind_Backtrace(step, &walk);
  return walk.count;
}

/// Calls `function(argument)` with r12 = `stack` and r13 = `frame`, under call-frame information that says
/// this frame's caller returns to the address stored just below `stack`, with its stack pointer at `stack` and
/// its frame pointer `frame`: an unwinder that reaches this frame steps straight to that caller.
void swalloc_unwind_trampoline(uintptr_t stack, uintptr_t frame, void (*function)(void *), void *argument);
__asm__(
    ".text\n"
    ".p2align 4\n"
    ".globl swalloc_unwind_trampoline\n"
    ".hidden swalloc_unwind_trampoline\n"
    ".type swalloc_unwind_trampoline,@function\n"
    "swalloc_unwind_trampoline:\n"
    ".cfi_startproc\n"
    "  pushq %r12\n"
    ".cfi_adjust_cfa_offset 8\n"
    "  pushq %r13\n"
    ".cfi_adjust_cfa_offset 8\n"
    "  pushq %rbx\n"
    ".cfi_adjust_cfa_offset 8\n"
    "  movq %rdi, %r12\n"
    "  movq %rsi, %r13\n"
    "  movq %rcx, %rdi\n"
    ".cfi_remember_state\n"
    ".cfi_def_cfa %r12, 0\n"
    ".cfi_register %rbp, %r13\n"
    "  callq *%rdx\n"
    ".cfi_restore_state\n"
    "  popq %rbx\n"
    ".cfi_adjust_cfa_offset -8\n"
    "  popq %r13\n"
    ".cfi_adjust_cfa_offset -8\n"
    "  popq %r12\n"
    ".cfi_adjust_cfa_offset -8\n"
    "  retq\n"
    ".cfi_endproc\n"
    ".size swalloc_unwind_trampoline, .-swalloc_unwind_trampoline\n");

/// Walks the program's frames from the one that returns to `pc` with its stack pointer at `stack` and its
/// frame pointer `frame` (Unwind.c: cached frame rules, libgcc for the rest).
int swalloc_walk_frames(uintptr_t *frames, int capacity, uintptr_t pc, uintptr_t stack, uintptr_t frame);

/// swalloc_backtrace_capture for callers in the library's Swift code (see the top of this file): the frame
/// pointers lead from here to the first return address outside libswalloc.so, the program's call site; the
/// CFI walk starts there. Each frame is checked to lie a little above the last on the same stack; when the
/// chain breaks, the plain walk is tried (it stops at the first Swift frame).
__attribute__((noinline)) int swalloc_backtrace_capture_from_swift(uintptr_t *frames, int capacity) {
  uintptr_t start = 0, end = 0;
  if (capacity <= 0) return 0;
  swalloc_object_bounds((const void *)&swalloc_backtrace_capture_from_swift, &start, &end);
  uintptr_t *frame = (uintptr_t *)__builtin_frame_address(0);
  for (int depth = 0; depth < 64; depth++) {
    uintptr_t returnAddress = frame[1];
    if (returnAddress < start || returnAddress >= end) {
      return swalloc_walk_frames(frames, capacity, returnAddress, (uintptr_t)&frame[2], frame[0]);
    }
    uintptr_t *caller = (uintptr_t *)frame[0];
    uintptr_t distance = (uintptr_t)caller - (uintptr_t)frame;
    if (((uintptr_t)caller & 7) != 0 || distance == 0 || distance > (1u << 20)) break;
    frame = caller;
  }
  return swalloc_backtrace_capture(frames, capacity, 1);
}
