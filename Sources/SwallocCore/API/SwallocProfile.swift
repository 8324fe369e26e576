// SwallocProfile: the heap profiler of libswalloc.so (SWALLOC_PROFILE) from Swift.
import CShim
import Glibc

/// The heap profile of the process allocator, when it is libswalloc.so running with `SWALLOC_PROFILE=1` or
/// `SWALLOC_PROFILE=leaks`: sampled allocation sites with their cumulative and live bytes and objects, in
/// pprof's format (`go tool pprof -http=: ./program file.pb.gz`).
///
/// Profiling is chosen when the process starts (the environment), not from Swift. The profile covers every
/// allocation that goes through `malloc` (Swift objects, arrays and strings, C and C++ code) and the blocks of
/// every ``SwallocHeap`` (sampled by this module and recorded in libswalloc.so's profile).
public enum SwallocProfile {
  /// Errors of ``dump(to:)``.
  public enum DumpError: Error, Equatable, Sendable {
    /// The process allocator is not libswalloc.so, or it runs without `SWALLOC_PROFILE`.
    case profilingOff
    /// The file could not be written; the `errno` value.
    case cannotWrite(errno: Int32)
  }

  /// Whether the process allocator is libswalloc.so with profiling on.
  public static var isEnabled: Bool {
    Options.initializeIfNeeded()
    return ProcessAllocator.profileDump != nil && Options.profile != .off
  }

  /// Writes the heap profile to `path` (gzip-compressed profile.proto). The allocator writes it without
  /// allocating from the heap it describes.
  public static func dump(to path: String) throws(DumpError) {
    guard let dump = ProcessAllocator.profileDump else { throw .profilingOff }
    let result = path.withCString { dump($0) }
    if result == 0 { return }
    let error = swalloc_errno_get()
    throw error == EINVAL ? .profilingOff : .cannotWrite(errno: error)
  }
}

extension ProcessAllocator {
  typealias ProfileDump = @convention(c) (UnsafePointer<CChar>?) -> Int32

  typealias ProfileNoteSample = @convention(c) (
    UnsafePointer<UInt>, Int32, Int, Int, UnsafeMutableRawPointer?, UnsafeMutablePointer<Int64>) -> Int32
  typealias ProfileNoteRelease = @convention(c) (UnsafeMutableRawPointer?, Int32, Int64, Int64, Int) -> Void

  /// libswalloc.so's entries for the samples of the Swift API's heaps (Sources/SwallocExports/Profile.c).
  static let profileNoteSample: ProfileNoteSample? = {
    guard isSwalloc, let symbol = dlsym(swallocDefaultHandle, "swalloc_profile_note_sample") else { return nil }
    return unsafeBitCast(symbol, to: ProfileNoteSample.self)
  }()

  static let profileNoteRelease: ProfileNoteRelease? = {
    guard isSwalloc, let symbol = dlsym(swallocDefaultHandle, "swalloc_profile_note_release") else { return nil }
    return unsafeBitCast(symbol, to: ProfileNoteRelease.self)
  }()

  /// libswalloc.so's swalloc_profile_dump.
  static let profileDump: ProfileDump? = {
    guard isSwalloc, let symbol = dlsym(swallocDefaultHandle, "swalloc_profile_dump") else { return nil }
    return unsafeBitCast(symbol, to: ProfileDump.self)
  }()
}
