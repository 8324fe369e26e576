// SwallocProfile: the heap profiler of libswalloc.so (SWALLOC_PROFILE) from Swift.
import CShim
import Glibc

/// The heap profile of the process allocator, when it is libswalloc.so running with `SWALLOC_PROFILE=1` or
/// `SWALLOC_PROFILE=leaks`: sampled allocation sites with their cumulative and live bytes and objects, in
/// pprof's format (`go tool pprof -http=: ./program file.pb.gz`).
///
/// Profiling is chosen when the process starts (the environment), not from Swift. The profile covers every
/// allocation that goes through `malloc` (Swift objects, arrays and strings, C and C++ code); blocks of a
/// ``SwallocHeap`` are not sampled.
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

  /// libswalloc.so's swalloc_profile_dump.
  static let profileDump: ProfileDump? = {
    guard isSwalloc, let symbol = dlsym(swallocDefaultHandle, "swalloc_profile_dump") else { return nil }
    return unsafeBitCast(symbol, to: ProfileDump.self)
  }()
}
