// The allocators compared: swalloc, jemalloc, mimalloc and tcmalloc through LD_PRELOAD, and glibc's own
// malloc with no preload. Finds each library and says which are missing instead of failing.
import Foundation

/// One allocator under test.
struct Allocator: Codable, Hashable, Sendable {
  /// Short name used in tables and options: swalloc, jemalloc, mimalloc, tcmalloc, glibc.
  let name: String
  /// The library put in LD_PRELOAD, or nil for glibc (no preload).
  let library: String?

  /// The environment a child needs to run on this allocator.
  var environment: [String: String] { library.map { ["LD_PRELOAD": $0] } ?? [:] }
}

/// An allocator that could not be used in this run, and why.
struct MissingAllocator: Codable, Sendable {
  let name: String
  let reason: String
}

/// Finds the allocators on this machine.
enum AllocatorCatalog {
  /// Every allocator name, in table order. jemalloc is the baseline the ratios are taken against.
  static let names = ["swalloc", "jemalloc", "mimalloc", "tcmalloc", "glibc"]
  /// The allocator the targets are checked for.
  static let subject = "swalloc"
  static let baseline = "jemalloc"

  /// The Debian/Ubuntu library file and package of each third-party allocator.
  static let thirdParty: [String: (file: String, package: String)] = [
    "jemalloc": ("libjemalloc.so.2", "libjemalloc2"),
    "mimalloc": ("libmimalloc.so.2", "libmimalloc2.0"),
    "tcmalloc": ("libtcmalloc_minimal.so.4", "libtcmalloc-minimal4"),
  ]

  /// Where the third-party libraries are looked for (PeerInstaller.configure may replace them, for tests).
  nonisolated(unsafe) static var libraryDirectories = [
    "/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib", "/usr/local/lib",
  ]

  /// The allocators named in `selection` (all when empty) that exist here, and the ones that do not.
  /// `swallocLibrary` is --lib, or nil to look in the default places.
  /// `NAME=PATH` entries of `selection` are any other preloadable library, run after the known ones.
  static func resolve(selection: [String], swallocLibrary: String?) throws -> (available: [Allocator], missing: [MissingAllocator]) {
    let custom = try selection.filter { $0.contains("=") }.map(customAllocator)
    let known = selection.filter { !$0.contains("=") }
    let unknown = known.filter { !names.contains($0) }
    guard unknown.isEmpty else {
      throw BenchError("unknown allocator \(unknown.joined(separator: ", ")); choose from \(names.joined(separator: ", ")) "
        + "or give NAME=PATH")
    }
    var available: [Allocator] = []
    var missing: [MissingAllocator] = []
    for name in names where (known.isEmpty && custom.isEmpty) || known.contains(name) {
      switch name {
      case "glibc":
        available.append(Allocator(name: name, library: nil))
      case "swalloc":
        let candidates = swallocLibrary.map { [BenchPaths.absolute($0)] } ?? BenchPaths.defaultSwallocCandidates
        // `swift run swalloc-bench` builds the driver, not the library under test: build it the first time.
        if swallocLibrary == nil && !candidates.contains(where: BenchPaths.exists) { buildSwallocLibrary() }
        if let found = candidates.first(where: BenchPaths.exists) {
          available.append(Allocator(name: name, library: found))
        } else {
          missing.append(MissingAllocator(name: name, reason: "libswalloc.so not found at "
            + candidates.joined(separator: " or ") + " (build it: swift build -c release --product swalloc)"))
        }
      default:
        let (file, package) = thirdParty[name]!
        if let directory = libraryDirectories.first(where: { BenchPaths.exists($0 + "/" + file) }) {
          available.append(Allocator(name: name, library: directory + "/" + file))
        } else {
          missing.append(MissingAllocator(name: name, reason: "\(file) not found (apt-get install -y \(package))"))
        }
      }
    }
    for allocator in custom {
      if BenchPaths.exists(allocator.library!) {
        available.append(allocator)
      } else {
        missing.append(MissingAllocator(name: allocator.name, reason: "\(allocator.library!) not found"))
      }
    }
    return (available, missing)
  }

  /// An allocator given as `NAME=PATH` (a library to preload; the name must be new).
  static func customAllocator(_ entry: String) throws -> Allocator {
    let parts = entry.split(separator: "=", maxSplits: 1).map(String.init)
    guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty,
          parts[0].allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" })
    else { throw BenchError("--allocator \(entry): expected NAME=PATH (NAME of letters, digits, - and _)") }
    guard !names.contains(parts[0]) else {
      throw BenchError("--allocator \(entry): \(parts[0]) is a built-in allocator; choose another name")
    }
    return Allocator(name: parts[0], library: BenchPaths.absolute(parts[1]))
  }

  /// Builds libswalloc.so in the package the driver was built from (`swift build -c release --product
  /// swalloc`), when that package is still there. Its output goes to stderr with the driver's progress.
  static func buildSwallocLibrary() {
    let root = BenchPaths.sourcePackageRoot
    guard BenchPaths.exists(root + "/Package.swift"), let swift = BenchPaths.which("swift") else { return }
    FileHandle.standardError.write(Data("building libswalloc.so: swift build -c release --product swalloc\n".utf8))
    let process = Process()
    process.executableURL = URL(fileURLWithPath: swift)
    process.arguments = ["build", "-c", "release", "--product", "swalloc", "--package-path", root]
    process.standardOutput = FileHandle.standardError
    do {
      try process.run()
      process.waitUntilExit()
    } catch {
      FileHandle.standardError.write(Data("could not run swift build: \(error)\n".utf8))
    }
  }
}
