// The child-process harness: finds libswalloc.so and the build's tools, compiles the C/C++ fixtures, runs a
// program under LD_PRELOAD behind a kill timeout, and checks the statistics block that proves swalloc was loaded.
import Foundation
import Glibc
import Testing

// MARK: - Locations

enum Preload {
  /// The package root, three levels above this file (Tests/SwallocPreloadTests/PreloadHarness.swift).
  static let packageRoot = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

  static let fixtures = packageRoot.appendingPathComponent("Tests/SwallocPreloadTests/Fixtures")

  static func fixture(_ name: String) -> String { fixtures.appendingPathComponent(name).path }

  /// The library's public C headers (swalloc.h), on the fixtures' include path.
  static let publicHeaders = packageRoot.appendingPathComponent("CShim/include")

  /// The directories a build product may sit in: those of the running test binary and their ancestors, up to
  /// the `.build` folder or package root. `swift test` runs `.build/<triple>/debug/<Package>PackageTests.xctest`,
  /// which sits next to libswalloc.so and swalloc-stress.
  static var testBinaryAncestors: [URL] {
    var starts = [Bundle.main.bundlePath]
    if let first = CommandLine.arguments.first { starts.append(first) }
    if let executable = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
      starts.append(executable)
    }
    var directories: [URL] = []
    for start in starts {
      var directory = URL(fileURLWithPath: start).standardizedFileURL.resolvingSymlinksInPath()
      if !isDirectory(directory.path) { directory.deleteLastPathComponent() }
      while true {
        if !directories.contains(directory) { directories.append(directory) }
        let isTop = directory.lastPathComponent == ".build"
          || FileManager.default.fileExists(atPath: directory.appendingPathComponent("Package.swift").path)
        let parent = directory.deletingLastPathComponent()
        if isTop || parent.path == directory.path { break }
        directory = parent
      }
    }
    return directories
  }

  /// The library to preload: `$SWALLOC_LIB`, else the `libswalloc.so` nearest above the test binary, else
  /// `<package>/.build/release/libswalloc.so`. Throws (failing the test) when none exists: the loader would
  /// silently ignore a missing preload file.
  static func library() throws -> String {
    if let path = ProcessInfo.processInfo.environment["SWALLOC_LIB"], !path.isEmpty {
      guard FileManager.default.isReadableFile(atPath: path) else {
        throw HarnessError("SWALLOC_LIB is set to \(path), which does not exist")
      }
      return URL(fileURLWithPath: path).standardizedFileURL.path
    }
    var candidates = testBinaryAncestors.map { $0.appendingPathComponent("libswalloc.so").path }
    candidates.append(packageRoot.appendingPathComponent(".build/release/libswalloc.so").path)
    if let found = candidates.first(where: FileManager.default.isReadableFile(atPath:)) { return found }
    throw HarnessError("libswalloc.so not found; set SWALLOC_LIB or build it. Looked in:\n"
      + candidates.joined(separator: "\n"))
  }

  /// A build product that sits next to the library (the same build folder), e.g. `swalloc-stress`.
  static func buildProduct(_ name: String) throws -> String {
    var directories = [URL(fileURLWithPath: try library()).deletingLastPathComponent()]
    directories += testBinaryAncestors
    let candidates = directories.map { $0.appendingPathComponent(name).path }
    if let found = candidates.first(where: FileManager.default.isExecutableFile(atPath:)) { return found }
    throw HarnessError("build product \(name) not found. Looked in:\n" + candidates.joined(separator: "\n"))
  }

  /// A stock tool such as `python3`: /usr/bin, /bin or /usr/local/bin first (not a version manager's shim),
  /// then `$PATH`. When it is missing, installs its package as root (ToolInstaller), else throws with the
  /// command that installs it.
  static func tool(_ name: String) throws -> String {
    if let found = findTool(name) { return found }
    // Tests run in parallel: another test may be installing it right now (install is serialized and tries
    // once), so look again after the attempt, whoever made it.
    if let package = ToolInstaller.packages[name] {
      _ = ToolInstaller.install(package, for: name)
      if let found = findTool(name) { return found }
    }
    throw HarnessError(ToolInstaller.instruction(for: name))
  }

  /// `name` in /usr/bin, /bin, /usr/local/bin, `$PATH`, then `extraDirectories`; nil when absent.
  static func findTool(_ name: String, extraDirectories: [String] = []) -> String? {
    let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
    let directories = ["/usr/bin", "/bin", "/usr/local/bin"] + path.split(separator: ":").map(String.init)
      + extraDirectories
    for directory in directories where !directory.isEmpty {
      let candidate = URL(fileURLWithPath: directory).appendingPathComponent(name).path
      if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
    }
    return nil
  }

  /// The compiler for C (`cxx` false) or C++ fixtures: gcc/g++, cc/c++, or the toolchain's clang/clang++;
  /// when none exists, gcc/g++ installed as root (ToolInstaller).
  static func compiler(cxx: Bool) throws -> String {
    let names = ToolInstaller.compilerNames(cxx: cxx)
    let toolchain = ToolInstaller.toolchainDirectory.map { [$0] } ?? []
    for name in names {
      if let found = findTool(name, extraDirectories: toolchain) { return found }
    }
    return try tool(names[0])
  }

  private static func isDirectory(_ path: String) -> Bool {
    var isDirectory: ObjCBool = false
    return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory.boolValue
  }
}

