// PurgeDelay: how long freed memory (free pages, cached spans) stays resident before it is purged or
// unmapped. The delay adapts between SWALLOC_PURGE_DELAY_MS (the floor) and SWALLOC_PURGE_DELAY_MAX_MS (the
// ceiling), after mimalloc's delays that grow when purged memory is wanted back: it doubles whenever the
// allocator must fault in memory (a fresh span, a purged page) within one delay of having purged some, and
// halves after a ceiling's worth of time without such a refault. A program that cycles through memory keeps
// it resident; memory it stops needing still goes back within the ceiling (at the next slow-path call).
import CShim
import Synchronization

enum PurgeDelay {
  /// The delay in force, in ms (between the two options).
  static let current = Atomic<UInt64>(10)
  /// When memory last went back to the kernel (monotonic ms; 0: never).
  static let lastPurgeAt = Atomic<UInt64>(0)
  /// When the delay last grew, or last shrank (monotonic ms).
  static let lastChangeAt = Atomic<UInt64>(0)

  /// Sets the delay to the floor (Options, once the environment is read).
  static func initialize() {
    current.store(UInt64(Options.purgeDelayMs), ordering: .relaxed)
  }

  @inline(__always)
  static var milliseconds: UInt64 { current.load(ordering: .relaxed) }

  /// Memory went back to the kernel at `now`.
  @inline(__always)
  static func notePurge(now: UInt64) {
    lastPurgeAt.store(now, ordering: .relaxed)
  }

  /// The allocator is about to fault in memory that is not resident (a fresh span, a purged page) at `now`.
  /// When something was purged less than one delay ago, that purge came too early: the delay doubles (up to
  /// the ceiling). Races between threads only lose a doubling.
  static func noteRefault(now: UInt64) {
    guard let raised = raised(milliseconds, purgedAt: lastPurgeAt.load(ordering: .relaxed), now: now,
                              ceiling: UInt64(Options.purgeDelayMaxMs))
    else { return }
    current.store(raised, ordering: .relaxed)
    lastChangeAt.store(now, ordering: .relaxed)
  }

  /// Called on purge checks: after a ceiling's worth of time with no refault the delay halves (down to the
  /// floor), so that memory a program no longer cycles through goes back sooner.
  @inline(__always)
  static func relax(now: UInt64) {
    guard let relaxed = relaxed(milliseconds, changedAt: lastChangeAt.load(ordering: .relaxed), now: now,
                                floor: UInt64(Options.purgeDelayMs), ceiling: UInt64(Options.purgeDelayMaxMs))
    else { return }
    current.store(relaxed, ordering: .relaxed)
    lastChangeAt.store(now, ordering: .relaxed)
  }

  /// The rule of `noteRefault`: the doubled delay when memory purged at `purgedAt` (0: never) is wanted back
  /// at `now`, within one `delay`; nil when the delay stays.
  static func raised(_ delay: UInt64, purgedAt: UInt64, now: UInt64, ceiling: UInt64) -> UInt64? {
    if purgedAt == 0 || now &- purgedAt > Swift.max(delay, 1) || delay >= ceiling { return nil }
    return Swift.min(ceiling, Swift.max(delay &* 2, 1))
  }

  /// The rule of `relax`: the halved delay once a ceiling's worth of time has passed since it last changed;
  /// nil when it stays.
  static func relaxed(_ delay: UInt64, changedAt: UInt64, now: UInt64, floor: UInt64, ceiling: UInt64) -> UInt64? {
    if delay <= floor || now &- changedAt < ceiling { return nil }
    return Swift.max(floor, delay / 2)
  }
}
