// What the child-process tests need from the machine, found or installed: a C and a C++ compiler (gcc/g++,
// else cc/c++, else the clang and clang++ beside `swift` in the toolchain), and stock programs (python3,
// perl, git, sqlite3, pkg-config, go for `go tool pprof`, readelf). On a fresh machine a missing one is
// installed from the distribution (apt-get, as root, with a notice), so that `swift test` needs no prior step; otherwise the test fails
// with the one-line command that installs it.
import Foundation
import Glibc

enum ToolInstaller {
  /// The Debian package that provides each program the tests run.
  static let packages = [
    "gcc": "gcc", "g++": "g++", "python3": "python3", "perl": "perl", "git": "git", "sqlite3": "sqlite3",
    "pkg-config": "pkg-config", "valgrind": "valgrind", "go": "golang-go", "readelf": "binutils",
  ]

  /// The compilers to try for a fixture kind, in order; the last ones are found beside `swift`.
  static func compilerNames(cxx: Bool) -> [String] { cxx ? ["g++", "c++", "clang++"] : ["gcc", "cc", "clang"] }

  /// The directory of the Swift toolchain's binaries (where its clang and clang++ are), from `swift` on PATH.
  static var toolchainDirectory: String? {
    let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
    for directory in path.split(separator: ":") where !directory.isEmpty {
      let swift = "\(directory)/swift"
      guard FileManager.default.isExecutableFile(atPath: swift), let resolved = realpath(swift, nil) else { continue }
      defer { free(resolved) }
      return (String(cString: resolved) as NSString).deletingLastPathComponent
    }
    return nil
  }

  private static let lock = NSLock()
  nonisolated(unsafe) private static var attempted: Set<String> = []

  /// Installs `package` with apt-get when this process is root and has not tried before; returns whether
  /// apt-get succeeded. Serialized: tests run in parallel.
  static func install(_ package: String, for program: String) -> Bool {
    lock.lock()
    defer { lock.unlock() }
    guard !attempted.contains(package) else { return false }
    attempted.insert(package)
    guard geteuid() == 0, FileManager.default.isExecutableFile(atPath: "/usr/bin/apt-get") else { return false }
    print("note: \(program) is missing; installing the Debian package \(package) (apt-get install -y \(package))")
    for arguments in [["update", "-qq"], ["install", "-y", "-qq", package]] {
      let process = Process()
      process.executableURL = URL(fileURLWithPath: "/usr/bin/apt-get")
      process.arguments = arguments
      process.environment = ProcessInfo.processInfo.environment.merging(["DEBIAN_FRONTEND": "noninteractive"]) { $1 }
      process.standardInput = FileHandle.nullDevice
      do {
        try process.run()
        process.waitUntilExit()
      } catch {
        return false
      }
      if arguments[0] == "install" { return process.terminationStatus == 0 }
    }
    return false
  }

  /// The one line that tells a person how to get `program`.
  static func instruction(for program: String) -> String {
    "\(program) is not installed; as root: apt-get install -y \(packages[program] ?? program)"
  }
}
