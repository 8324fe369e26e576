// Exports: the Swift side of libswalloc.so's C ABI. One-line forwards to LibC (Core/LibC.swift), exported as
// hidden `swalloc_impl_` symbols; Sources/SwallocExports/Exports.c gives them their public names. (A public
// Swift function is emitted with protected visibility, and ld.so warns about direct references to protected
// functions from non-PIE programs such as gcc's cc1; the C definitions have default visibility.)
import CShim

@c(swalloc_impl_malloc)
func exportedMalloc(_ size: Int) -> UnsafeMutableRawPointer? { LibC.malloc(size) }

@c(swalloc_impl_free)
func exportedFree(_ pointer: UnsafeMutableRawPointer?) { LibC.free(pointer) }

/// Secure mode's malloc and free (Secure.swift); Exports.c switches to them when SWALLOC_SECURE is 1.
@c(swalloc_impl_secure_malloc)
func exportedSecureMalloc(_ size: Int) -> UnsafeMutableRawPointer? { Secure.malloc(size, full: false) }

@c(swalloc_impl_secure_free)
func exportedSecureFree(_ pointer: UnsafeMutableRawPointer?) { Secure.free(pointer, full: false) }

/// SWALLOC_SECURE=full's: the same bodies with the per-block checks (SecureCanary.swift) compiled in.
@c(swalloc_impl_secure_full_malloc)
func exportedSecureFullMalloc(_ size: Int) -> UnsafeMutableRawPointer? { Secure.malloc(size, full: true) }

@c(swalloc_impl_secure_full_free)
func exportedSecureFullFree(_ pointer: UnsafeMutableRawPointer?) { Secure.free(pointer, full: true) }

/// Secure mode's sized operator delete (CheckedDelete.c): the size must be the block's.
@c(swalloc_impl_checked_sized_free)
func exportedCheckedSizedFree(_ pointer: UnsafeMutableRawPointer?, _ size: Int) {
  SecureChecks.checkedSizedFree(pointer, size)
}

/// C++'s aligned sized operator delete (Operators.cpp): in secure mode the size and alignment are checked.
@c(swalloc_impl_aligned_sized_delete)
func exportedAlignedSizedDelete(_ pointer: UnsafeMutableRawPointer?, _ size: Int, _ alignment: Int) {
  if Options.secure { return SecureChecks.checkedAlignedSizedFree(pointer, alignment: alignment, size, exact: true) }
  LibC.release(pointer)
}

@c(swalloc_impl_calloc)
func exportedCalloc(_ count: Int, _ size: Int) -> UnsafeMutableRawPointer? { LibC.calloc(count, size) }

@c(swalloc_impl_realloc)
func exportedRealloc(_ pointer: UnsafeMutableRawPointer?, _ size: Int) -> UnsafeMutableRawPointer? {
  LibC.realloc(pointer, size)
}

@c(swalloc_impl_reallocarray)
func exportedReallocarray(_ pointer: UnsafeMutableRawPointer?, _ count: Int, _ size: Int)
  -> UnsafeMutableRawPointer?
{
  LibC.reallocarray(pointer, count, size)
}

@c(swalloc_impl_posix_memalign)
func exportedPosixMemalign(
  _ result: UnsafeMutablePointer<UnsafeMutableRawPointer?>, _ alignment: Int, _ size: Int
) -> Int32 {
  LibC.posixMemalign(result, alignment, size)
}

@c(swalloc_impl_aligned_alloc)
func exportedAlignedAlloc(_ alignment: Int, _ size: Int) -> UnsafeMutableRawPointer? {
  LibC.alignedAlloc(alignment, size)
}

@c(swalloc_impl_memalign)
func exportedMemalign(_ alignment: Int, _ size: Int) -> UnsafeMutableRawPointer? {
  LibC.memalign(alignment, size)
}

@c(swalloc_impl_valloc)
func exportedValloc(_ size: Int) -> UnsafeMutableRawPointer? { LibC.valloc(size) }

@c(swalloc_impl_pvalloc)
func exportedPvalloc(_ size: Int) -> UnsafeMutableRawPointer? { LibC.pvalloc(size) }

@c(swalloc_impl_malloc_usable_size)
func exportedMallocUsableSize(_ pointer: UnsafeMutableRawPointer?) -> Int {
  if Options.secure { return SecureChecks.checkedUsableSize(pointer) }
  return LibC.mallocUsableSize(pointer)
}

@c(swalloc_impl_free_sized)
func exportedFreeSized(_ pointer: UnsafeMutableRawPointer?, _ size: Int) {
  if Options.secure { return SecureChecks.checkedSizedFree(pointer, size, exact: false) }
  LibC.release(pointer)
}

@c(swalloc_impl_free_aligned_sized)
func exportedFreeAlignedSized(_ pointer: UnsafeMutableRawPointer?, _ alignment: Int, _ size: Int) {
  if Options.secure { return SecureChecks.checkedAlignedSizedFree(pointer, alignment: alignment, size, exact: false) }
  LibC.release(pointer)
}

@c(swalloc_impl_malloc_trim)
func exportedMallocTrim(_ pad: Int) -> Int32 { LibC.mallocTrim(pad) }

@c(swalloc_impl_mallinfo2)
func exportedMallinfo2() -> mallinfo2 { LibC.mallinfo2() }

@c(swalloc_impl_mallinfo)
func exportedMallinfo() -> mallinfo { LibC.mallinfo() }

@c(swalloc_impl_mallopt)
func exportedMallopt(_ parameter: Int32, _ value: Int32) -> Int32 { LibC.mallopt(parameter, value) }

@c(swalloc_impl_malloc_stats)
func exportedMallocStats() { Statistics.print(json: false) }

@c(swalloc_impl_malloc_info)
func exportedMallocInfo(_ options: Int32, _ stream: UnsafeMutableRawPointer?) -> Int32 {
  LibC.mallocInfo(options, stream)
}

@c(swalloc_impl_get_statistics)
func exportedGetStatistics(_ statistics: UnsafeMutablePointer<swalloc_statistics>) { LibC.statistics(statistics) }

@c(swalloc_impl_print_statistics)
func exportedPrintStatistics(_ json: Int32) { Statistics.print(json: json != 0) }

@c(swalloc_impl_purge)
func exportedPurge() -> Int { LibC.purgeNow() }
