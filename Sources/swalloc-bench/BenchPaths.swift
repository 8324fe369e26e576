// Where the driver finds things: its own directory, the workload sources, the cache of built workloads,
// and the default libswalloc.so.
import Foundation
import Glibc

enum BenchPaths {
  /// The directory holding the running executable, from /proc/self/exe.
  static let executableDirectory: String = {
    var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
    let count = readlink("/proc/self/exe", &buffer, buffer.count - 1)
    let path = count > 0 ? String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
                         : CommandLine.arguments[0]
    return (absolute(path) as NSString).deletingLastPathComponent
  }()

  /// The package root this driver was compiled from (this file is Sources/swalloc-bench/BenchPaths.swift).
  static let sourcePackageRoot: String =
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().path

  static var currentDirectory: String { FileManager.default.currentDirectoryPath }

  /// `path` made absolute against the current directory.
  static func absolute(_ path: String) -> String {
    path.hasPrefix("/") ? path : currentDirectory + "/" + path
  }

  static func exists(_ path: String) -> Bool { FileManager.default.fileExists(atPath: path) }

  /// The directory with the workload sources (it holds bench.h): the option, else the package the driver was
  /// built from, else ./Benchmarks/Workloads.
  static func workloadsDirectory(option: String?) throws -> String {
    let candidates = option.map { [absolute($0)] }
      ?? [sourcePackageRoot + "/Benchmarks/Workloads", currentDirectory + "/Benchmarks/Workloads"]
    guard let found = candidates.first(where: { exists($0 + "/bench.h") }) else {
      throw BenchError("workload sources not found (looked for bench.h in \(candidates.joined(separator: ", "))); "
        + "pass --workloads DIR")
    }
    return found
  }

  /// The cache for compiled workloads and generated inputs: the option, else swalloc-bench-cache next to the
  /// executable (inside .build), created if needed.
  static func cacheDirectory(option: String?) throws -> String {
    let directory = option.map(absolute) ?? executableDirectory + "/swalloc-bench-cache"
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    return directory
  }

  /// Where libswalloc.so is looked for when --lib is not given, in order: next to the executable (the same
  /// build directory), then .build/release under the current directory.
  static var defaultSwallocCandidates: [String] {
    [executableDirectory + "/libswalloc.so", currentDirectory + "/.build/release/libswalloc.so"]
  }

  /// The first directory on PATH holding an executable `name`, or `name` itself when it contains a slash.
  static func which(_ name: String) -> String? {
    if name.contains("/") { return FileManager.default.isExecutableFile(atPath: name) ? absolute(name) : nil }
    let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
    for directory in path.split(separator: ":") where !directory.isEmpty {
      let candidate = "\(directory)/\(name)"
      if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
    }
    return nil
  }

  /// The canonical path (symbolic links resolved), or `path` when it cannot be resolved.
  static func canonical(_ path: String) -> String {
    guard let resolved = realpath(path, nil) else { return path }
    defer { free(resolved) }
    return String(cString: resolved)
  }
}

/// An error with a message for the person running the benchmarks.
struct BenchError: Error, CustomStringConvertible {
  let description: String
  init(_ description: String) { self.description = description }
}