struct HarnessError: Error, CustomStringConvertible {
  let description: String
  init(_ description: String) { self.description = description }
}

/// A fresh directory under the system temporary directory; the caller removes it.
func makeTemporaryDirectory(_ label: String) throws -> URL {
  let name = "swalloc-preload-\(label)-\(ProcessInfo.processInfo.processIdentifier)-\(UUID().uuidString)"
  let directory = FileManager.default.temporaryDirectory.appendingPathComponent(name)
  try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
  return directory
}

// MARK: - Child processes

/// The seconds a child may run before `timeout -s KILL` ends it; generous because CI machines are slow and shared.
let defaultChildTimeout = 240

/// The kill timeout for fixtures that finish in a few seconds.
let shortChildTimeout = 60

struct ChildResult {
  var commandLine: String
  /// The exit status, or the signal number when `signaled`.
  var status: Int32
  /// Whether the child died of a signal. `timeout` passes a child's death by signal on by raising the same
  /// signal, and kills itself along with the child when the time runs out (SIGKILL).
  var signaled: Bool
  var standardOutput: String
  var standardError: String
  var timeoutSeconds: Int

  var succeeded: Bool { !signaled && status == 0 }

  /// stdout split at newlines; output that ends with a newline ends with an empty line.
  var outputLines: [String] {
    standardOutput.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
  }

  /// The non-empty lines of stderr.
  var errorLines: [String] { standardError.split(separator: "\n").map(String.init) }

  /// How the child ended, in words.
  var ending: String {
    if !signaled { return "exit status \(status)" }
    if status == SIGKILL { return "killed by SIGKILL: it ran past its \(timeoutSeconds) s timeout" }
    return "killed by signal \(status) (\(String(cString: strsignal(status))))"
  }

  /// The command, how it ended and the ends of both streams, for failure messages.
  var summary: String {
    func tail(_ text: String) -> String {
      text.count > 6000 ? "[...]" + text.suffix(6000) : text
    }
    return """
      $ \(commandLine)
      \(ending)
      --- stdout ---
      \(tail(standardOutput))
      --- stderr ---
      \(tail(standardError))
      """
  }
}

/// An expectation on a result shows how the child ended; its comment carries the full summary.
extension ChildResult: CustomTestStringConvertible {
  var testDescription: String { ending }
}

