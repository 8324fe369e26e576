// `swalloc install` and `swalloc uninstall`: the library, swalloc.h, a pkg-config file and this command
// under a prefix, recorded in a manifest (<prefix>/share/swalloc/install-manifest.txt) that uninstall
// follows to remove exactly what install put there.
import ArgumentParser
import Foundation

/// The files of an installation, relative to the prefix.
enum InstallLayout {
  static let library = "lib/libswalloc.so"
  static let header = "include/swalloc.h"
  static let pkgConfig = "lib/pkgconfig/swalloc.pc"
  static let command = "bin/swalloc"
  static let manifest = "share/swalloc/install-manifest.txt"

  /// swalloc.pc. Libs carries an rpath, so a program linked against a prefix outside the loader's search
  /// path (a home directory, a test's temporary prefix) finds the library when it runs.
  static func pkgConfigText(prefix: String) -> String {
    """
    prefix=\(prefix)
    libdir=${prefix}/lib
    includedir=${prefix}/include

    Name: swalloc
    Description: Swalloc, a malloc replacement written in Swift (link it, or preload it: swalloc run)
    Version: \(CommandVersion.text)
    Libs: -L${libdir} -Wl,-rpath,${libdir} -lswalloc
    Cflags: -I${includedir}

    """
  }
}

/// The manifest: one line per file, then one `dir PATH` line per directory install created (removed by
/// uninstall when empty), all absolute.
struct InstallManifest {
  var files: [String] = []
  var createdDirectories: [String] = []

  var text: String {
    "# swalloc install manifest: uninstall removes these files, then these directories when empty\n"
      + files.map { "file \($0)\n" }.joined() + createdDirectories.map { "dir \($0)\n" }.joined()
  }

  init() {}

  init(text: String) {
    for line in text.split(separator: "\n") {
      if line.hasPrefix("file ") { files.append(String(line.dropFirst(5))) }
      if line.hasPrefix("dir ") { createdDirectories.append(String(line.dropFirst(4))) }
    }
  }
}

/// --prefix, made absolute.
struct PrefixOption: ParsableArguments {
  @Option(help: ArgumentHelp("Where to install: <prefix>/lib, include, bin and share.", valueName: "dir"))
  var prefix: String = "/usr/local"

  var absolutePrefix: String { URL(fileURLWithPath: LibraryLocator.absolute(prefix)).standardizedFileURL.path }
}

