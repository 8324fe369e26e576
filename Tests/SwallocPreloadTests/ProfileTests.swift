// The heap profiler (issue 14): its stack unwinder (swalloc_backtrace) through frames built without frame
// pointers, from another thread and from signal handlers; in the default and the secure mode.
import Foundation
import Testing

@Suite("Heap profiler")
struct ProfileTests {
  /// Both modes: every profiler test runs in each.
  static let modes: [[String: String]] = [[:], ["SWALLOC_SECURE": "1"]]

  @Test("the unwinder walks frames without frame pointers in a dlopen'ed library: direct, in a thread, in signal handlers",
        arguments: modes)
  func unwinder(mode: [String: String]) async throws {
    let library = try await FixtureBuilds.shared.build("unwind_library.c", as: .sharedLibrary)
    let program = try await FixtureBuilds.shared.build("unwind.c", as: .c)
    let result = try await runPreloaded(program, [library], environment: mode, timeout: shortChildTimeout)
    for label in ["direct", "thread", "raised signal", "timer signal"] {
      expectLine("unwind \(label) ok", in: result)
    }
    expectLine("unwind ok", in: result)
  }
}
