// Out of memory: under RLIMIT_AS, and with mmap failures injected by a preloaded mmap of our own, every
// allocation path fails with ENOMEM (C++ new: std::bad_alloc), nothing allocated before is damaged, and the
// allocator serves again once memory is freed or mmap works again.
import Foundation
import Testing

@Suite("Out of memory under the preload")
struct OutOfMemoryTests {
  @Test("RLIMIT_AS: malloc, calloc, realloc, posix_memalign, aligned_alloc fail with ENOMEM; frees make room again",
        arguments: Mode.allCases)
  func addressSpaceLimit(mode: Mode) async throws {
    let program = try await FixtureBuilds.shared.build("out_of_memory.c", as: .c)
    let result = try await runPreloaded(program, mode: mode, timeout: shortChildTimeout)
    expectLine("swalloc active", in: result)
    let okLine = result.standardOutput.split(separator: "\n").first { $0.hasPrefix("out-of-memory ok: ") }
    #expect(okLine != nil, "no ok line\n\(result.summary)")
  }

  /// Runs `program` with libfail_mmap.so preloaded after libswalloc.so, so that libswalloc.so's mmap calls
  /// bind to it (glibc's own mappings use internal calls and are never refused).
  private func runWithFailingMmap(
    _ program: String, environment: [String: String] = [:], mode: Mode
  ) async throws -> ChildResult {
    let injector = try await FixtureBuilds.shared.build("fail_mmap.c", as: .sharedLibrary)
    let preload = "\(try Preload.library()) \(injector)"
    return try await runPreloaded(
      program, environment: environment.merging(["LD_PRELOAD": preload]) { _, new in new }, mode: mode,
      timeout: shortChildTimeout)
  }

  /// Each failure path: a new thread's heap and first segment; small, medium, large and aligned blocks once the
  /// segments are full; huge malloc, calloc, realloc (blocks left intact), aligned_alloc, memalign, valloc,
  /// pvalloc, posix_memalign (ENOMEM returned and in errno, *memptr untouched); then a mixed workload while one or
  /// two mmap calls in three fail. Explicit huge pages are left out: the huge-page tests raise the machine's
  /// pool while they run, and this test's spans would take pages from it; their mapping goes through the same
  /// two-step `OSMemory.reserveAligned(flags:)` as locked memory, which is covered.
  @Test("injected mmap failures: every path returns NULL with ENOMEM, blocks stay intact, all served afterwards",
    arguments: Mode.allCases,
    [["SWALLOC_HUGE_PAGES": "off"], ["SWALLOC_LOCKED": "1"], ["SWALLOC_HUGE_PAGES": "transparent"]])
  func injectedMappingFailures(mode: Mode, options: [String: String]) async throws {
    let program = try await FixtureBuilds.shared.build("fail_mmap_paths.c", as: .c)
    let result = try await runWithFailingMmap(program, environment: options, mode: mode)
    expectLine("swalloc active", in: result)
    for path in ["malloc(1000)", "malloc(5000)", "calloc(3000)", "malloc(20000)", "malloc(300000)",
                 "aligned_alloc(3000)", "posix_memalign(4096)", "posix_memalign(40000)"] {
      #expect(result.outputLines.contains { $0.hasPrefix("exhausted \(path): ") && $0.hasSuffix(", then ENOMEM") },
              "no ENOMEM line for \(path)\n\(result.summary)")
    }
    expectLine("huge: every path failed with ENOMEM, then served", in: result)
    // libswalloc.so's mmap calls really went through the injector, and some were refused.
    let values = reportedValues(in: result)
    #expect((values["fail_mmap.calls"] ?? 0) > 0 && (values["fail_mmap.failures"] ?? 0) > 0,
            "libswalloc.so did not call the injected mmap\n\(result.summary)")
    #expect(result.outputLines.contains { $0.hasPrefix("fail-mmap ok: ") }, "no ok line\n\(result.summary)")
  }

  @Test("injected mmap failures: C++ new throws std::bad_alloc, nothrow new returns nullptr, the new-handler runs",
        arguments: Mode.allCases)
  func injectedMappingFailuresInOperatorNew(mode: Mode) async throws {
    let program = try await FixtureBuilds.shared.build("fail_mmap_new.cpp", as: .cxx)
    let result = try await runWithFailingMmap(program, mode: mode)
    expectLine("swalloc active", in: result)
    #expect(result.outputLines.contains { $0.hasPrefix("fail-mmap-new ok: ") }, "no ok line\n\(result.summary)")
  }
}
