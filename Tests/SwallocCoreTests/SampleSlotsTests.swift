// The heap profiler's sample slots (SampleSlots): where each slot and its record lie. The first slots of the
// small areas share rows, and the first records of every area share the counters' page, so that a process
// sampling a few blocks of many sizes touches a few pages; every slot must still be found from any address in
// it, aligned to its size, and apart from every other slot.
import Testing

@testable import Swalloc

@Suite("Sample slots")
struct SampleSlotsTests {
  /// Slot indices to check in `area`: the shared ones, the first dense ones, and the last.
  func indices(_ area: Int) -> [Int] {
    let count = SampleSlots.slotCount(area)
    return [0, 1, SampleSlots.sharedCount - 1, SampleSlots.sharedCount, SampleSlots.sharedCount + 1, 100, count - 1]
  }

  @Test("every slot is found from its start and its last byte, aligned to its size, in the region")
  func slotsRoundTrip() {
    for area in 0..<SampleSlots.areaCount {
      let size = 1 << (area + SampleSlots.smallestShift)
      for index in indices(area) {
        let offset = SampleSlots.slotOffset(area, index)
        #expect(offset % size == 0, "area \(area) slot \(index) at \(offset) is not aligned to \(size)")
        #expect(offset >= 0 && offset + size <= SampleSlots.regionByteCount)
        let start = SampleSlots.slot(offset: offset)
        #expect(start.number == SampleSlots.firstSlot(area) + index && start.isStart && start.byteCount == size,
                "area \(area) slot \(index): \(start)")
        if size > 1 {
          let last = SampleSlots.slot(offset: offset + size - 1)
          #expect(last.number == start.number && !last.isStart && last.byteCount == size)
        }
      }
    }
  }

  @Test("no slot in the gap before the large areas")
  func gapBeforeLargeAreas() {
    for offset in stride(from: SampleSlots.smallByteCount, to: SampleSlots.largeAreasOffset, by: 4096) {
      #expect(!SampleSlots.slot(offset: offset).isStart)
    }
  }

  @Test("the shared rows: each small area's first slots share two pages a row and never overlap")
  func sharedRows() {
    var taken: [(Int, Int)] = []
    for row in 0..<SampleSlots.sharedCount {
      var pages = Set<Int>()
      for area in 0..<SampleSlots.smallAreaCount {
        let offset = SampleSlots.slotOffset(area, row)
        let size = 1 << (area + SampleSlots.smallestShift)
        #expect(offset >= SampleSlots.areasByteCount)
        pages.insert(offset / 4096)
        for (other, otherSize) in taken { #expect(offset + size <= other || other + otherSize <= offset) }
        taken.append((offset, size))
      }
      #expect(pages.count == 2, "row \(row) spans \(pages.count) pages")
      // The 16 bytes at the row's end belong to no slot.
      let end = SampleSlots.areasByteCount + (row + 1) << SampleSlots.sharedRowShift
      let tail = SampleSlots.slot(offset: end - 16)
      #expect(!tail.isStart && tail.number == 0)
      #expect(!SampleSlots.slot(offset: end - 1).isStart)
    }
  }

  @Test("records: the first slots' share the counters' page, the others lie apart, none overlaps")
  func records() {
    var offsets = Set<Int>()
    for area in 0..<SampleSlots.areaCount {
      for index in indices(area) {
        let offset = SampleSlots.recordOffset(SampleSlots.firstSlot(area) + index)
        #expect(offset % SampleSlots.recordStride == 0)
        #expect(offsets.insert(offset).inserted, "area \(area) slot \(index): record at \(offset) taken twice")
        #expect(offset + SampleSlots.recordStride + SampleSlots.countersByteCount <= SampleSlots.recordsByteCount)
        if index < SampleSlots.sharedCount {
          #expect(SampleSlots.countersByteCount + offset + SampleSlots.recordStride <= 4096)
        } else {
          #expect(SampleSlots.countersByteCount + offset >= 4096)
        }
      }
    }
  }

  @Test("page sample entries lie between the slice descriptors and the huge span record, page records apart")
  func pageSampleEntries() {
    let descriptorsEnd = Segment.pageDescriptorOffset + Segment.sliceCount * Page.stride
    let tableEnd = PageSamples.tableOffset + Segment.sliceCount * PageSamples.wordsPerSlice * 8
    #expect(PageSamples.tableOffset >= descriptorsEnd)
    #expect(tableEnd <= Profile.recordOffset && tableEnd <= Secure.headerGuardOffset)
    // Each page's hint and entries stay within its own slices' words (a medium page's 32 blocks of 16 KiB
    // once took 31 entries, 8 of them the next page's words: a free read a hint as an entry and crashed).
    for kind in [SegmentKind.small, .medium, .large] {
      let slicesPerPage = 1 << (Segment.pageShift(kind) - Segment.sliceShift)
      let blocksPerPage = (1 << Segment.pageShift(kind)) / 4096
      let words = PageSamples.wordsPerSlice * slicesPerPage
      let used = PageSamples.wordCount(slicesPerPageShift: Segment.pageShift(kind) - Segment.sliceShift,
                                       reserved: blocksPerPage)
      #expect(used <= words, "\(kind): \(used) words of \(words)")
    }
    // Block offsets in a segment (22 bits) and page record numbers fit an entry.
    #expect(UInt64(Segment.byteCount) << PageSamples.recordBits <= UInt64(1) << 63)
    #expect(SampleSlots.pageRecordCount < 1 << Int(PageSamples.recordBits))
    // Page records follow every slot's, inside the records mapping; the page records' counters come after
    // the areas' and before the dirty heads.
    let firstPage = SampleSlots.recordOffset(SampleSlots.firstSlot(SampleSlots.pageRecordArea))
    let lastPage = SampleSlots.recordOffset(SampleSlots.firstSlot(SampleSlots.pageRecordArea) + SampleSlots.pageRecordCount - 1)
    let lastSlot = SampleSlots.recordOffset(SampleSlots.totalSlotCount - 1)
    #expect(firstPage > lastSlot)
    #expect(SampleSlots.countersByteCount + lastPage + SampleSlots.recordStride <= SampleSlots.recordsByteCount)
    #expect(SampleSlots.dirtyHeadsOffset >= (SampleSlots.pageRecordArea + 1) * 16)
    #expect(SampleSlots.dirtyHeadsOffset + SampleSlots.areaCount * 8 <= SampleSlots.countersByteCount)
  }
}
