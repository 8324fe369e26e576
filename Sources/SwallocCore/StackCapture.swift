// StackCapture: the stacks that guarded sampling records when it hands out and takes back a guarded block.
// The frames come from the heap profiler's unwinder (CShim/Backtrace.c, swalloc_backtrace_capture), which
// must run in C frames: libswalloc.so's C entries (GuardedEntries.c) capture and hand the frames in. Where
// no capture ran (calloc, realloc and the aligned family, which enter through Swift; the Swift API's heaps),
// the stack is the one frame the entry knew, its caller, or none.
import CShim

enum StackCapture {
  /// Frames kept per stack.
  static let frameCapacity = 16

  /// Frames an entry point captured (code addresses inside their call instructions, innermost first).
  struct Captured {
    var frames: UnsafePointer<UInt>?
    var count: Int

    static var none: Captured { Captured(frames: nil, count: 0) }
  }

  /// Stores a stack into `frames` (room for `capacity`): the captured one, else the caller's return address
  /// (stored one byte back, inside the call, like the unwinder's frames); returns how many frames it stored.
  static func store(into frames: UnsafeMutablePointer<UInt>, capacity: Int, captured: Captured, caller: UInt)
    -> Int
  {
    if let source = captured.frames, captured.count > 0 {
      let count = Swift.min(captured.count, capacity)
      for index in 0..<count { frames[index] = source[index] }
      return count
    }
    if capacity <= 0 || caller == 0 { return 0 }
    frames[0] = caller &- 1
    return 1
  }
}
