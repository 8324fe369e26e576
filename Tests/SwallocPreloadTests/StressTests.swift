// The swalloc-stress executable (built next to libswalloc.so) under the preload: four threads, random sizes,
// cross-thread frees and verified contents for five seconds.
import Foundation
import Testing

@Suite("Stress under the preload")
struct StressTests {
  @Test("swalloc-stress --threads 4 --seconds 5", arguments: Mode.withFull)
  func stress(mode: Mode) async throws {
    let stress = try Preload.buildProduct("swalloc-stress")
    let result = try await runPreloaded(stress, ["--threads", "4", "--seconds", "5"], mode: mode)
    let line = result.outputLines.first { $0.hasPrefix("swalloc-stress: ") } ?? ""
    #expect(line.wholeMatch(of: #/swalloc-stress: [0-9]+ ops, 4 threads, [0-9.]+ s, ok/#) != nil,
            "\(result.summary)")
  }
}