/// Runs `program` as `/usr/bin/timeout -s KILL <timeout> /usr/bin/env [LD_PRELOAD=<preload> SWALLOC_SHOW_STATS=1]
/// [environment] <program> <arguments>`, so that neither `timeout` nor `env` is preloaded and a hang ends as a
/// failed test. Without `preload`, LD_PRELOAD is removed from the child's environment. With it, the SWALLOC_*
/// variables of the test's own environment (SWALLOC_LIB, a developer's options) are removed, so the child sees
/// exactly the options the test gives. Output goes to files (no pipe can fill up and deadlock), and the wait
/// does not block a thread.
func runChild(
  _ program: String, _ arguments: [String] = [], preload: String?, environment: [String: String] = [:],
  in directory: URL? = nil, timeout: Int = defaultChildTimeout
) async throws -> ChildResult {
  var envArguments: [String] = []
  if let preload {
    let inherited = ProcessInfo.processInfo.environment.keys.filter { $0.hasPrefix("SWALLOC_") }.sorted()
    envArguments += inherited.flatMap { ["-u", $0] }
    envArguments += ["LD_PRELOAD=\(preload)", "SWALLOC_SHOW_STATS=1"]
  } else {
    envArguments += ["-u", "LD_PRELOAD"]
  }
  envArguments += environment.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
  let timeoutArguments = ["-s", "KILL", String(timeout), "/usr/bin/env"] + envArguments + [program] + arguments

  let outputDirectory = try makeTemporaryDirectory("output")
  defer { try? FileManager.default.removeItem(at: outputDirectory) }
  let outputURL = outputDirectory.appendingPathComponent("stdout")
  let errorURL = outputDirectory.appendingPathComponent("stderr")
  for url in [outputURL, errorURL] where !FileManager.default.createFile(atPath: url.path, contents: nil) {
    throw HarnessError("cannot create \(url.path)")
  }
  let output = try FileHandle(forWritingTo: outputURL)
  let error = try FileHandle(forWritingTo: errorURL)
  defer {
    try? output.close()
    try? error.close()
  }

  let process = Process()
  process.executableURL = URL(fileURLWithPath: "/usr/bin/timeout")
  process.arguments = timeoutArguments
  if let directory { process.currentDirectoryURL = directory }
  process.standardInput = FileHandle.nullDevice
  process.standardOutput = output
  process.standardError = error
  let (status, signaled): (Int32, Bool) = try await withCheckedThrowingContinuation { continuation in
    process.terminationHandler = { finished in
      continuation.resume(returning: (finished.terminationStatus, finished.terminationReason == .uncaughtSignal))
    }
    do {
      try process.run()
    } catch {
      process.terminationHandler = nil
      continuation.resume(throwing: error)
    }
  }
  let commandLine = (["/usr/bin/timeout"] + timeoutArguments).joined(separator: " ")
  return ChildResult(
    commandLine: directory.map { "(cd \($0.path) && \(commandLine))" } ?? commandLine,
    status: status,
    signaled: signaled,
    standardOutput: String(decoding: try Data(contentsOf: outputURL), as: UTF8.self),
    standardError: String(decoding: try Data(contentsOf: errorURL), as: UTF8.self),
    timeoutSeconds: timeout)
}

/// How a preloaded child proves that swalloc was active.
enum ActivityProof {
  /// A `swalloc: statistics` block with allocations > 0 on stderr (SWALLOC_SHOW_STATS=1, the default).
  case statistics
  /// The fixture's own `swalloc active` stdout line (fixtureReportSwalloc), for runs whose options print no
  /// statistics table.
  case fixtureProbe
}

/// The two modes of the library. Every test of the C semantics, alignments, torture, stress and
/// out-of-memory paths runs in both: a path that only secure mode takes is otherwise tested by nothing, and a
/// secure-mode abort of a correct program is a release-blocking bug (issue 12). `secureFull` is
/// SWALLOC_SECURE=full, secure mode with its per-block checks: not in `allCases`; the valid programs that
/// exercise every block shape (semantics, alignment sweep, stress, misuse's valid mode) also run in it
/// (`withFull`).
enum Mode: String, CaseIterable, Sendable, CustomTestStringConvertible {
  case standard = "default"
  case secure
  case secureFull = "secure-full"

  static let allCases: [Mode] = [.standard, .secure]
  static let withFull: [Mode] = [.standard, .secure, .secureFull]

