// Turns a Workload into the command to run: compiles C workloads with the system cc and the Swift workload
// with swiftc into the cache (keyed by a hash of sources and flags), generates gcc's input and sqlite's
// script, and finds the stock programs. A workload whose tool is missing is skipped with a reason.
import Foundation
import Glibc

/// One prepared workload: the command and what a successful run must show.
struct Invocation: Sendable {
  /// argv; argv[0] is an absolute path.
  var arguments: [String]
  /// Added to the child's environment (LD_PRELOAD comes from the allocator).
  var environment: [String: String] = [:]
  /// The program prints `malloc_provider PATH` (bench.h), which must name the allocator under test.
  var reportsProvider = false
  /// Standard output must contain this.
  var requiredOutput: String?
  /// Standard output must not contain this.
  var forbiddenOutput: String?
  /// A file the program must create; removed before each run.
  var producedFile: String?
}

/// Why a workload cannot run on this machine (a missing tool); the run goes on without it.
struct WorkloadSkipped: Error {
  let reason: String
}

struct WorkloadBuilder {
  let workloadsDirectory: String
  let cacheDirectory: String
  /// This driver process's own directory for output files (see Session).
  let scratchDirectory: String
  /// Progress notes (compiling...), to standard error.
  let note: (String) -> Void

  /// The invocation of `workload` at `scale` (1 = full); `quick` selects quick-only arguments.
  func prepare(_ workload: Workload, scale: Double, quick: Bool) throws -> Invocation {
    let scaleArgument = String(format: "%.6g", scale)
    switch workload.recipe {
    case .c(let source, let arguments, let quickArguments):
      let binary = try compileC(source)
      return Invocation(arguments: [binary, scaleArgument] + (quick ? quickArguments ?? arguments : arguments),
                        reportsProvider: true)

    case .python(let script):
      let python = try pythonInterpreter()
      // PYTHONMALLOC=malloc sends every object through malloc; pymalloc would serve objects up to 512 B
      // from its own arenas and hide them from the allocator under test.
      return Invocation(
        arguments: [python, workloadsDirectory + "/" + script, scaleArgument],
        environment: ["PYTHONMALLOC": "malloc", "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1"],
        requiredOutput: "python-check ok")

    case .gcc(let functions):
      guard let gcc = BenchPaths.which("gcc") else { throw WorkloadSkipped(reason: "gcc not found on PATH") }
      let count = max(10, Int((Double(functions) * scale).rounded()))
      let input = try writeInput(named: "gcc-input-\(count).c") { GeneratedSources.largeCProgram(functions: count) }
      let output = scratchDirectory + "/gcc-output.o"
      return Invocation(arguments: [gcc, "-O2", "-c", input, "-o", output], producedFile: output)

    case .sqlite(let template, let rows):
      guard let sqlite = BenchPaths.which("sqlite3") else { throw WorkloadSkipped(reason: "sqlite3 not found on PATH") }
      let count = max(100, Int((Double(rows) * scale).rounded()))
      let text = try String(contentsOfFile: workloadsDirectory + "/" + template, encoding: .utf8)
      let script = try writeInput(named: "sqlite-\(count).sql") {
        text.replacingOccurrences(of: "@ROWS@", with: String(count))
      }
      return Invocation(arguments: [sqlite, "-bail", ":memory:", ".read " + script],
                        requiredOutput: "check ok", forbiddenOutput: "FAILED")

    case .swift(let source):
      let binary = try compileSwift(source)
      return Invocation(arguments: [binary, scaleArgument], requiredOutput: "swift-check ok")

    case .command(let arguments):
      guard let program = BenchPaths.which(arguments[0]) else {
        throw BenchError("\(arguments[0]): no such program (not executable, or not on PATH)")
      }
      return Invocation(arguments: [program] + arguments.dropFirst())
    }
  }

