// The heap profile writer's work tables (ProfileScratch): location ids by code address in an open-addressing
// table that starts at one page and doubles when half full, so that a dump touches pages for the addresses it
// has, not for every frame of every stack.
import Glibc
import Testing

@testable import Swalloc

@Suite("Profile writer tables")
struct ProfileScratchTests {
  /// The resident pages of `byteCount` bytes at `start` (page-aligned outward).
  func residentPages(_ start: UnsafeMutableRawPointer, _ byteCount: Int) -> Int {
    let first = UInt(bitPattern: start) & ~4095
    let end = (UInt(bitPattern: start) + UInt(byteCount) + 4095) & ~4095
    let pages = Int((end - first) / 4096)
    var vector = [UInt8](repeating: 0, count: pages)
    let result = mincore(UnsafeMutableRawPointer(bitPattern: first), Int(end - first), &vector)
    #expect(result == 0)
    return vector.reduce(0) { $0 + Int($1 & 1) }
  }

  @Test("location ids: one per distinct address, in first-seen order, through every doubling of the table")
  func locationIDs() throws {
    // Room for 200 000 frames: the largest table is 2^19 slots (8 MiB), as the old fixed table was.
    var scratch = try #require(ProfileScratch(frameCount: 200_000, sampleCount: 1, mappingCapacity: 4,
                                               nameCapacity: 64, readsMaps: false))
    defer { scratch.release() }
    let first = scratch.locationSlots
    // 5000 distinct addresses, each asked for three times (as the frames of many stacks share addresses).
    for round in 0..<3 {
      for index in 0..<5000 {
        let address = UInt(0x5555_0000_0000) + UInt(index) * 37
        #expect(scratch.locationID(address) == UInt(index + 1), "round \(round), address \(index)")
      }
    }
    #expect(scratch.locationCount == 5000)
    #expect(scratch.locationSlotCount == 16384)
    for index in 0..<5000 { #expect(scratch.locations[index] == UInt(0x5555_0000_0000) + UInt(index) * 37) }
    // The tables of 256 to 8192 slots were purged as they were outgrown; the 16384-slot one takes 256 KiB:
    // 64 pages, not the 2048 of a table sized for every frame (8 MiB, all of it touched by the hash).
    let room = 2 * 524_288 * 16
    let resident = residentPages(UnsafeMutableRawPointer(first), room)
    #expect(resident <= 64, "\(resident) pages of the location tables resident")
  }
}