extension SwallocCommand {
  struct Install: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Install libswalloc.so, swalloc.h, swalloc.pc and the swalloc command under a prefix.",
      discussion: """
        Copies <prefix>/lib/libswalloc.so, <prefix>/include/swalloc.h, <prefix>/lib/pkgconfig/swalloc.pc \
        (so that `pkg-config --cflags --libs swalloc` works for programs that link the library) and this \
        command as <prefix>/bin/swalloc, which then finds the library in <prefix>/lib. Writes the list to \
        <prefix>/share/swalloc/install-manifest.txt for `swalloc uninstall`. Installing again over an \
        installation replaces it.
        """)

    @OptionGroup var location: PrefixOption

    @Option(help: ArgumentHelp("The libswalloc.so to install (default: the one `swalloc run` would use).",
                               valueName: "path"))
    var library: String?

    func run() throws {
      do {
        try install()
      } catch let failure as CommandFailure {
        fail(failure)
      }
    }

    private func install() throws {
      let prefix = location.absolutePrefix
      let source = try LibraryLocator.find(explicit: library)
      guard let header = LibraryLocator.header(beside: source) else {
        throw CommandFailure("swalloc.h not found beside \(source) or in \(LibraryLocator.sourcePackageRoot)/CShim/include")
      }
      let fileManager = FileManager.default
      let manifestPath = prefix + "/" + InstallLayout.manifest
      // A previous installation's directories stay recorded: uninstall removes them after the new files.
      var manifest = InstallManifest()
      if let previous = try? String(contentsOfFile: manifestPath, encoding: .utf8) {
        manifest.createdDirectories = InstallManifest(text: previous).createdDirectories
      }
      func place(_ relative: String, mode: Int, write: (String) throws -> Void) throws {
        let destination = prefix + "/" + relative
        try makeDirectories(for: destination, recordingIn: &manifest)
        let directory = (destination as NSString).deletingLastPathComponent
        guard access(directory, W_OK) == 0 else {
          throw CommandFailure("cannot write in \(directory): \(String(cString: strerror(errno))) (install as root, "
                                 + "or choose another --prefix, e.g. ~/.local)")
        }
        let temporary = destination + ".swalloc-install-\(getpid())"
        try? fileManager.removeItem(atPath: temporary)
        do {
          try write(temporary)
          try fileManager.setAttributes([.posixPermissions: mode], ofItemAtPath: temporary)
          guard rename(temporary, destination) == 0 else {
            throw CommandFailure("cannot write \(destination): \(String(cString: strerror(errno)))")
          }
        } catch let failure as CommandFailure {
          try? fileManager.removeItem(atPath: temporary)
          throw failure
        } catch {
          try? fileManager.removeItem(atPath: temporary)
          throw CommandFailure("cannot write \(destination): \(error.localizedDescription)")
        }
        manifest.files.append(destination)
        print("installed \(destination)")
      }
      /// The manifest, also after a failure part-way, so that uninstall removes what was placed.
      func writeManifest() throws {
        try makeDirectories(for: manifestPath, recordingIn: &manifest)
        if !manifest.files.contains(manifestPath) { manifest.files.append(manifestPath) }
        do {
          try manifest.text.write(toFile: manifestPath, atomically: true, encoding: .utf8)
        } catch {
          throw CommandFailure("cannot write \(manifestPath): \(error.localizedDescription)")
        }
      }
      let command = LibraryLocator.executablePath
      do {
        try place(InstallLayout.library, mode: 0o755) { try fileManager.copyItem(atPath: source, toPath: $0) }
        try place(InstallLayout.header, mode: 0o644) { try fileManager.copyItem(atPath: header, toPath: $0) }
        try place(InstallLayout.pkgConfig, mode: 0o644) {
          try InstallLayout.pkgConfigText(prefix: prefix).write(toFile: $0, atomically: false, encoding: .utf8)
        }
        try place(InstallLayout.command, mode: 0o755) { try fileManager.copyItem(atPath: command, toPath: $0) }
      } catch {
        if !manifest.files.isEmpty || !manifest.createdDirectories.isEmpty { try? writeManifest() }
        throw error
      }
      try writeManifest()
      print("installed \(manifestPath) (the list `swalloc uninstall --prefix \(prefix)` removes)")
    }

    /// Creates the missing directories above `path`, recording each (outermost first).
    private func makeDirectories(for path: String, recordingIn manifest: inout InstallManifest) throws {
      var missing: [String] = []
      var directory = (path as NSString).deletingLastPathComponent
      while !LibraryLocator.isDirectory(directory) && directory != "/" {
        missing.append(directory)
        directory = (directory as NSString).deletingLastPathComponent
      }
      for directory in missing.reversed() {
        guard mkdir(directory, 0o755) == 0 else {
          throw CommandFailure("cannot create \(directory): \(String(cString: strerror(errno))) (install as root, "
                                 + "or choose another --prefix, e.g. ~/.local)")
        }
        if !manifest.createdDirectories.contains(directory) { manifest.createdDirectories.append(directory) }
      }
    }
  }

  struct Uninstall: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Remove exactly what `swalloc install` installed under a prefix.",
      discussion: """
        Reads <prefix>/share/swalloc/install-manifest.txt, removes the files it lists, then the \
        directories install created, when they are empty. Files install did not write are never touched.
        """)

    @OptionGroup var location: PrefixOption

    func run() throws {
      let prefix = location.absolutePrefix
      let manifestPath = prefix + "/" + InstallLayout.manifest
      guard let text = try? String(contentsOfFile: manifestPath, encoding: .utf8) else {
        fail(CommandFailure("no installation under \(prefix): \(manifestPath) not found", status: 1))
      }
      let manifest = InstallManifest(text: text)
      var failures = 0
      for file in manifest.files where file != manifestPath {
        if unlink(file) == 0 {
          print("removed \(file)")
        } else if errno != ENOENT {
          note("cannot remove \(file): \(String(cString: strerror(errno)))")
          failures += 1
        }
      }
      guard failures == 0 else { fail(CommandFailure("\(failures) files not removed; the manifest stays", status: 1)) }
      unlink(manifestPath)
      print("removed \(manifestPath)")
      // Innermost first; a directory that holds anything else stays.
      for directory in manifest.createdDirectories.sorted(by: { $0.count > $1.count }) where rmdir(directory) == 0 {
        print("removed \(directory)/")
      }
    }
  }
}
