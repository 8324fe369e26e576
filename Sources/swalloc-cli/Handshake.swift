// The handshake that proves a preload took: the command makes a FIFO and names it in SWALLOC_RUN_HANDSHAKE;
// libswalloc.so, once loaded, writes one line to it (Sources/SwallocExports/Handshake.c):
// `swalloc-handshake version=0.1.0 pid=1234 mode=default`. No line from the child's pid: the loader did not
// load the library (it says nothing when it ignores a preload).
import Foundation
import Glibc

/// One library's answer.
struct HandshakeAnswer: Equatable {
  var version: String
  var pid: pid_t
  /// `default` or `secure`: the mode in effect in that process.
  var mode: String

  /// Parses one handshake line; nil for anything else.
  init?(line: Substring) {
    let words = line.split(separator: " ")
    guard words.first == "swalloc-handshake" else { return nil }
    var fields: [Substring: Substring] = [:]
    for word in words.dropFirst() {
      guard let equals = word.firstIndex(of: "=") else { continue }
      fields[word[..<equals]] = word[word.index(after: equals)...]
    }
    guard let version = fields["version"], let pidText = fields["pid"], let pid = pid_t(pidText),
          let mode = fields["mode"] else { return nil }
    self.version = String(version)
    self.pid = pid
    self.mode = String(mode)
  }
}

/// A FIFO in a private temporary directory, read without blocking. The command holds a write end as well, so
/// that reads never see end-of-file (and poll never reports a hang-up) between children's answers.
final class HandshakeChannel {
  static let variable = "SWALLOC_RUN_HANDSHAKE"

  let path: String
  private let directory: String
  private let readDescriptor: Int32
  private let keepOpenDescriptor: Int32
  private var pending = Data()
  private(set) var answers: [HandshakeAnswer] = []

  init() throws {
    let base = ProcessInfo.processInfo.environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
    var template = Array((base + "/swalloc-run.XXXXXX").utf8CString)
    guard let made = mkdtemp(&template) else {
      throw CommandFailure("cannot create a temporary directory in \(base): \(String(cString: strerror(errno)))")
    }
    directory = String(cString: made)
    path = directory + "/handshake"
    guard mkfifo(path, 0o600) == 0 else {
      let reason = String(cString: strerror(errno))
      rmdir(directory)
      throw CommandFailure("cannot create the handshake FIFO \(path): \(reason)")
    }
    readDescriptor = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
    keepOpenDescriptor = readDescriptor >= 0 ? open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC) : -1
    guard readDescriptor >= 0, keepOpenDescriptor >= 0 else {
      let reason = String(cString: strerror(errno))
      if readDescriptor >= 0 { Glibc.close(readDescriptor) }
      unlink(path)
      rmdir(directory)
      throw CommandFailure("cannot open the handshake FIFO \(path): \(reason)")
    }
  }

  private var isClosed = false

  deinit { close() }

  /// Closes the FIFO and removes its directory (with anything else put there). Also before exit(3), which
  /// runs no deinitializers.
  func close() {
    guard !isClosed else { return }
    isClosed = true
    Glibc.close(readDescriptor)
    Glibc.close(keepOpenDescriptor)
    try? FileManager.default.removeItem(atPath: directory)
  }

  /// Waits up to `milliseconds` (-1: without limit) for data; returns early when a signal arrives.
  func wait(milliseconds: Int32) {
    var descriptor = pollfd(fd: readDescriptor, events: Int16(POLLIN), revents: 0)
    _ = poll(&descriptor, 1, milliseconds)
  }

  /// Reads every complete line available now into `answers`.
  func drain() {
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
      let count = read(readDescriptor, &buffer, buffer.count)
      if count <= 0 { break }
      pending.append(contentsOf: buffer[0..<count])
    }
    while let newline = pending.firstIndex(of: 10) {
      let line = String(decoding: pending[pending.startIndex..<newline], as: UTF8.self)
      pending.removeSubrange(pending.startIndex...newline)
      if let answer = HandshakeAnswer(line: Substring(line)) { answers.append(answer) }
    }
  }

  func answer(from pid: pid_t) -> HandshakeAnswer? { answers.first { $0.pid == pid } }
}

/// Runs `true` under a library and reports its handshake: does it load here, which version, which mode.
enum HandshakeProbe {
  enum Outcome {
    case answered(HandshakeAnswer)
    case failed(String)
  }

  /// With `environment` added (SWALLOC_SECURE is removed unless given, so the mode is the build's default).
  static func run(library: String, environment: [String: String] = [:]) -> Outcome {
    if let problem = PreloadPrecheck.problem(library: library) { return .failed(problem) }
    guard let program = ["/bin/true", "/usr/bin/true"].first(where: { FileManager.default.isExecutableFile(atPath: $0) })
      ?? LibraryLocator.program("true")
    else { return .failed("no `true` program to try it with") }
    do {
      let channel = try HandshakeChannel()
      var childEnvironment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("SWALLOC_") }
      childEnvironment["LD_PRELOAD"] = library
      childEnvironment[HandshakeChannel.variable] = channel.path
      childEnvironment.merge(environment) { $1 }
      let errorFile = channel.path + ".stderr"  // in the channel's directory: removed with it
      defer { channel.close() }
      let process = Process()
      process.executableURL = URL(fileURLWithPath: program)
      process.environment = childEnvironment
      process.standardInput = FileHandle.nullDevice
      process.standardOutput = FileHandle.nullDevice
      _ = FileManager.default.createFile(atPath: errorFile, contents: nil)
      let errorHandle = FileHandle(forWritingAtPath: errorFile)
      process.standardError = errorHandle ?? FileHandle.nullDevice
      try process.run()
      process.waitUntilExit()
      try? errorHandle?.close()
      channel.drain()
      if let answer = channel.answer(from: process.processIdentifier) { return .answered(answer) }
      let loaderMessage = (try? String(contentsOfFile: errorFile, encoding: .utf8))?
        .split(separator: "\n").first { $0.contains("ld.so") || $0.contains("LD_PRELOAD") }
      return .failed(loaderMessage.map(String.init) ?? "the loader did not load it into \(program)")
    } catch {
      return .failed("\(error)")
    }
  }
}