  var environment: [String: String] {
    switch self {
    case .standard: [:]
    case .secure: ["SWALLOC_SECURE": "1"]
    case .secureFull: ["SWALLOC_SECURE": "full"]
    }
  }
  var testDescription: String { rawValue }

  /// How secure mode's abort messages end at this level (`Secure.abortingAtLevel`).
  var abortSuffix: String {
    switch self {
    case .standard: ""
    case .secure: "; aborting (SWALLOC_SECURE=1)"
    case .secureFull: "; aborting (SWALLOC_SECURE=full)"
    }
  }
}

/// Runs `program` under the preloaded libswalloc.so in `mode` and records a failure unless it exited 0 and
/// swalloc proved itself active (in secure mode: its statistics say so). Returns the result for further checks.
@discardableResult
func runPreloaded(
  _ program: String, _ arguments: [String] = [], environment: [String: String] = [:], mode: Mode = .standard,
  in directory: URL? = nil, timeout: Int = defaultChildTimeout, proof: ActivityProof = .statistics,
  sourceLocation: SourceLocation = #_sourceLocation
) async throws -> ChildResult {
  let result = try await runChild(
    program, arguments, preload: try Preload.library(),
    environment: environment.merging(mode.environment) { _, new in new }, in: directory, timeout: timeout)
  #expect(result.succeeded, "the preloaded program failed\n\(result.summary)", sourceLocation: sourceLocation)
  switch proof {
  case .statistics:
    assertSwallocActive(result, sourceLocation: sourceLocation)
    if mode != .standard {
      // The row's value is the level: 1, or 2 at full.
      let levels = statisticsValues("secure mode", in: result)
      #expect(!levels.isEmpty && levels.allSatisfy { $0 == (mode == .secureFull ? 2 : 1) },
              "no \"secure mode\" row of the level: secure mode was not on\n\(result.summary)",
              sourceLocation: sourceLocation)
    }
  case .fixtureProbe: expectLine("swalloc active", in: result, sourceLocation: sourceLocation)
  }
  return result
}

/// Records a failure unless `expected` is one of the child's stdout lines.
func expectLine(_ expected: String, in result: ChildResult, sourceLocation: SourceLocation = #_sourceLocation) {
  #expect(result.outputLines.contains(expected), "missing stdout line \"\(expected)\"\n\(result.summary)",
          sourceLocation: sourceLocation)
}

