// `swalloc version`: this command's version and the version of the library it would preload.
import ArgumentParser
import Foundation

extension SwallocCommand {
  struct Version: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Print the version of this command and of the library it would preload.",
      discussion: """
        The library's version comes from the library itself (a handshake with a short run of `true` \
        under it); it is also in its statistics (`swalloc run --stats`) and in swalloc_version().
        """)

    @Option(help: ArgumentHelp("The libswalloc.so to ask (default: the one `swalloc run` would use).",
                               valueName: "path"))
    var library: String?

    func run() throws {
      print("swalloc \(CommandVersion.text)")
      guard let found = try? LibraryLocator.find(explicit: library) else {
        print("library: not found (looked in \(LibraryLocator.candidates(explicit: library).joined(separator: ", ")))")
        throw ExitCode.failure
      }
      switch HandshakeProbe.run(library: found) {
      case .answered(let answer):
        print("library \(answer.version) (\(answer.mode) mode by default): \(found)")
        if answer.version != CommandVersion.text {
          print("note: the library's version differs from this command's")
        }
      case .failed(let reason):
        print("library: \(found) does not load: \(reason)")
        throw ExitCode.failure
      }
    }
  }
}
