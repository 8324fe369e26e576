// StackCapture: the stacks that guarded sampling records when it hands out and takes back a guarded block.
// One interface for the unwinder that heap profiling builds (issue 14): until that is merged, a stack is the
// one frame the entry point knows, its caller's return address.
import CShim

enum StackCapture {
  /// Frames kept per stack.
  static let frameCapacity = 16

  /// Stores up to `capacity` return addresses of the calling thread's stack into `frames`, innermost first,
  /// starting at the program's frame that called the allocator (`caller`, the return address the exported
  /// entry point saw; 0 when it did not know it). Returns how many it stored. Allocates nothing, takes no
  /// lock.
  @inline(never)
  static func capture(into frames: UnsafeMutablePointer<UInt>, capacity: Int, caller: UInt) -> Int {
    if capacity <= 0 || caller == 0 { return 0 }
    frames[0] = caller
    return 1
  }
}
