// The `swalloc` command (product swalloc-cli, installed as `swalloc`): runs programs on libswalloc.so,
// checks what the machine allows, prints versions, installs and uninstalls the library, header, pkg-config
// file and itself. Later command groups (heap profiles) join `subcommands`.
import ArgumentParser
import Foundation
import Swalloc

@main
struct SwallocCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "swalloc",
    abstract: "Run programs on Swalloc, check what this machine allows, install the library.",
    discussion: """
      Swalloc replaces the malloc family of any dynamically linked program through LD_PRELOAD. \
      `swalloc run -- PROGRAM ARGS` is the whole set-up; `swalloc doctor` says what huge pages, locked \
      memory and the library itself will do here, and how to fix what is missing.
      """,
    version: CommandVersion.text,
    subcommands: [Run.self, Doctor.self, Version.self, Install.self, Uninstall.self])

  /// ArgumentParser has no option with an optional value: a bare `--stats` (before `--`) becomes
  /// `--stats=table`, so that `--stats` and `--stats=json` both read naturally.
  static func main() {
    var arguments = Array(CommandLine.arguments.dropFirst())
    let end = arguments.firstIndex(of: "--") ?? arguments.endIndex
    for index in arguments.indices[..<end] where arguments[index] == "--stats" {
      arguments[index] = "--stats=table"
    }
    main(arguments)
  }
}

/// The versions of this command and of the library it would preload.
enum CommandVersion {
  /// This command's version: the one of swalloc.h it was built with (SWALLOC_VERSION).
  static var text: String { SwallocVersion.string }
}

/// A failure that ends the command with a message and a status (125, as `env` and `timeout` use for their
/// own failures, unless given).
struct CommandFailure: Error, CustomStringConvertible {
  let description: String
  let status: Int32
  init(_ description: String, status: Int32 = 125) {
    self.description = description
    self.status = status
  }
}

/// Writes `text` and a newline on standard error, prefixed with `swalloc: `.
func note(_ text: String) {
  FileHandle.standardError.write(Data("swalloc: \(text)\n".utf8))
}

/// Ends the command for `failure`: its message on stderr, its status.
func fail(_ failure: CommandFailure) -> Never {
  note(failure.description)
  exit(failure.status)
}
