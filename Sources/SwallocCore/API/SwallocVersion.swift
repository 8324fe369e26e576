// SwallocVersion: the version of the Swalloc sources this module was built from (SWALLOC_VERSION, swalloc.h).
import CShim

/// The version of Swalloc this module was built from, the same as `SWALLOC_VERSION` in `swalloc.h`.
/// `libswalloc.so` reports its own with `swalloc_version()` and in its statistics.
public enum SwallocVersion {
  /// The version as `MAJOR.MINOR.PATCH`, for example `"0.1.0"`.
  public static var string: String { String(cString: swalloc_version_text()) }
}
