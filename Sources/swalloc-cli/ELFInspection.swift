// Why a preload cannot take, read from the files before running: a static program has no loader, a setuid
// or setgid program runs in secure-execution mode (the loader then ignores
// LD_PRELOAD paths with a slash: ld.so(8)), and a library of another ELF class or machine is skipped.
import Foundation
import Glibc

/// What the command needs of an ELF file's header.
struct ELFHeader {
  var is64Bit: Bool
  var machine: UInt16
  /// ET_EXEC (2) or ET_DYN (3).
  var type: UInt16
  /// Whether a PT_INTERP program header names a dynamic loader.
  var hasInterpreter: Bool

  /// Reads the header and program headers of `path`; nil when it is not a little-endian ELF file.
  init?(path: String) {
    guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
    defer { try? handle.close() }
    guard let data = try? handle.read(upToCount: 64 * 1024), data.count >= 64,
          data.starts(with: [0x7f, 0x45, 0x4c, 0x46]), data[5] == 1  // "\x7fELF", little-endian
    else { return nil }
    func u16(_ offset: Int) -> UInt16 { offset + 2 <= data.count ? UInt16(data[offset]) | UInt16(data[offset + 1]) << 8 : 0 }
    func u32(_ offset: Int) -> UInt32 { UInt32(u16(offset)) | UInt32(u16(offset + 2)) << 16 }
    func u64(_ offset: Int) -> UInt64 { UInt64(u32(offset)) | UInt64(u32(offset + 4)) << 32 }
    is64Bit = data[4] == 2
    type = u16(16)
    machine = u16(18)
    let headerOffset = Int(is64Bit ? u64(32) : UInt64(u32(28)))
    let entrySize = Int(u16(is64Bit ? 54 : 42))
    let entryCount = Int(u16(is64Bit ? 56 : 44))
    hasInterpreter = false
    for index in 0..<entryCount {
      let offset = headerOffset + index * entrySize
      if offset + 4 <= data.count && u32(offset) == 3 { hasInterpreter = true }  // PT_INTERP
    }
  }
}

/// What the files say about a run, before it starts.
enum PreloadPrecheck {
  /// Why `library` cannot be preloaded at all; nil when it looks like a loadable shared library.
  static func problem(library: String) -> String? {
    guard let header = ELFHeader(path: library) else { return "\(library) is not an ELF shared library" }
    guard header.type == 3 else { return "\(library) is not a shared library (ELF type \(header.type))" }
    return nil
  }

  /// Why the preload will not take in `program` (a path), or nil when nothing says so. A script (`#!`) is
  /// judged by its interpreter.
  static func problem(program: String, library: String) -> String? {
    var path = program
    if let interpreter = scriptInterpreter(path) { path = interpreter }
    var status = stat()
    if stat(path, &status) == 0 {
      if status.st_mode & S_ISUID != 0 && status.st_uid != getuid() {
        return "\(path) is setuid: the loader ignores LD_PRELOAD for it (secure-execution mode)"
      }
      if status.st_mode & S_ISGID != 0 && status.st_gid != getgid() {
        return "\(path) is setgid: the loader ignores LD_PRELOAD for it (secure-execution mode)"
      }
    }
    guard let header = ELFHeader(path: path) else { return nil }
    if !header.hasInterpreter {
      return "\(path) is statically linked: it has no dynamic loader, so no library can be preloaded into it"
    }
    if let libraryHeader = ELFHeader(path: library),
       libraryHeader.is64Bit != header.is64Bit || libraryHeader.machine != header.machine {
      return "\(path) is built for another ELF class or machine than \(library): the loader skips the library"
    }
    return nil
  }

  /// The interpreter a `#!` script names, resolved on PATH for `/usr/bin/env NAME`.
  static func scriptInterpreter(_ path: String) -> String? {
    guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
    defer { try? handle.close() }
    guard let data = try? handle.read(upToCount: 256), data.starts(with: [0x23, 0x21]) else { return nil }
    let line = String(decoding: data.dropFirst(2).prefix { $0 != 10 }, as: UTF8.self)
    let words = line.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
    guard let first = words.first else { return nil }
    if (first as NSString).lastPathComponent == "env", words.count >= 2, !words[1].hasPrefix("-") {
      return LibraryLocator.program(words[1]) ?? first
    }
    return first
  }
}
