// OSMemory's mappings: what a refused huge-page or locked mapping leaves behind. Linux refuses a MAP_FIXED
// huge-page mapping only after it has unmapped what was in the way, so an alignment reservation gets a hole
// that another thread's mmap can take; unmapping the whole reservation after the refusal then unmapped that
// thread's mapping (a regression: SWALLOC_HUGE_PAGES=explicit with no free huge pages crashed now and then,
// a thread's fresh segment unmapped under it).
import CShim
import Glibc
import Synchronization
import Testing
import SwallocTestSupport

@testable import Swalloc

private var mapFailed: UnsafeMutableRawPointer? { UnsafeMutableRawPointer(bitPattern: UInt.max) }

/// Whether the kernel refuses a 2 MiB huge-page mapping now (no free huge pages: what these machines have).
private func hugePagesRefused() -> Bool {
  let mapped = mmap(nil, 2 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0)
  if mapped == mapFailed { return true }
  munmap(mapped, 2 << 20)
  return false
}

/// Whether all of [address, address + byteCount) is mapped (madvise answers ENOMEM for an unmapped page);
/// nothing is touched.
private func isMapped(_ address: UnsafeMutableRawPointer, byteCount: Int) -> Bool {
  madvise(address, byteCount, MADV_NORMAL) == 0
}

@Suite("Kernel mappings")
struct OSMemoryTests {
  @Test(
    "a refused huge-page mapping never unmaps another thread's mapping",
    .enabled(if: hugePagesRefused(), "the kernel has free huge pages: nothing is refused"))
  func refusedHugePagesLeaveOthersAlone() {
    let lost = Atomic<Int>(0)
    let refusals = Atomic<Int>(0)
    let done = Atomic<Bool>(false)
    onThreads(3) { index in
      if index < 2 {
        // Segment-sized huge-page requests at segment alignment, refused one after another.
        for _ in 0..<3000 {
          if let mapped = OSMemory.reserveAligned(byteCount: 4 << 20, alignment: 4 << 20, flags: MAP_HUGETLB) {
            OSMemory.release(mapped, byteCount: 4 << 20)
          } else {
            refusals.wrappingAdd(1, ordering: .relaxed)
          }
        }
        done.store(true, ordering: .releasing)
        return
      }
      // Meanwhile: mappings of 1 to 4 MiB, each checked while it lives, and before it is unmapped.
      var live: [(UnsafeMutableRawPointer, Int)] = []
      var round = 0
      while !done.load(ordering: .acquiring) || round < 200 {
        round += 1
        let byteCount = (1 + round % 4) << 20
        let mapped = mmap(nil, byteCount, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
        if mapped != mapFailed, let mapped { live.append((mapped, byteCount)) }
        if live.count > 16 || (done.load(ordering: .acquiring) && !live.isEmpty) {
          let (address, count) = live.removeFirst()
          if !isMapped(address, byteCount: count) { lost.wrappingAdd(1, ordering: .relaxed) }
          munmap(address, count)
        }
        for (address, count) in live where !isMapped(address, byteCount: count) {
          lost.wrappingAdd(1, ordering: .relaxed)
        }
      }
      for (address, count) in live { munmap(address, count) }
    }
    #expect(refusals.load(ordering: .relaxed) == 6000)
    #expect(lost.load(ordering: .relaxed) == 0, "mappings of the checking thread unmapped by a refused one")
  }

  @Test("aligned mappings with flags: aligned, sized, readable and writable; huge pages refused leave no mapping")
  func alignedWithFlags() throws {
    for alignment in [4096, 2 << 20, 4 << 20, 16 << 20] {
      let mapped = try #require(OSMemory.reserveAligned(byteCount: 4 << 20, alignment: alignment, flags: 0))
      #expect(UInt(bitPattern: mapped) % UInt(alignment) == 0)
      #expect(isMapped(mapped, byteCount: 4 << 20))
      mapped.storeBytes(of: 7, toByteOffset: (4 << 20) - 8, as: Int.self)
      #expect(mapped.load(fromByteOffset: (4 << 20) - 8, as: Int.self) == 7)
      OSMemory.release(mapped, byteCount: 4 << 20)
    }
    // Locked (mlock once the mapping stands; root, or within RLIMIT_MEMLOCK): populated at once.
    if let locked = OSMemory.reserveAligned(byteCount: 1 << 20, alignment: 4 << 20, flags: MAP_LOCKED) {
      #expect(UInt(bitPattern: locked) % UInt(4 << 20) == 0)
      var resident = [UInt8](repeating: 0, count: 256)
      #expect(mincore(locked, 1 << 20, &resident) == 0)
      #expect(resident.allSatisfy { $0 & 1 == 1 }, "a locked mapping is resident from the start")
      OSMemory.release(locked, byteCount: 1 << 20)
    }
    if hugePagesRefused() {
      #expect(OSMemory.reserveAligned(byteCount: 4 << 20, alignment: 4 << 20, flags: MAP_HUGETLB) == nil)
    }
  }
}
