// Exports: the C ABI of libswalloc.so. One-line forwards to LibC (Core/LibC.swift); the malloc-family names
// are link-time aliases of these `swalloc_` functions (Package.swift), so `malloc` costs no extra jump.

@c(swalloc_malloc)
public func swalloc_malloc(_ size: Int) -> UnsafeMutableRawPointer? { LibC.malloc(size) }

@c(swalloc_free)
public func swalloc_free(_ pointer: UnsafeMutableRawPointer?) { LibC.free(pointer) }

@c(swalloc_calloc)
public func swalloc_calloc(_ count: Int, _ size: Int) -> UnsafeMutableRawPointer? { LibC.calloc(count, size) }

@c(swalloc_realloc)
public func swalloc_realloc(_ pointer: UnsafeMutableRawPointer?, _ size: Int) -> UnsafeMutableRawPointer? {
  LibC.realloc(pointer, size)
}

@c(swalloc_reallocarray)
public func swalloc_reallocarray(_ pointer: UnsafeMutableRawPointer?, _ count: Int, _ size: Int)
  -> UnsafeMutableRawPointer?
{
  LibC.reallocarray(pointer, count, size)
}

@c(swalloc_posix_memalign)
public func swalloc_posix_memalign(
  _ result: UnsafeMutablePointer<UnsafeMutableRawPointer?>, _ alignment: Int, _ size: Int
) -> Int32 {
  LibC.posixMemalign(result, alignment, size)
}

@c(swalloc_aligned_alloc)
public func swalloc_aligned_alloc(_ alignment: Int, _ size: Int) -> UnsafeMutableRawPointer? {
  LibC.alignedAlloc(alignment, size)
}

@c(swalloc_memalign)
public func swalloc_memalign(_ alignment: Int, _ size: Int) -> UnsafeMutableRawPointer? {
  LibC.memalign(alignment, size)
}

@c(swalloc_valloc)
public func swalloc_valloc(_ size: Int) -> UnsafeMutableRawPointer? { LibC.valloc(size) }

@c(swalloc_pvalloc)
public func swalloc_pvalloc(_ size: Int) -> UnsafeMutableRawPointer? { LibC.pvalloc(size) }

@c(swalloc_malloc_usable_size)
public func swalloc_malloc_usable_size(_ pointer: UnsafeMutableRawPointer?) -> Int {
  LibC.mallocUsableSize(pointer)
}

@c(swalloc_free_sized)
public func swalloc_free_sized(_ pointer: UnsafeMutableRawPointer?, _ size: Int) { LibC.free(pointer) }

@c(swalloc_free_aligned_sized)
public func swalloc_free_aligned_sized(_ pointer: UnsafeMutableRawPointer?, _ alignment: Int, _ size: Int) {
  LibC.free(pointer)
}
