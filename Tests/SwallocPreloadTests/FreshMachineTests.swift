// What `swift test` relies on when the machine has only the Swift toolchain: the fixtures' C++ compiler can
// be the toolchain's clang++ (no g++), and a missing tool is named with the package that provides it.
import Foundation
import Testing

@Suite("A machine with only Swift")
struct FreshMachineTests {
  @Test("the C++ fixture builds with the toolchain's clang++ (the fallback when there is no g++ or c++) and runs preloaded")
  func toolchainClang() async throws {
    guard let toolchain = ToolInstaller.toolchainDirectory,
          FileManager.default.isExecutableFile(atPath: toolchain + "/clang++")
    else { try skipTest("no clang++ beside swift") }
    let directory = try makeTemporaryDirectory("clang")
    defer { try? FileManager.default.removeItem(at: directory) }
    let program = directory.appendingPathComponent("cxx_threads").path
    let compile = try await runChild(
      toolchain + "/clang++",
      FixtureKind.cxx.flags + ["-I", Preload.fixtures.path, "-I", Preload.publicHeaders.path, "-o", program,
                               Preload.fixture("cxx_threads.cpp"), "-ldl"], preload: nil, timeout: 180)
    #expect(compile.succeeded, "\(compile.summary)")
    let result = try await runPreloaded(program)
    expectLine("cxx ok: 8 threads, 20000 objects each, failure paths checked", in: result)
  }

  @Test("compilers are tried in order: gcc/g++, cc/c++, then clang/clang++")
  func compilerOrder() {
    #expect(ToolInstaller.compilerNames(cxx: true) == ["g++", "c++", "clang++"])
    #expect(ToolInstaller.compilerNames(cxx: false) == ["gcc", "cc", "clang"])
  }

  @Test("a missing tool is named with the command that installs it")
  func instruction() {
    #expect(ToolInstaller.instruction(for: "sqlite3") == "sqlite3 is not installed; as root: apt-get install -y sqlite3")
    #expect(Preload.findTool("no-such-tool-swalloc") == nil)
  }
}
