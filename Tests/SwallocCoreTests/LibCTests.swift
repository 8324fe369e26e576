import CShim
import Glibc
import Testing
@testable import Swalloc

/// The C library's semantics (DESIGN.md section 4), through the normal-mode build of the core.
@Suite("C semantics")
struct LibCTests {
  @Test("malloc returns 16-byte aligned, writable, distinct blocks", arguments: [0, 1, 8, 15, 16, 17, 100, 1024, 1025, 5000, 70_000, 600_000, 5_000_000])
  func mallocAlignment(byteCount: Int) throws {
    var blocks: [UnsafeMutableRawPointer] = []
    for _ in 0..<64 {
      let block = try #require(LibC.malloc(byteCount))
      #expect(UInt(bitPattern: block) % 16 == 0)
      #expect(LibC.mallocUsableSize(block) >= byteCount)
      memset(block, 0xAB, LibC.mallocUsableSize(block))
      blocks.append(block)
    }
    #expect(Set(blocks).count == blocks.count)
    for block in blocks { LibC.free(block) }
  }

  /// The usable size of a pointer inside a block is what is left of the block (LibC.usableSize finds the
  /// block's start from the page's reciprocal, no division): checked at every 16-byte offset of the first
  /// blocks of small classes, and at offsets spread over medium and large blocks, against the block size.
  @Test("malloc_usable_size of a pointer inside a block is what is left of it",
        arguments: [16, 48, 112, 1000, 1024, 3000, 20_000, 70_000, 300_000])
  func usableSizeInside(byteCount: Int) throws {
    var blocks: [UnsafeMutableRawPointer] = []
    for _ in 0..<5 { blocks.append(try #require(LibC.malloc(byteCount))) }
    for block in blocks {
      let whole = LibC.mallocUsableSize(block)
      #expect(whole >= byteCount)
      let step = whole <= 4096 ? 16 : whole / 61
      var offset = 0
      while offset < whole {
        #expect(LibC.mallocUsableSize(block + offset) == whole - offset, "offset \(offset) of \(whole)")
        offset += step
      }
    }
    for block in blocks { LibC.free(block) }
  }

  @Test("malloc(0) is unique and freeable; free(NULL) is a no-op")
  func zeroAndNull() throws {
    let a = try #require(LibC.malloc(0))
    let b = try #require(LibC.malloc(0))
    #expect(a != b)
    LibC.free(a)
    LibC.free(b)
    LibC.free(nil)
  }

  @Test("impossible sizes fail with ENOMEM", arguments: [Int.max, Int.min, -1, Int.max / 2 + 1])
  func impossibleSizes(byteCount: Int) {
    swalloc_errno_set(0)
    #expect(LibC.malloc(byteCount) == nil)
    #expect(swalloc_errno_get() == ENOMEM)
    swalloc_errno_set(0)
    #expect(LibC.realloc(nil, byteCount) == nil)
    #expect(swalloc_errno_get() == ENOMEM)
  }

  @Test("free preserves errno, on fast and slow paths")
  func freePreservesErrno() throws {
    for byteCount in [16, 4000, 100_000, 3_000_000] {
      let block = try #require(LibC.malloc(byteCount))
      swalloc_errno_set(12345)
      LibC.free(block)
      #expect(swalloc_errno_get() == 12345)
    }
  }

  @Test("calloc zeroes, also reused dirty memory; overflow is ENOMEM")
  func calloc() throws {
    for byteCount in [24, 1000, 20_000, 2_000_000] {
      let dirty = try #require(LibC.malloc(byteCount))
      memset(dirty, 0xFF, byteCount)
      LibC.free(dirty)
      let block = try #require(LibC.calloc(1, byteCount))
      let bytes = UnsafeRawBufferPointer(start: block, count: byteCount)
      #expect(bytes.allSatisfy { $0 == 0 })
      LibC.free(block)
    }
    swalloc_errno_set(0)
    #expect(LibC.calloc(Int.max / 2, 4) == nil)
    #expect(swalloc_errno_get() == ENOMEM)
    swalloc_errno_set(0)
    #expect(LibC.calloc(-1, -1) == nil)  // SIZE_MAX * SIZE_MAX
    #expect(swalloc_errno_get() == ENOMEM)
  }

  @Test("realloc keeps contents, realloc(NULL) mallocs, realloc(p, 0) frees and returns NULL")
  func realloc() throws {
    var block = try #require(LibC.realloc(nil, 10))
    for index in 0..<10 { block.storeBytes(of: UInt8(index), toByteOffset: index, as: UInt8.self) }
    var size = 10
    for next in [100, 2000, 50_000, 700_000, 9_000_000, 30, 5] {
      block = try #require(LibC.realloc(block, next))
      size = min(size, next)
      for index in 0..<min(10, size) {
        #expect(block.load(fromByteOffset: index, as: UInt8.self) == UInt8(index))
      }
    }
    #expect(LibC.realloc(block, 0) == nil)
    swalloc_errno_set(0)
    let reallocArray = try #require(LibC.reallocarray(nil, 10, 10))
    #expect(LibC.reallocarray(reallocArray, Int.max, 3) == nil)
    #expect(swalloc_errno_get() == ENOMEM)
    LibC.free(reallocArray)  // untouched by the failed call
  }

  @Test("posix_memalign: EINVAL for bad alignments leaves *memptr untouched", arguments: [0, 1, 2, 4, 3, 24, 48, 100])
  func posixMemalignInvalid(alignment: Int) {
    let sentinel = UnsafeMutableRawPointer(bitPattern: 0x1234)
    var result: UnsafeMutableRawPointer? = sentinel
    #expect(LibC.posixMemalign(&result, alignment, 100) == EINVAL)
    #expect(result == sentinel)
  }

  @Test("aligned allocation sweep", arguments: [8, 16, 32, 64, 128, 256, 512, 1024, 4096, 16384, 65536, 1 << 20, 8 << 20])
  func alignedSweep(alignment: Int) throws {
    for byteCount in [0, 1, 7, 33, 500, 4096, 10_000, 100_000, 1_000_000] {
      var result: UnsafeMutableRawPointer? = nil
      #expect(LibC.posixMemalign(&result, alignment, byteCount) == 0)
      let block = try #require(result)
      #expect(UInt(bitPattern: block) % UInt(alignment) == 0)
      // A zero-byte request still gets a writable byte (a regression: huge zero-byte spans ended at the block).
      #expect(LibC.mallocUsableSize(block) >= max(byteCount, 1))
      memset(block, 0x5A, max(byteCount, 1))
      LibC.free(block)
      let other = try #require(LibC.alignedAlloc(alignment, byteCount))
      #expect(UInt(bitPattern: other) % UInt(alignment) == 0)
      LibC.free(other)
    }
  }

  @Test("aligned_alloc rejects non-powers of two; memalign rounds them up; valloc and pvalloc page-align")
  func alignmentVariants() throws {
    swalloc_errno_set(0)
    #expect(LibC.alignedAlloc(24, 100) == nil)
    #expect(swalloc_errno_get() == EINVAL)
    let rounded = try #require(LibC.memalign(48, 100))
    #expect(UInt(bitPattern: rounded) % 64 == 0)
    LibC.free(rounded)
    let notMultiple = try #require(LibC.alignedAlloc(256, 1000))  // size not a multiple of the alignment
    #expect(UInt(bitPattern: notMultiple) % 256 == 0)
    LibC.free(notMultiple)
    let page = try #require(LibC.valloc(10))
    #expect(UInt(bitPattern: page) % 4096 == 0)
    LibC.free(page)
    let whole = try #require(LibC.pvalloc(5000))
    #expect(UInt(bitPattern: whole) % 4096 == 0)
    #expect(LibC.mallocUsableSize(whole) >= 8192)
    LibC.free(whole)
    let onePage = try #require(LibC.pvalloc(0))
    #expect(LibC.mallocUsableSize(onePage) >= 4096)
    LibC.free(onePage)
  }

  @Test("power-of-two sizes up to the page size are naturally aligned", arguments: [16, 32, 64, 128, 256, 512, 1024, 2048, 4096])
  func naturalAlignment(byteCount: Int) throws {
    for _ in 0..<100 {
      let block = try #require(LibC.malloc(byteCount))
      #expect(UInt(bitPattern: block) % UInt(byteCount) == 0)
      LibC.free(block)
    }
  }

  @Test("a foreign pointer is detected and left alone")
  func foreignPointer() throws {
    let glibcBlock = Glibc.malloc(64)  // glibc's block in this test process
    let foreign = try #require(glibcBlock)
    memset(foreign, 0x42, 64)
    let before = Diagnostics.invalidFreeCount.load(ordering: .relaxed)
    LibC.free(foreign)
    #expect(Diagnostics.invalidFreeCount.load(ordering: .relaxed) > before)
    #expect(LibC.mallocUsableSize(foreign) == 0)
    #expect(UnsafeRawBufferPointer(start: foreign, count: 64).allSatisfy { $0 == 0x42 })
    Glibc.free(foreign)
    var onStack = 0
    withUnsafeMutablePointer(to: &onStack) { LibC.free(UnsafeMutableRawPointer($0)) }
  }
}
