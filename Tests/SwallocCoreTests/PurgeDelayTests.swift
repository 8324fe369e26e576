// The purge delay's rules (PurgeDelay): it doubles when purged memory is wanted back within one delay, up to
// the ceiling, and halves back to the floor after a ceiling's worth of time without that.
import Testing

@testable import Swalloc

@Suite("Adaptive purge delay")
struct PurgeDelayTests {
  @Test("a refault within one delay of a purge doubles the delay, up to the ceiling")
  func raise() {
    #expect(PurgeDelay.raised(10, purgedAt: 1000, now: 1005, ceiling: 1000) == 20)
    #expect(PurgeDelay.raised(10, purgedAt: 1000, now: 1010, ceiling: 1000) == 20)
    #expect(PurgeDelay.raised(640, purgedAt: 1000, now: 1100, ceiling: 1000) == 1000)
    // A delay of 0 (purge at once) still grows when the ceiling allows it.
    #expect(PurgeDelay.raised(0, purgedAt: 1000, now: 1000, ceiling: 1000) == 1)
  }

  @Test("no raise: nothing purged yet, a purge longer than one delay ago, or the ceiling reached")
  func noRaise() {
    #expect(PurgeDelay.raised(10, purgedAt: 0, now: 5, ceiling: 1000) == nil)
    #expect(PurgeDelay.raised(10, purgedAt: 1000, now: 1011, ceiling: 1000) == nil)
    #expect(PurgeDelay.raised(1000, purgedAt: 1000, now: 1001, ceiling: 1000) == nil)
    // A fixed delay (ceiling = floor, what SWALLOC_PURGE_DELAY_MS alone gives) never grows.
    #expect(PurgeDelay.raised(10, purgedAt: 1000, now: 1001, ceiling: 10) == nil)
  }

  @Test("after a ceiling's worth of time without a change the delay halves, down to the floor")
  func relax() {
    #expect(PurgeDelay.relaxed(1000, changedAt: 0, now: 1000, floor: 10, ceiling: 1000) == 500)
    #expect(PurgeDelay.relaxed(16, changedAt: 0, now: 5000, floor: 10, ceiling: 1000) == 10)
    #expect(PurgeDelay.relaxed(1000, changedAt: 500, now: 1499, floor: 10, ceiling: 1000) == nil)
    #expect(PurgeDelay.relaxed(10, changedAt: 0, now: 5000, floor: 10, ceiling: 1000) == nil)
  }

  @Test("from the floor, five refaults in a row take the delay past 300 ms; idle seconds bring it back")
  func cycle() {
    var delay: UInt64 = 10
    var now: UInt64 = 1000
    for _ in 0..<5 {
      now += delay  // purged once due, wanted back right after
      delay = PurgeDelay.raised(delay, purgedAt: now, now: now + 1, ceiling: 1000) ?? delay
    }
    #expect(delay == 320)
    var changedAt = now
    var seconds = 0
    while let relaxed = PurgeDelay.relaxed(delay, changedAt: changedAt, now: changedAt + 1000, floor: 10,
                                           ceiling: 1000) {
      delay = relaxed
      changedAt += 1000
      seconds += 1
    }
    #expect(delay == 10)
    #expect(seconds == 5)
  }
}