  /// Compiles Benchmarks/Workloads/`source` with `cc -std=c11 -O2 -pthread` (or $CC) unless the cache holds
  /// a binary built from the same sources and flags.
  func compileC(_ source: String, extraFlags: [String] = []) throws -> String {
    let compiler = ProcessInfo.processInfo.environment["CC"] ?? "cc"
    // Without cc (a machine with only the Swift toolchain), the toolchain's clang.
    let fallback = ProcessInfo.processInfo.environment["CC"] == nil ? BenchPaths.toolchainClang : nil
    guard let compilerPath = BenchPaths.which(compiler) ?? fallback else {
      throw BenchError("C compiler '\(compiler)' not found: install gcc or set CC")
    }
    let sourcePath = workloadsDirectory + "/" + source
    let flags = ["-std=c11", "-O2", "-pthread", "-Wall"] + extraFlags
    let key = try contentHash(files: [sourcePath, workloadsDirectory + "/bench.h"], extra: [compilerPath] + flags)
    let binary = cacheDirectory + "/bin/" + (source as NSString).deletingPathExtension + "-" + key
    if BenchPaths.exists(binary) { return binary }
    note("compiling \(source)")
    try build([compilerPath] + flags + ["-I", workloadsDirectory, "-o", binary, sourcePath, "-lm"], output: binary)
    return binary
  }

  /// Compiles a Swift workload with `swiftc -O`; skips it when swiftc is missing.
  func compileSwift(_ source: String) throws -> String {
    guard let swiftc = BenchPaths.which("swiftc") else {
      throw WorkloadSkipped(reason: "swiftc not found on PATH")
    }
    let sourcePath = workloadsDirectory + "/" + source
    let key = try contentHash(files: [sourcePath], extra: [swiftc, "-O"])
    let binary = cacheDirectory + "/bin/" + (source as NSString).deletingPathExtension + "-" + key
    if BenchPaths.exists(binary) { return binary }
    note("compiling \(source) with swiftc -O")
    try build([swiftc, "-O", "-o", binary, sourcePath], output: binary)
    return binary
  }

  /// The python3 interpreter itself: `python3` on PATH may be a shim script (pyenv) that would be measured
  /// too, so ask it for sys.executable once.
  private func pythonInterpreter() throws -> String {
    guard let python = BenchPaths.which("python3") else { throw WorkloadSkipped(reason: "python3 not found on PATH") }
    let result = try ChildProcess.run([python, "-c", "import sys; print(sys.executable)"], timeoutSeconds: 60,
                                      scratchDirectory: scratchDirectory)
    let executable = result.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines)
    return result.succeeded && BenchPaths.exists(executable) ? executable : python
  }

  /// Runs a compiler into a temporary file and renames it into place, so that an interrupted build never
  /// leaves a binary the cache would trust.
  private func build(_ command: [String], output: String) throws {
    try FileManager.default.createDirectory(atPath: (output as NSString).deletingLastPathComponent,
                                            withIntermediateDirectories: true)
    let temporary = output + ".partial-\(getpid())"
    let arguments = command.map { $0 == output ? temporary : $0 }
    let result = try ChildProcess.run(arguments, timeoutSeconds: 600, scratchDirectory: scratchDirectory)
    guard result.succeeded, BenchPaths.exists(temporary) else {
      throw BenchError("\(arguments.joined(separator: " ")) failed (\(result.terminationDescription)):\n"
        + result.standardError)
    }
    // rename(2) replaces `output` atomically: another run of the driver that found the binary already
    // (tests run several at once with one cache) never sees it missing. (removeItem then moveItem left a
    // moment without it: a concurrent run failed with "cannot run .../startup-...: No such file or
    // directory", in CI on 2026-12-07.)
    guard rename(temporary, output) == 0 else {
      throw BenchError("cannot rename \(temporary) to \(output): \(String(cString: strerror(errno)))")
    }
  }

  /// Writes a generated input into the cache (every time: it is cheap, and never stale).
  private func writeInput(named name: String, contents: () -> String) throws -> String {
    let path = cacheDirectory + "/inputs/" + name
    try FileManager.default.createDirectory(atPath: cacheDirectory + "/inputs", withIntermediateDirectories: true)
    try contents().write(toFile: path, atomically: true, encoding: .utf8)
    return path
  }

  /// 64-bit FNV-1a over the files' bytes and the extra strings, as 16 hex digits.
  private func contentHash(files: [String], extra: [String]) throws -> String {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    func mix<S: Sequence>(_ bytes: S) where S.Element == UInt8 {
      for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
      hash = (hash ^ 0xff) &* 0x100_0000_01b3
    }
    for file in files {
      guard let data = FileManager.default.contents(atPath: file) else { throw BenchError("cannot read \(file)") }
      mix(data)
    }
    extra.forEach { mix($0.utf8) }
    return String(hash, radix: 16).leftPadded(to: 16)
  }
}

extension String {
  func leftPadded(to width: Int, with pad: Character = "0") -> String {
    count >= width ? self : String(repeating: pad, count: width - count) + self
  }
}
