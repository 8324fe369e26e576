// SwallocProfile without libswalloc.so as the process allocator (this test process): profiling is off, and a
// dump says so instead of writing anything. (Profiles written by libswalloc.so: SwallocPreloadTests.)
import Foundation
import Swalloc
import Testing

@Suite("SwallocProfile")
struct ProfileAPITests {
  @Test("without libswalloc.so, profiling is off and dump(to:) throws profilingOff, writing nothing")
  func dumpWithoutProfiler() throws {
    #expect(!SwallocProfile.isEnabled)
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("swalloc-profile-\(UUID().uuidString).pb.gz").path
    #expect(throws: SwallocProfile.DumpError.profilingOff) { try SwallocProfile.dump(to: path) }
    #expect(!FileManager.default.fileExists(atPath: path))
  }
}
