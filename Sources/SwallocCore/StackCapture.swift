// StackCapture: the call stacks that the heap profiler's samples and guarded sampling's blocks record. The frames
// come from the unwinder in CShim/Backtrace.c (libgcc's CFI unwinder for the program's frames, no frame pointers
// needed there; the library's own Swift frames by their frame pointers; no allocation).
import CShim

enum StackCapture {
  /// Frames kept per guarded-sampling stack.
  static let frameCapacity = 16

  /// Frames captured earlier (code addresses inside their call instructions, innermost first).
  struct Captured {
    var frames: UnsafePointer<UInt>?
    var count: Int

    static var none: Captured { Captured(frames: nil, count: 0) }
  }

  /// Stores the calling thread's stack into `frames` (room for `capacity`), innermost first, each address
  /// inside its call instruction; returns how many. In libswalloc.so the allocator's own frames are left out
  /// (the first frame is the program's call into the malloc family); the Swift API's copy of the core is
  /// linked into the program itself, so there its own frames stay at the top of the stack.
  @inline(never)
  static func capture(into frames: UnsafeMutablePointer<UInt>, capacity: Int) -> Int {
    #if hasFeature(Embedded)
    return Int(swalloc_backtrace_capture_from_swift(frames, Int32(truncatingIfNeeded: capacity)))
    #else
    return Int(swalloc_backtrace_capture(frames, Int32(truncatingIfNeeded: capacity), 0))
    #endif
  }

  /// Stores a stack into `frames` (room for `capacity`): the captured one if any, else the calling thread's,
  /// else the caller's return address (stored one byte back, inside the call, like the unwinder's frames);
  /// returns how many frames it stored.
  static func store(into frames: UnsafeMutablePointer<UInt>, capacity: Int, captured: Captured, caller: UInt)
    -> Int
  {
    if let source = captured.frames, captured.count > 0 {
      let count = Swift.min(captured.count, capacity)
      for index in 0..<count { frames[index] = source[index] }
      return count
    }
    if capacity <= 0 { return 0 }
    let count = capture(into: frames, capacity: capacity)
    if count > 0 || caller == 0 { return count }
    frames[0] = caller &- 1
    return 1
  }
}