/// The figures a fixture reports on stdout as `<label> key=value key=value ...` lines (integer values), keyed
/// `label.key`. Lines of any other shape are skipped; a repeated key keeps its last value.
func reportedValues(in result: ChildResult) -> [String: Int] {
  var values: [String: Int] = [:]
  for line in result.outputLines {
    let words = line.split(separator: " ")
    guard words.count >= 2, !words[0].contains("=") else { continue }
    var pairs: [(String, Int)] = []
    for word in words.dropFirst() {
      guard let match = word.wholeMatch(of: #/([A-Za-z_][A-Za-z0-9_-]*)=(-?[0-9]+)/#), let value = Int(match.2)
      else { break }
      pairs.append(("\(words[0]).\(match.1)", value))
    }
    guard pairs.count == words.count - 1 else { continue }
    for (key, value) in pairs { values[key] = value }
  }
  return values
}

// MARK: - Proof that swalloc was loaded

/// One `swalloc: statistics (pid N)` block that libswalloc.so prints to stderr at exit with SWALLOC_SHOW_STATS=1.
struct StatisticsBlock {
  var pid: Int
  /// From the block's `swalloc:   allocations   N` line; nil when the block has none.
  var allocationCount: Int?
}

/// The statistics blocks in `standardError`, in order. Other output may be interleaved between their lines;
/// an `allocations` line belongs to the latest header that has none yet.
func statisticsBlocks(in standardError: String) -> [StatisticsBlock] {
  var blocks: [StatisticsBlock] = []
  for line in standardError.split(separator: "\n") where line.hasPrefix("swalloc: ") {
    if let header = line.wholeMatch(of: #/swalloc: statistics \(pid ([0-9]+)\)\s*/#) {
      blocks.append(StatisticsBlock(pid: Int(header.1) ?? -1, allocationCount: nil))
    } else if let count = line.prefixMatch(of: #/swalloc: +allocations +([0-9]+)/#),
      let index = blocks.lastIndex(where: { $0.allocationCount == nil })
    {
      blocks[index].allocationCount = Int(count.1)
    }
  }
  return blocks
}

/// Records a failure unless stderr holds a statistics block with a positive allocation count: proof that
/// libswalloc.so was loaded and served allocations (the loader ignores a missing preload file silently).
/// With `pid`, that process's own block must be the one. Returns all blocks.
@discardableResult
func assertSwallocActive(
  _ standardError: String, pid: Int? = nil, context: @autoclosure () -> String = "",
  sourceLocation: SourceLocation = #_sourceLocation
) -> [StatisticsBlock] {
  let blocks = statisticsBlocks(in: standardError)
  let candidates = pid.map { pid in blocks.filter { $0.pid == pid } } ?? blocks
  let active = candidates.contains { ($0.allocationCount ?? 0) > 0 }
  if !active {
    let what = pid.map { "for pid \($0) " } ?? ""
    let found = blocks.isEmpty
      ? "none"
      : blocks.map { "pid \($0.pid): \($0.allocationCount.map(String.init) ?? "no count")" }.joined(separator: ", ")
    let details = context()
    Issue.record(
      """
      swalloc was not active: no "swalloc: statistics" block \(what)with allocations > 0 on stderr \
      (blocks: \(found))
      \(details.isEmpty ? "--- stderr ---\n" + standardError.suffix(6000) : details)
      """, sourceLocation: sourceLocation)
  }
  return blocks
}

func assertSwallocActive(
  _ result: ChildResult, pid: Int? = nil, sourceLocation: SourceLocation = #_sourceLocation
) {
  assertSwallocActive(result.standardError, pid: pid, context: result.summary, sourceLocation: sourceLocation)
}

/// The values of every `swalloc:   <label>   N` row of the statistics tables on stderr, in order (one per
/// block that has the row).
func statisticsValues(_ label: String, in result: ChildResult) -> [Int] {
  result.errorLines.compactMap { line in
    guard line.hasPrefix("swalloc: ") else { return nil }
    let fields = line.dropFirst("swalloc: ".count).split(separator: " ", omittingEmptySubsequences: true)
    guard fields.count >= 2, fields.dropLast().joined(separator: " ") == label else { return nil }
    return Int(fields.last!)
  }
}

/// Skips the running test when the machine lacks what it needs (a kernel feature, a privilege): prints the
/// reason, then cancels the test, which Swift Testing reports as skipped with that reason.
func skipTest(_ reason: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> Never {
  print("skipped (\(sourceLocation.fileName):\(sourceLocation.line)): \(reason)")
  try Test.cancel(Comment(rawValue: reason), sourceLocation: sourceLocation)
}

/// The `"swalloc"` objects of the JSON statistics lines (`{"swalloc":{...}}`, from SWALLOC_SHOW_STATS=json or
/// swalloc_print_statistics(1)) on stderr, in order. Records a failure for a line that does not parse.
func statisticsJSON(in result: ChildResult, sourceLocation: SourceLocation = #_sourceLocation) -> [[String: Any]] {
  result.errorLines.filter { $0.hasPrefix("{\"swalloc\":") }.compactMap { line in
    let parsed = try? JSONSerialization.jsonObject(with: Data(line.utf8))
    guard let object = (parsed as? [String: Any])?["swalloc"] as? [String: Any] else {
      Issue.record("not a JSON object {\"swalloc\":{...}}: \(line)\n\(result.summary)", sourceLocation: sourceLocation)
      return nil
    }
    return object
  }
}

/// Records a failure unless `object` (one of statisticsJSON's) has the fields SWALLOC_SHOW_STATS=json promises,
/// as integers, for process `pid`, with allocations > 0 and frees <= allocations.
func expectStatisticsJSON(
  _ object: [String: Any], pid: Int, in result: ChildResult, sourceLocation: SourceLocation = #_sourceLocation
) {
  let names = ["pid", "allocations", "frees", "live_bytes", "peak_bytes", "mapped_bytes", "resident_bytes",
               "purged_bytes"]
  var fields: [String: Int] = [:]
  for name in names {
    guard let value = object[name] as? Int else {
      Issue.record("the JSON statistics have no integer \"\(name)\"\n\(result.summary)", sourceLocation: sourceLocation)
      continue
    }
    fields[name] = value
  }
  #expect(object["classes"] is [Any], "the JSON statistics have no \"classes\" array\n\(result.summary)",
          sourceLocation: sourceLocation)
  #expect(fields["pid"] == pid, "the JSON statistics are not the child's (pid \(pid))\n\(result.summary)",
          sourceLocation: sourceLocation)
  let allocations = fields["allocations"] ?? 0
  let frees = fields["frees"] ?? 0
  #expect(allocations > 0, "JSON allocations \(allocations)\n\(result.summary)", sourceLocation: sourceLocation)
  #expect(frees >= 0 && frees <= allocations, "JSON frees \(frees), allocations \(allocations)\n\(result.summary)",
          sourceLocation: sourceLocation)
}

