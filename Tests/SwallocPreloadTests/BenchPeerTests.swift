// swalloc-bench on a machine without the peer allocators, simulated: the peers' library directory and the
// package installer are the hidden options --peer-library-dir and --package-installer, so that the test
// never touches this machine's packages. Missing jemalloc: no ratios to jemalloc; as root, the peer is
// installed with a notice; not root, one line says how; --no-install opts out.
import Foundation
import Testing

@Suite("swalloc-bench installs its missing peers")
struct BenchPeerTests {
  /// `swalloc-bench --quick --only startup` on swalloc, jemalloc and glibc, with the peers looked for in
  /// `peerDirectory`.
  func runBench(peerDirectory: URL, _ extra: [String], environment: [String: String] = [:]) async throws -> ChildResult {
    let bench = try Preload.buildProduct("swalloc-bench")
    let arguments = ["run", "--quick", "--only", "startup", "--no-callgrind", "--allocator", "swalloc,jemalloc,glibc",
                     "--lib", try Preload.library(), "--peer-library-dir", peerDirectory.path] + extra
    return try await runChild("/usr/bin/env", ["-u", "SWALLOC_LIB", bench] + arguments, preload: nil,
                              environment: environment, timeout: defaultChildTimeout)
  }

  @Test("jemalloc missing and --no-install: the run goes on, ratios are to glibc, nothing is installed")
  func noInstall() async throws {
    let directory = try makeTemporaryDirectory("peers-none")
    defer { try? FileManager.default.removeItem(at: directory) }
    let result = try await runBench(peerDirectory: directory, ["--no-install", "--package-installer", "/bin/false"])
    #expect(result.succeeded, "\(result.summary)")
    #expect(result.standardError.contains("not installing jemalloc (--no-install)"), "\(result.summary)")
    #expect(result.standardOutput.contains("ratio = time / glibc's"), "\(result.summary)")
    #expect(!result.standardOutput.contains("jemalloc's"), "\(result.summary)")
    #expect(!result.standardOutput.contains("| jemalloc"), "a jemalloc column\n\(result.summary)")
    #expect(result.standardOutput.contains("MISSING jemalloc"), "\(result.summary)")
  }

  @Test("jemalloc missing, not root: one line says how to install it; the run goes on without it")
  func notRoot() async throws {
    let directory = try makeTemporaryDirectory("peers-user")
    defer { try? FileManager.default.removeItem(at: directory) }
    let result = try await runBench(peerDirectory: directory, ["--assume-not-root", "--package-installer", "/bin/false"])
    #expect(result.succeeded, "\(result.summary)")
    let lines = result.errorLines.filter { $0.hasPrefix("missing jemalloc") }
    #expect(lines == ["missing jemalloc: as root, run `apt-get install -y libjemalloc2` to compare against them "
                      + "(or pass --no-install)"], "\(result.summary)")
    #expect(result.standardOutput.contains("ratio = time / glibc's"), "\(result.summary)")
  }

  @Test("jemalloc missing, root: installed from the distribution with a notice, then compared against")
  func installsAsRoot() async throws {
    guard geteuid() == 0 else { try skipTest("needs root (the installer path runs only as root)") }
    let directory = try makeTemporaryDirectory("peers-root")
    defer { try? FileManager.default.removeItem(at: directory) }
    // A stand-in for apt-get: records its arguments and "installs" libjemalloc2 by copying a real preloadable
    // library (libswalloc.so) to the name the driver looks for.
    let log = directory.appendingPathComponent("installer.log").path
    let installer = directory.appendingPathComponent("fake-apt-get").path
    try """
      #!/bin/sh
      echo "$*" >> '\(log)'
      case "$*" in *libjemalloc2*) cp '\(try Preload.library())' '\(directory.path)/libjemalloc.so.2' ;; esac
      """.write(toFile: installer, atomically: true, encoding: .utf8)
    chmod(installer, 0o755)
    let result = try await runBench(peerDirectory: directory, ["--package-installer", installer])
    #expect(result.succeeded, "\(result.summary)")
    #expect(result.standardError.contains(
      "installing jemalloc from the distribution: apt-get install -y libjemalloc2 (--no-install to skip)"),
      "\(result.summary)")
    let calls = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
    #expect(calls == "update -qq\ninstall -y -qq libjemalloc2\n", "installer calls: \(calls)")
    #expect(result.standardOutput.contains("ratio = time / jemalloc's"), "\(result.summary)")
    #expect(!result.standardOutput.contains("MISSING jemalloc"), "\(result.summary)")
  }
}
