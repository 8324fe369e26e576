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
// In C because the walk needs call-frame information for every frame between the program and the unwinder,
// and Embedded Swift emits none (its functions are nounwind: .debug_frame only). So the capture runs in C
// frames: the profiler's C entry points (Sources/SwallocExports/Profile.c) call it before entering Swift.
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