// MARK: - Fixture programs

enum FixtureKind {
  case c, cxx, sharedLibrary

  var isCxx: Bool { self == .cxx }

  var flags: [String] {
    switch self {
    // -fno-builtin: GCC folds alignment checks on malloc results and deletes unused malloc/free pairs.
    case .c: ["-std=gnu11", "-O2", "-g", "-fno-builtin", "-Wall", "-Wextra", "-pthread"]
    case .cxx: ["-std=gnu++17", "-O2", "-g", "-Wall", "-Wextra", "-pthread"]
    case .sharedLibrary: ["-std=gnu11", "-O2", "-g", "-fno-builtin", "-Wall", "-Wextra", "-shared", "-fPIC",
                          "-fvisibility=hidden", "-pthread"]
    }
  }
}

/// Where this test process compiles the fixtures; removed when the process exits.
private let fixtureDirectoryPath = FileManager.default.temporaryDirectory
  .appendingPathComponent("swalloc-preload-fixtures-\(getpid())-\(UUID().uuidString)").path

/// Compiles each fixture once per test run, into one temporary directory, without the preload.
actor FixtureBuilds {
  static let shared = FixtureBuilds()

  private var builds: [String: Task<String, any Error>] = [:]
  private var directory: URL?

  /// The path of the compiled `source` (a file name in Fixtures/).
  func build(_ source: String, as kind: FixtureKind) async throws -> String {
    let key = "\(source)|\(kind)"
    if let build = builds[key] { return try await build.value }
    let outputDirectory = try buildDirectory()
    let build = Task { try await Self.compile(source, as: kind, into: outputDirectory) }
    builds[key] = build
    return try await build.value
  }

  private func buildDirectory() throws -> URL {
    if let directory { return directory }
    let created = URL(fileURLWithPath: fixtureDirectoryPath)
    try FileManager.default.createDirectory(at: created, withIntermediateDirectories: true)
    atexit { try? FileManager.default.removeItem(atPath: fixtureDirectoryPath) }
    directory = created
    return created
  }

  private static func compile(_ source: String, as kind: FixtureKind, into directory: URL) async throws -> String {
    let baseName = (source as NSString).deletingPathExtension
    let output = directory.appendingPathComponent(kind == .sharedLibrary ? "lib\(baseName).so" : baseName).path
    let arguments = kind.flags + ["-I", Preload.fixtures.path, "-I", Preload.publicHeaders.path, "-o", output,
                                  Preload.fixture(source), "-ldl"]
    let result = try await runChild(try Preload.compiler(cxx: kind.isCxx), arguments, preload: nil, timeout: 180)
    guard result.succeeded else { throw HarnessError("cannot compile fixture \(source)\n\(result.summary)") }
    return output
  }
}
