// What the main job needs on a fresh machine, installed from the distribution: the peer allocators
// (jemalloc, mimalloc, tcmalloc), valgrind for the instruction counts, and the programs of the real-program
// workloads (gcc, python3, sqlite3), as mimalloc-bench's build-bench-env.sh does with the package manager.
// As root it runs apt-get with a notice; otherwise it prints the one command to run; --no-install skips it.
import ArgumentParser
import Foundation
import Glibc

/// --no-install, and hidden options that let tests describe another machine (where the peer libraries are
/// looked for, the package installer, not being root).
struct PeerOptions: ParsableArguments {
  @Flag(name: .customLong("no-install"), help: ArgumentHelp(
    "Do not install missing peers (jemalloc, mimalloc, tcmalloc, valgrind, gcc, python3, sqlite3) with apt-get; "
      + "run without them."))
  var noInstall = false

  @Option(name: .customLong("peer-library-dir"), help: ArgumentHelp(
    "Look for the peer allocators' libraries here instead of the system's library directories (repeatable).",
    valueName: "dir", visibility: .hidden))
  var peerLibraryDirectories: [String] = []

  @Option(name: .customLong("package-installer"), help: ArgumentHelp(
    "Run this instead of apt-get (as `PROGRAM update` and `PROGRAM install -y PACKAGE...`).",
    valueName: "program", visibility: .hidden))
  var packageInstaller: String?

  @Flag(name: .customLong("assume-not-root"), help: ArgumentHelp(
    "Behave as when not running as root.", visibility: .hidden))
  var assumeNotRoot = false
}

/// A program or library the run needs, and the Debian package that provides it.
struct Peer {
  var name: String
  var package: String
  var isPresent: () -> Bool
}

enum PeerInstaller {
  /// Applies the options that describe the machine (before any allocator is looked up).
  static func configure(_ options: PeerOptions) {
    if !options.peerLibraryDirectories.isEmpty {
      AllocatorCatalog.libraryDirectories = options.peerLibraryDirectories.map(BenchPaths.absolute)
    }
  }

  /// The peers a run of `workloads` (plus callgrind when `callgrind`) on `allocatorNames` (all when empty)
  /// needs.
  static func peers(allocatorNames: [String], workloads: [Workload], callgrind: Bool) -> [Peer] {
    var peers: [Peer] = []
    for name in ["jemalloc", "mimalloc", "tcmalloc"] where allocatorNames.isEmpty || allocatorNames.contains(name) {
      let (file, package) = AllocatorCatalog.thirdParty[name]!
      peers.append(Peer(name: name, package: package) {
        AllocatorCatalog.libraryDirectories.contains { BenchPaths.exists($0 + "/" + file) }
      })
    }
    func program(_ name: String, _ package: String) -> Peer {
      Peer(name: name, package: package) { BenchPaths.which(name) != nil }
    }
    if callgrind { peers.append(program("valgrind", "valgrind")) }
    for workload in workloads {
      switch workload.recipe {
      case .gcc: peers.append(program("gcc", "gcc"))
      case .python: peers.append(program("python3", "python3"))
      case .sqlite: peers.append(program("sqlite3", "sqlite3"))
      default: break
      }
    }
    // The workloads are C programs: a C compiler (gcc provides cc), unless the toolchain's clang serves.
    if BenchPaths.which(ProcessInfo.processInfo.environment["CC"] ?? "cc") == nil && BenchPaths.toolchainClang == nil {
      peers.append(program("gcc", "gcc"))
    }
    var seen: Set<String> = []
    return peers.filter { seen.insert($0.package).inserted }
  }

  /// Installs the missing `peers` (as root, with a notice), or says in one line how to; never fails the run.
  static func installMissing(_ peers: [Peer], options: PeerOptions) {
    let missing = peers.filter { !$0.isPresent() }
    guard !missing.isEmpty else { return }
    let names = missing.map(\.name).joined(separator: ", ")
    let packages = missing.map(\.package)
    let command = "apt-get install -y " + packages.joined(separator: " ")
    if options.noInstall {
      Session.progress("not installing \(names) (--no-install); to compare against them: \(command)\n")
      return
    }
    let installer = options.packageInstaller.map(BenchPaths.absolute) ?? BenchPaths.which("apt-get")
    guard let installer else {
      Session.progress("missing \(names): install the packages \(packages.joined(separator: " ")) "
        + "with this system's package manager (or pass --no-install)\n")
      return
    }
    guard geteuid() == 0 && !options.assumeNotRoot else {
      Session.progress("missing \(names): as root, run `\(command)` to compare against them (or pass --no-install)\n")
      return
    }
    Session.progress("installing \(names) from the distribution: \(command) (--no-install to skip)\n")
    let environment = ProcessInfo.processInfo.environment.merging(["DEBIAN_FRONTEND": "noninteractive"]) { $1 }
    for arguments in [["update", "-qq"], ["install", "-y", "-qq"] + packages] {
      let process = Process()
      process.executableURL = URL(fileURLWithPath: installer)
      process.arguments = arguments
      process.environment = environment
      process.standardInput = FileHandle.nullDevice
      process.standardOutput = FileHandle.standardError
      do {
        try process.run()
        process.waitUntilExit()
      } catch {
        Session.progress("could not run \(installer): \(error)\n")
        return
      }
      if process.terminationStatus != 0 {
        Session.progress("\(installer) \(arguments.joined(separator: " ")) failed (status "
          + "\(process.terminationStatus)); going on without \(names)\n")
        return
      }
    }
    let stillMissing = missing.filter { !$0.isPresent() }.map(\.name)
    if !stillMissing.isEmpty { Session.progress("still missing after the install: \(stillMissing.joined(separator: ", "))\n") }
  }
}

extension BenchPaths {
  /// The clang beside `swiftc` (every Swift toolchain has one): the C compiler when there is no `cc`.
  static var toolchainClang: String? {
    guard let swiftc = which("swiftc") else { return nil }
    let clang = (canonical(swiftc) as NSString).deletingLastPathComponent + "/clang"
    return FileManager.default.isExecutableFile(atPath: clang) ? clang : nil
  }
}
