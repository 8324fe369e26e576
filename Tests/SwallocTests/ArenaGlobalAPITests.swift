// The Swift API's arenas, global allocation, statistics and options, and what must not compile.
import Foundation
import Glibc
import Swalloc
import Testing

/// Bytes locked in memory by this process (VmLck in /proc/self/status).
func lockedKilobytes() -> Int {
  guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return -1 }
  for line in status.split(separator: "\n") where line.hasPrefix("VmLck:") {
    return Int(line.split(separator: " ", omittingEmptySubsequences: true)[1]) ?? -1
  }
  return -1
}

@Suite("SwallocArena")
struct ArenaAPITests {
  @Test("bump allocation honours sizes and alignments and never overlaps")
  func bumpAllocation() {
    var arena = SwallocArena(chunkByteCount: 64 * 1024)
    var ranges: [(UInt, Int)] = []
    for index in 0..<5000 {
      let alignment = 1 << (index % 8)
      let size = index % 300
      let block = arena.allocate(byteCount: size, alignment: alignment)
      #expect(Int(bitPattern: block) % alignment == 0)
      fill(block, size, seed: index)
      ranges.append((UInt(bitPattern: block), size))
    }
    for (index, (address, size)) in ranges.enumerated() {
      #expect(check(UnsafeMutableRawPointer(bitPattern: address)!, size, seed: index))
    }
    let sorted = ranges.filter { $0.1 > 0 }.sorted { $0.0 < $1.0 }
    for (previous, next) in zip(sorted, sorted.dropFirst()) { #expect(previous.0 + UInt(previous.1) <= next.0) }
    let statistics = arena.statistics
    #expect(statistics.allocationCount == 5000)
    #expect(statistics.chunkCount > 1)
    #expect(statistics.allocatedByteCount >= ranges.reduce(0) { $0 + $1.1 })
  }

  @Test("reset reuses the same memory, round after round")
  func resetReuses() {
    var arena = SwallocArena(chunkByteCount: 32 * 1024)
    var firstRound: [UnsafeMutableRawPointer] = []
    for round in 0..<5 {
      var addresses: [UnsafeMutableRawPointer] = []
      for index in 0..<2000 { addresses.append(arena.allocate(byteCount: 24 + index % 100)) }
      if round == 0 { firstRound = addresses } else { #expect(addresses == firstRound) }
      let chunks = arena.statistics.chunkCount
      arena.reset()
      #expect(arena.statistics.chunkCount == chunks)
      #expect(arena.statistics.allocatedByteCount == 0)
    }
    #expect(arena.statistics.resetCount == 5)
    #expect(arena.chunkByteCount == 32 * 1024)
    #expect(arena.backing == .normal)
    arena.reset(releasingMemory: true)
    #expect(arena.statistics.chunkCount == 1)
  }

  @Test("a request larger than a chunk, and large alignments")
  func largeRequests() {
    var arena = SwallocArena(chunkByteCount: 16 * 1024)
    let big = arena.allocate(byteCount: 1 << 20)
    fill(big, 1 << 20, seed: 3)
    let aligned = arena.allocate(byteCount: 100, alignment: 1 << 16)
    #expect(Int(bitPattern: aligned) % (1 << 16) == 0)
    let small = arena.allocate(byteCount: 8)
    #expect(check(big, 1 << 20, seed: 3))
    #expect(small != big)
    let value = arena.create(SIMD2<Int64>(7, 9))
    #expect(value.pointee == SIMD2(7, 9))
  }

  @Test("withArena returns the body's result and passes its errors through")
  func scoped() throws {
    let sum = withArena { arena in
      let values = arena.allocate(of: Int.self, count: 1000)
      for index in values.indices { values[index] = index }
      return values.reduce(0, +)
    }
    #expect(sum == 499_500)
    struct Failure: Error {}
    #expect(throws: Failure.self) {
      try withArena { (arena: inout SwallocArena) throws(Failure) -> Int in
        _ = arena.allocate(byteCount: 10)
        throw Failure()
      }
    }
  }

  @Test("transparent huge page backing maps whole 2 MiB chunks")
  func transparentBacking() {
    var arena = SwallocArena(chunkByteCount: 1 << 20, backing: .transparentHugePages)
    let block = arena.allocate(byteCount: 1000)
    fill(block, 1000, seed: 1)
    #expect(arena.statistics.mappedByteCount == 2 << 20)
    #expect(arena.statistics.fallbackCount == 0)
  }

  @Test("explicit huge pages: huge-page chunks, or a counted fallback when the kernel has none")
  func hugePageBacking() {
    var arena = SwallocArena(chunkByteCount: 1 << 20, backing: .hugePages)
    let block = arena.allocate(byteCount: 4096)
    fill(block, 4096, seed: 2)
    let statistics = arena.statistics
    #expect(statistics.hugePageByteCount == 2 << 20 || statistics.fallbackCount == 1)
    #expect(check(block, 4096, seed: 2))
  }

  @Test("locked backing locks its chunks (VmLck), or counts a fallback")
  func lockedBacking() {
    let before = lockedKilobytes()
    var arena = SwallocArena(chunkByteCount: 256 * 1024, backing: .locked)
    _ = arena.allocate(byteCount: 1000)
    let statistics = arena.statistics
    if statistics.fallbackCount == 0 {
      #expect(statistics.lockedByteCount >= 256 * 1024)
      #expect(lockedKilobytes() - before >= 256)
    } else {
      #expect(statistics.lockedByteCount == 0)
    }
  }
}

@Suite("SwallocGlobal, statistics and options")
struct GlobalAPITests {
  @Test("global allocation is the process allocator: free() accepts its blocks")
  func globalAllocation() {
    #expect(!SwallocGlobal.isSwallocProcessAllocator)  // the test process is not preloaded
    let block = SwallocGlobal.allocate(byteCount: 100)
    fill(block, 100, seed: 5)
    #expect(SwallocGlobal.usableSize(of: block) >= 100)
    let grown = SwallocGlobal.reallocate(block, byteCount: 100_000)
    #expect(check(grown, 100, seed: 5))
    free(grown)  // a malloc block: C's free is correct

    let aligned = SwallocGlobal.allocate(byteCount: 300, alignment: 4096)
    #expect(Int(bitPattern: aligned) % 4096 == 0)
    fill(aligned, 300, seed: 6)
    let moved = SwallocGlobal.reallocate(aligned, byteCount: 9000, alignment: 4096)
    #expect(Int(bitPattern: moved) % 4096 == 0)
    #expect(check(moved, 300, seed: 6))
    SwallocGlobal.deallocate(moved)

    let buffer = SwallocGlobal.allocate(of: UInt64.self, count: 1000)
    buffer.initialize(repeating: 3)
    #expect(buffer.reduce(0, +) == 3000)
    SwallocGlobal.deallocate(buffer)
    let zeroed = SwallocGlobal.allocateZeroed(byteCount: 4096)
    #expect(UnsafeRawBufferPointer(start: zeroed, count: 4096).allSatisfy { $0 == 0 })
    SwallocGlobal.deallocate(zeroed)
    SwallocGlobal.deallocate(nil)
    #expect(SwallocGlobal.purge() == 0)
  }

