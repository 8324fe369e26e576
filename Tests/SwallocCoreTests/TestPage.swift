// A page descriptor and its blocks in ordinary memory, for tests that build or carve a page's lists by hand.
@testable import Swalloc

/// Runs `body` with a zeroed page descriptor whose `byteCount` bytes of `blockByteCount`-byte blocks start at
/// the region also passed (`reserved` set to the blocks that fit, nothing carved); both are freed after.
func withTestPage<Result>(byteCount: Int, blockByteCount: Int,
                          _ body: (UnsafeMutablePointer<Page>, UnsafeMutableRawPointer) -> Result) -> Result {
  let region = UnsafeMutableRawPointer.allocate(byteCount: byteCount, alignment: 64)
  defer { region.deallocate() }
  let raw = UnsafeMutableRawPointer.allocate(byteCount: MemoryLayout<Page>.stride, alignment: 16)
  defer { raw.deallocate() }
  raw.initializeMemory(as: UInt8.self, repeating: 0, count: MemoryLayout<Page>.stride)
  let page = raw.assumingMemoryBound(to: Page.self)
  page.pointee.start = region
  page.pointee.blockByteCount = blockByteCount
  page.pointee.reserved = Int32(byteCount / blockByteCount)
  page.pointee.reciprocal = Page.reciprocal(of: blockByteCount)
  return body(page, region)
}
