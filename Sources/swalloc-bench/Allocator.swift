// The allocators compared: swalloc, jemalloc, mimalloc and tcmalloc through LD_PRELOAD, and glibc's own
// malloc with no preload. Finds each library and says which are missing instead of failing.
import Foundation

/// One allocator under test.
struct Allocator: Codable, Hashable, Sendable {
  /// Short name used in tables and options: swalloc, jemalloc, mimalloc, tcmalloc, glibc.
  let name: String
  /// The library put in LD_PRELOAD, or nil for glibc (no preload).
  let library: String?
  /// Variables set for this allocator's runs only (--allocator-env NAME:VAR=VALUE), over the workload's own.
  var variables: [String: String] = [:]

  /// The environment a child needs to run on this allocator.
  var environment: [String: String] {
    variables.merging(library.map { ["LD_PRELOAD": $0] } ?? [:]) { $1 }
  }

  /// The same allocator with another library (the variables stay).
  func withLibrary(_ library: String?) -> Allocator {
    Allocator(name: name, library: library, variables: variables)
  }
}

/// The --allocator-env entries, NAME:VAR=VALUE, grouped by allocator name.
struct AllocatorEnvironment: Sendable {
  private(set) var variables: [String: [String: String]] = [:]

  init() {}

  /// Parses the entries in order (a later VAR for the same allocator wins).
  init(parsing entries: [String]) throws {
    for entry in entries {
      let (name, variable, value) = try Self.parse(entry)
      variables[name, default: [:]][variable] = value
    }
  }

  /// `NAME:VAR=VALUE`: NAME an allocator name, VAR a variable name, VALUE anything (commas, colons and `=`
  /// included: MALLOC_CONF's value has all three).
  static func parse(_ entry: String) throws -> (name: String, variable: String, value: String) {
    let usage = "--allocator-env \(entry): expected NAME:VAR=VALUE (e.g. swprof:SWALLOC_PROFILE=1)"
    guard let colon = entry.firstIndex(of: ":") else { throw BenchError(usage) }
    let name = String(entry[..<colon])
    let assignment = entry[entry.index(after: colon)...]
    guard let equals = assignment.firstIndex(of: "=") else { throw BenchError(usage) }
    let variable = String(assignment[..<equals])
    let value = String(assignment[assignment.index(after: equals)...])
    guard AllocatorCatalog.isValidName(name) else {
      throw BenchError(usage + "; NAME is an allocator name (letters, digits, - and _)")
    }
    guard let first = variable.unicodeScalars.first, first == "_" || (first.isASCII && first.properties.isAlphabetic),
          variable.unicodeScalars.allSatisfy({ $0 == "_" || ($0.isASCII && $0.properties.isAlphabetic)
            || ("0"..."9").contains($0) })
    else { throw BenchError(usage + "; VAR is a variable name (letters, digits and _, not starting with a digit)") }
    guard variable != "LD_PRELOAD" else {
      throw BenchError("--allocator-env \(entry): LD_PRELOAD is the allocator's library; give it with "
        + "--allocator NAME=PATH")
    }
    return (name, variable, value)
  }

  /// Throws when an entry names an allocator that is not among `selected`.
  func check(selected: [String]) throws {
    if let stray = variables.keys.sorted().first(where: { !selected.contains($0) }) {
      throw BenchError("--allocator-env \(stray):...: no allocator named \(stray) in this run (allocators: "
        + "\(selected.joined(separator: ", ")))")
    }
  }
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
  /// `environment` (--allocator-env) gives some of them variables of their own; it must name only allocators of
  /// the selection (the five built-in ones when `selection` is empty).
  static func resolve(selection: [String], swallocLibrary: String?, environment: AllocatorEnvironment = .init())
    throws -> (available: [Allocator], missing: [MissingAllocator])
  {
    let custom = try selection.filter { $0.contains("=") }.map(customAllocator)
    let known = selection.filter { !$0.contains("=") }
    let unknown = known.filter { !names.contains($0) }
    guard unknown.isEmpty else {
      throw BenchError("unknown allocator \(unknown.joined(separator: ", ")); choose from \(names.joined(separator: ", ")) "
        + "or give NAME=PATH")
    }
    try environment.check(selected: try selectedNames(selection))
    let (available, missing) = try resolveLibraries(known: known, custom: custom, swallocLibrary: swallocLibrary)
    return (available.map { allocator in
      var allocator = allocator
      allocator.variables = environment.variables[allocator.name] ?? [:]
      return allocator
    }, missing)
  }

  private static func resolveLibraries(known: [String], custom: [Allocator], swallocLibrary: String?)
    throws -> (available: [Allocator], missing: [MissingAllocator])
  {
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
    guard parts.count == 2, isValidName(parts[0]), !parts[1].isEmpty
    else { throw BenchError("--allocator \(entry): expected NAME=PATH (NAME of letters, digits, - and _)") }
    guard !names.contains(parts[0]) else {
      throw BenchError("--allocator \(entry): \(parts[0]) is a built-in allocator; choose another name")
    }
    return Allocator(name: parts[0], library: BenchPaths.absolute(parts[1]))
  }

  /// The names of the allocators `selection` asks for (the built-in ones when it is empty), found or not.
  static func selectedNames(_ selection: [String]) throws -> [String] {
    let custom = try selection.filter { $0.contains("=") }.map { try customAllocator($0).name }
    return (selection.isEmpty ? names : selection.filter { !$0.contains("=") }) + custom
  }

  /// Whether `name` can name an allocator: letters, digits, - and _.
  static func isValidName(_ name: String) -> Bool {
    !name.isEmpty && name.allSatisfy { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }
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