  @Test("statistics: no process statistics without libswalloc.so; heap statistics move with allocations")
  func statistics() {
    #expect(SwallocStatistics.process == nil)
    let before = SwallocStatistics.heaps
    let heap = SwallocHeap()
    for _ in 0..<1000 { _ = heap.allocate(byteCount: 40) }
    let after = SwallocStatistics.heaps
    #expect(after.allocationCount >= before.allocationCount + 1000)
    #expect(after.mappedByteCount > 0)
    #expect(after.residentByteCount > 0)
    heap.destroy()
  }

  @Test("options are read from the environment")
  func options() {
    let options = SwallocOptions.current
    let environment = ProcessInfo.processInfo.environment
    if environment["SWALLOC_PURGE_DELAY_MS"] == nil { #expect(options.purgeDelayMilliseconds == 10) }
    if environment["SWALLOC_HUGE_PAGES"] == nil { #expect(options.hugePages == .off) }
    if environment["SWALLOC_LOCKED"] == nil { #expect(!options.locked) }
    if environment["SWALLOC_SHOW_STATS"] == nil { #expect(options.showStatistics == .off) }
    if environment["SWALLOC_SECURE"] == nil { #expect(!options.secure) }
  }
}

@Suite("Swift API: what must not compile")
struct CompileTimeTests {
  /// The directory with Swalloc.swiftmodule: `Modules` next to the test bundle.
  static var modulesDirectory: String? {
    var directory = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
    for _ in 0..<4 {
      directory.deleteLastPathComponent()
      let candidate = directory.appendingPathComponent("Modules")
      if FileManager.default.fileExists(atPath: candidate.appendingPathComponent("Swalloc.swiftmodule").path) {
        return candidate.path
      }
    }
    return nil
  }

  /// Compiles `source` to SIL (where the move checker runs) against the built Swalloc module; returns the compiler's exit status and output.
  static func typecheck(_ source: String) throws -> (status: Int32, output: String) {
    let modules = try #require(modulesDirectory, "Swalloc.swiftmodule not found near the test binary")
    let file = FileManager.default.temporaryDirectory.appendingPathComponent("swalloc-misuse-\(getpid()).swift")
    try source.write(to: file, atomically: true, encoding: .utf8)
    defer { try? FileManager.default.removeItem(at: file) }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    // Swalloc's C shim: SwiftPM's module map for it sits in the build directory, next to `Modules`.
    let build = URL(fileURLWithPath: modules).deletingLastPathComponent()
    let moduleMap = build.appendingPathComponent("CShim.build/module.modulemap").path
    let headers = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
      .deletingLastPathComponent().appendingPathComponent("CShim/include").path
    process.arguments = ["swiftc", "-emit-sil", "-o", "/dev/null", "-I", modules, "-Xcc", "-fmodule-map-file=\(moduleMap)",
                         "-Xcc", "-I", "-Xcc", headers, file.path]
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    return (process.terminationStatus, output)
  }

  @Test("a heap cannot be used after destroy(), nor copied; an arena cannot be copied")
  func useAfterDestroy() throws {
    let valid = try Self.typecheck("""
      import Swalloc
      func f() { let heap = SwallocHeap(); _ = heap.allocate(byteCount: 8); heap.destroy() }
      """)
    #expect(valid.status == 0, "\(valid.output)")
    let afterDestroy = try Self.typecheck("""
      import Swalloc
      func f() { let heap = SwallocHeap(); heap.destroy(); _ = heap.allocate(byteCount: 8) }
      """)
    #expect(afterDestroy.status != 0)
    #expect(afterDestroy.output.contains("used after consume"), "\(afterDestroy.output)")
    let copied = try Self.typecheck("""
      import Swalloc
      func f() { let heap = SwallocHeap(); let other = heap; _ = heap.allocate(byteCount: 8); other.destroy() }
      """)
    #expect(copied.status != 0)
    let arenaCopied = try Self.typecheck("""
      import Swalloc
      func f() { var arena = SwallocArena(); let copy = arena; _ = arena.allocate(byteCount: 8); _ = copy }
      """)
    #expect(arenaCopied.status != 0)
  }
}
