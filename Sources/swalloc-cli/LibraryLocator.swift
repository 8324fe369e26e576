// Where the command finds libswalloc.so and swalloc.h: beside the executable, in its install prefix
// (../lib, ../include), then in the package it was built from (.build/release, CShim/include).
import Foundation
import Glibc

enum LibraryLocator {
  static let libraryName = "libswalloc.so"

  /// The running executable, symbolic links resolved (/proc/self/exe).
  static let executablePath: String = {
    (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
      ?? URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL.path
  }()

  static var executableDirectory: String { (executablePath as NSString).deletingLastPathComponent }

  /// The package root this command was compiled from (this file is Sources/swalloc-cli/LibraryLocator.swift).
  static let sourcePackageRoot: String =
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().path

  /// The places `find` looks, in order: `explicit` alone when given; else beside the executable (a build
  /// folder, or a prefix's bin when the library was copied there), the install prefix's lib
  /// (`<executable>/../lib`), and the package's release build folder.
  static func candidates(explicit: String?) -> [String] {
    if let explicit { return [absolute(explicit)] }
    let directory = URL(fileURLWithPath: executableDirectory)
    let paths = [
      directory.appendingPathComponent(libraryName).path,
      directory.deletingLastPathComponent().appendingPathComponent("lib/\(libraryName)").path,
      URL(fileURLWithPath: sourcePackageRoot).appendingPathComponent(".build/release/\(libraryName)").path,
    ]
    var unique: [String] = []
    for path in paths where !unique.contains(path) { unique.append(path) }
    return unique
  }

  /// The first candidate that exists, made canonical.
  static func find(explicit: String?) throws -> String {
    let paths = candidates(explicit: explicit)
    guard let found = paths.first(where: { FileManager.default.isReadableFile(atPath: $0) }) else {
      let hint = explicit == nil ? " (build it with `swift build -c release`, or pass --library PATH)" : ""
      throw CommandFailure("\(libraryName) not found: looked for \(paths.joined(separator: ", "))\(hint)")
    }
    return canonical(found)
  }

  /// swalloc.h: in the library's prefix (`<lib>/../include`), else in the package's sources.
  static func header(beside library: String) -> String? {
    let libraryDirectory = URL(fileURLWithPath: library).deletingLastPathComponent()
    let paths = [
      libraryDirectory.deletingLastPathComponent().appendingPathComponent("include/swalloc.h").path,
      URL(fileURLWithPath: sourcePackageRoot).appendingPathComponent("CShim/include/swalloc.h").path,
    ]
    return paths.first { FileManager.default.isReadableFile(atPath: $0) }
  }

  static func absolute(_ path: String) -> String {
    path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
  }

  static func canonical(_ path: String) -> String {
    guard let resolved = realpath(path, nil) else { return absolute(path) }
    defer { free(resolved) }
    return String(cString: resolved)
  }

  /// `name` resolved the way execvp does: itself when it contains a slash, else the first executable
  /// file of that name on PATH.
  static func program(_ name: String, path: String? = ProcessInfo.processInfo.environment["PATH"]) -> String? {
    if name.contains("/") { return FileManager.default.fileExists(atPath: name) ? name : nil }
    for directory in (path ?? "/usr/local/bin:/usr/bin:/bin").split(separator: ":", omittingEmptySubsequences: false) {
      let candidate = (directory.isEmpty ? "." : String(directory)) + "/" + name
      if FileManager.default.isExecutableFile(atPath: candidate) && !isDirectory(candidate) { return candidate }
    }
    return nil
  }

  static func isDirectory(_ path: String) -> Bool {
    var isDirectory: ObjCBool = false
    return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory.boolValue
  }
}
