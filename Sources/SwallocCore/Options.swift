// Options: SWALLOC_* environment variables, read once by walking `environ` (getenv-style helpers that copy
// are off limits inside malloc). A malformed value gets one warning naming the accepted values; the default
// applies.
import CShim

enum StatisticsOutput: UInt8 {
  case off = 0
  case table = 1
  case json = 2
}

enum HugePageMode: UInt8 {
  /// Normal 4 KiB pages (the kernel may still use transparent huge pages if its policy is `always`).
  case off = 0
  /// `madvise(MADV_HUGEPAGE)` on the spans of huge blocks of 2 MiB and more: a large block faults in 2 MiB
  /// at a time (512 times fewer faults) where the kernel's policy is `madvise`. Segments of small blocks keep
  /// 4 KiB pages (purging them page by page would split huge pages). Not the default: on the project's VMs
  /// the kernel spends twice the system time on those faults (largeblocks: 0.84-1.36 s against 0.53-0.60 s).
  case large = 3
  /// `madvise(MADV_HUGEPAGE)` on segments and huge spans; purging keeps whole 2 MiB pages.
  case transparent = 1
  /// `mmap(MAP_HUGETLB)`: explicit 2 MiB pages from the kernel's pool (`/proc/sys/vm/nr_hugepages`), never
  /// purged; normal pages when the pool is empty.
  case explicit = 2
}

enum Options {
  @exclusivity(unchecked) nonisolated(unsafe) static var isInitialized = false
  /// SWALLOC_SHOW_STATS: 0 (default), 1 (a table on stderr at exit), json.
  @exclusivity(unchecked) nonisolated(unsafe) static var showStatistics = StatisticsOutput.off
  /// SWALLOC_VERBOSE: 0 (default) or 1: report invalid frees and fallbacks on stderr.
  @exclusivity(unchecked) nonisolated(unsafe) static var verbose = false
  /// SWALLOC_PURGE_DELAY_MS: the shortest time a free page or cached span keeps its memory before
  /// MADV_DONTNEED or munmap (default 10). Given alone, the delay is fixed at it (the ceiling follows).
  @exclusivity(unchecked) nonisolated(unsafe) static var purgeDelayMs = 10
  /// SWALLOC_PURGE_DELAY_MAX_MS: the longest that delay grows to when purged memory is wanted back soon
  /// after (PurgeDelay; default 1000, or SWALLOC_PURGE_DELAY_MS when only that is given).
  @exclusivity(unchecked) nonisolated(unsafe) static var purgeDelayMaxMs = 1000
  /// SWALLOC_HUGE_PAGES: off (default), large, transparent, explicit.
  @exclusivity(unchecked) nonisolated(unsafe) static var hugePages = HugePageMode.off
  /// SWALLOC_HUGE_RESERVE: bytes of explicit huge pages mapped at start for segments (default 0).
  @exclusivity(unchecked) nonisolated(unsafe) static var hugeReserveByteCount = 0
  /// SWALLOC_LOCKED: 0 (default) or 1: map memory with MAP_LOCKED (never swapped out, never purged).
  @exclusivity(unchecked) nonisolated(unsafe) static var locked = false
  /// SWALLOC_SECURE: 0, 1, or full (also 2). 1: encoded free lists, double and invalid frees abort, guard
  /// pages, randomized free-list order (Secure.swift). full: all of 1, plus per-block canaries and trailers,
  /// the fill of freed blocks and the check of the block before on free (SecureCanary.swift). The default is
  /// 0, or 1 in a build with `-DSWALLOC_SECURE_DEFAULT`. `secure` is true at both levels.
  #if SWALLOC_SECURE_DEFAULT
  @exclusivity(unchecked) nonisolated(unsafe) static var secure = true
  #else
  @exclusivity(unchecked) nonisolated(unsafe) static var secure = false
  #endif
  /// SWALLOC_SECURE=full (or 2): the per-block checks too. Tested on slow paths only; the fast paths of the
  /// two levels are separate entry points (Exports.c), so level 1 runs exactly the instructions it ran
  /// before the checks existed.
  @exclusivity(unchecked) nonisolated(unsafe) static var secureFull = false

  /// 0 (off), 1 or 2 (full): the statistics' "secure mode" row.
  static var secureLevel: Int { secure ? (secureFull ? 2 : 1) : 0 }
  /// SWALLOC_PROFILE: 0 (default), 1 (a pprof profile at exit), leaks (also a table of live sites on stderr).
  @exclusivity(unchecked) nonisolated(unsafe) static var profile = ProfileMode.off
  /// SWALLOC_PROFILE_SAMPLE: the mean bytes allocated between samples (default 512 KiB, jemalloc's default).
  @exclusivity(unchecked) nonisolated(unsafe) static var profileSampleByteCount = 512 * 1024
  /// SWALLOC_PROFILE_PREFIX: profiles are written to <prefix>.<pid>.pb.gz (default `swalloc`); the value in
  /// `environ`, which stays in place.
  @exclusivity(unchecked) nonisolated(unsafe) static var profilePrefix: UnsafePointer<CChar>? = nil
  /// SWALLOC_PROFILE_SIGNAL: a signal on which a profile is written (0: none).
  @exclusivity(unchecked) nonisolated(unsafe) static var profileSignal: Int32 = 0
  /// SWALLOC_GUARDED_SAMPLE: one allocation in N is guarded (0: off); nil when not given (off, or secure
  /// mode's default rate).
  @exclusivity(unchecked) nonisolated(unsafe) static var guardedSampleRate: Int? = nil
  /// Whether the Swift API's heaps leave their fast paths for checks: secure mode.
  @exclusivity(unchecked) nonisolated(unsafe) static var userHeapsChecked = false
  /// Secure mode is decided once, before the first heap or span exists: blocks handed out in one mode
  /// cannot be freed in the other.
  @exclusivity(unchecked) nonisolated(unsafe) static var isSecureDecided = false

  /// Reads the environment the first time it is called with one. Racing threads read the same values.
  /// The first allocations can come before libc has set `environ` (the loader allocates early): those leave
  /// the options for a later call, at the latest the library constructor.
  static func initializeIfNeeded() {
    if isInitialized { return }
    if !isSecureDecided { decideSecureMode() }
    guard let environment = swalloc_environ() else { return }
    isInitialized = true
    var delayGiven = false
    var maximumDelayGiven = false
    var index = 0
    while let entry = environment[index] {
      index &+= 1
      // Not an option: the `swalloc run` command's handshake, answered by Sources/SwallocExports/Handshake.c.
      if match(entry, "SWALLOC_RUN_HANDSHAKE=") != nil { continue }
      if let value = match(entry, "SWALLOC_SHOW_STATS=") {
        if equals(value, "0") || equals(value, "") {
          showStatistics = .off
        } else if equals(value, "1") {
          showStatistics = .table
        } else if equals(value, "json") {
          showStatistics = .json
        } else {
          warn(entry, accepted: "0, 1, json")
        }
        if showStatistics != .off { OSMemory.keepStandardError() }
      } else if let value = match(entry, "SWALLOC_VERBOSE=") {
        if equals(value, "0") || equals(value, "") {
          verbose = false
        } else if equals(value, "1") {
          verbose = true
        } else {
          warn(entry, accepted: "0, 1")
        }
      } else if let value = match(entry, "SWALLOC_PURGE_DELAY_MS=") {
        if let milliseconds = parseDelay(entry, value) {
          purgeDelayMs = milliseconds
          delayGiven = true
        }
      } else if let value = match(entry, "SWALLOC_PURGE_DELAY_MAX_MS=") {
        if let milliseconds = parseDelay(entry, value) {
          purgeDelayMaxMs = milliseconds
          maximumDelayGiven = true
        }
      } else if let value = match(entry, "SWALLOC_HUGE_PAGES=") {
        if equals(value, "off") || equals(value, "0") || equals(value, "") {
          hugePages = .off
        } else if equals(value, "large") {
          hugePages = .large
        } else if equals(value, "transparent") {
          hugePages = .transparent
        } else if equals(value, "explicit") {
          hugePages = .explicit
        } else {
          warn(entry, accepted: "off, large, transparent, explicit")
        }
      } else if let value = match(entry, "SWALLOC_HUGE_RESERVE=") {
        if let byteCount = parseByteCount(value), byteCount <= HugeReserve.maximumByteCount {
          hugeReserveByteCount = byteCount
        } else {
          warn(entry, accepted: "a size in bytes up to 4G, with an optional K, M or G suffix (64M)")
        }
      } else if let value = match(entry, "SWALLOC_LOCKED=") {
        if equals(value, "0") || equals(value, "") {
          locked = false
        } else if equals(value, "1") {
          locked = true
        } else {
          warn(entry, accepted: "0, 1")
        }
      } else if let value = match(entry, "SWALLOC_SECURE=") {
        // Already decided (decideSecureMode); here only the warning for a malformed value.
        if secureLevel(value) == nil { warn(entry, accepted: "0, 1, full, 2") }
      } else if let value = match(entry, "SWALLOC_PROFILE=") {
        if equals(value, "0") || equals(value, "") {
          profile = .off
        } else if equals(value, "1") {
          profile = .file
        } else if equals(value, "leaks") {
          profile = .leaks
        } else {
          warn(entry, accepted: "0, 1, leaks")
        }
        if profile == .leaks { OSMemory.keepStandardError() }
      } else if let value = match(entry, "SWALLOC_PROFILE_SAMPLE=") {
        if let byteCount = parseByteCount(value), byteCount >= 1, byteCount <= 1 << 40 {
          profileSampleByteCount = byteCount
        } else {
          warn(entry, accepted: "a mean number of bytes between samples, 1 to 1T, with an optional K, M or G suffix (512K)")
        }
      } else if let value = match(entry, "SWALLOC_PROFILE_PREFIX=") {
        if value.pointee != 0 { profilePrefix = UnsafePointer(value) } else { warn(entry, accepted: "a path prefix") }
      } else if let value = match(entry, "SWALLOC_PROFILE_SIGNAL=") {
        if let number = parseSignal(value) {
          profileSignal = number
        } else {
          warn(entry, accepted: "a signal number from 1 to 64 or a name: USR1, USR2, PROF, TERM, INT, HUP, QUIT, ...")
        }
      } else if let value = match(entry, "SWALLOC_GUARDED_SAMPLE=") {
        if let rate = parseInteger(value), rate <= Int(Int32.max) {
          guardedSampleRate = rate
        } else {
          warn(entry, accepted: "0 (off) or N: one allocation in N on average is guarded")
        }
      } else if let value = match(entry, "SWALLOC_GUARDED_SLOTS=") {
        if let count = parseInteger(value), count >= 1, count <= Guarded.maximumSlotCount {
          Guarded.slotCount = count
        } else {
          warn(entry, accepted: "a number of slots from 1 to 16384")
        }
      } else if match(entry, "SWALLOC_") != nil {  // every known option is matched above
        warnUnknown(entry)
      }
    }
    // A delay given alone is fixed (as before the delay adapted); a ceiling below the floor is the floor.
    if delayGiven && !maximumDelayGiven { purgeDelayMaxMs = purgeDelayMs }
    purgeDelayMaxMs = Swift.max(purgeDelayMaxMs, purgeDelayMs)
    PurgeDelay.initialize()
    // Guarded sampling: on when asked, and by default in secure mode (GuardedSlots.swift).
    Guarded.enable(rate: guardedSampleRate ?? (secure ? Guarded.secureDefaultRate : 0))
    // Guarded sampling needs no check on the Swift API's fast paths: its samples are chosen as free lists are
    // handed out, and its blocks' frees fail the fast path's segment-map test.
    userHeapsChecked = secure
    if profile != .off {
      ProfileScratch.noteStartingProcess()
      Profile.enable()
    }
    if hugeReserveByteCount > 0 {
      if hugePages == .explicit {
        HugeReserve.initialize()
      } else {
        Diagnostics.note("SWALLOC_HUGE_RESERVE applies only with SWALLOC_HUGE_PAGES=explicit; ignored")
      }
    }
  }

  /// If `entry` starts with `prefix`, the rest of it.
  static func match(_ entry: UnsafeMutablePointer<CChar>, _ prefix: StaticString) -> UnsafeMutablePointer<CChar>? {
    let bytes = prefix.utf8Start
    for index in 0..<prefix.utf8CodeUnitCount where UInt8(bitPattern: entry[index]) != bytes[index] {
      return nil
    }
    return entry + prefix.utf8CodeUnitCount
  }

  static func equals(_ value: UnsafeMutablePointer<CChar>, _ expected: StaticString) -> Bool {
    guard let rest = match(value, expected) else { return false }
    return rest.pointee == 0
  }

  /// The decimal digits at the start of `value`: their number, and how many characters they take; nil when
  /// there are none or they overflow.
  static func leadingDecimal(_ value: UnsafeMutablePointer<CChar>) -> (value: Int, length: Int)? {
    var result = 0
    var length = 0
    while value[length] >= 48 && value[length] <= 57 {
      if result > (Int.max - 9) / 10 { return nil }
      result = result * 10 + Int(value[length]) - 48
      length &+= 1
    }
    return length == 0 ? nil : (result, length)
  }

  /// A delay in milliseconds, 0 to an hour (the purge delay options); otherwise a warning and nil.
  static func parseDelay(_ entry: UnsafeMutablePointer<CChar>, _ value: UnsafeMutablePointer<CChar>) -> Int? {
    if let milliseconds = parseInteger(value), milliseconds <= 3_600_000 { return milliseconds }
    warn(entry, accepted: "a number of milliseconds from 0 to 3600000")
    return nil
  }

  /// A non-negative decimal integer, or nil.
  static func parseInteger(_ value: UnsafeMutablePointer<CChar>) -> Int? {
    guard let (result, length) = leadingDecimal(value), value[length] == 0 else { return nil }
    return result
  }

  /// A byte count: decimal digits with an optional K, M or G suffix (powers of 1024), or nil.
  static func parseByteCount(_ value: UnsafeMutablePointer<CChar>) -> Int? {
    guard let (result, length) = leadingDecimal(value) else { return nil }
    var shift = 0
    if value[length] != 0 {
      switch UInt8(bitPattern: value[length]) | 0x20 {  // lower case
      case 107: shift = 10  // k
      case 109: shift = 20  // m
      case 103: shift = 30  // g
      default: return nil
      }
      if value[length + 1] != 0 { return nil }
    }
    return result <= Int.max >> shift ? result << shift : nil
  }

  /// A signal number (1 ... 64) or name, with or without the SIG prefix; nil otherwise. SIGKILL and SIGSTOP
  /// cannot be caught, SIGSEGV, SIGBUS, SIGILL and SIGFPE are faults: refused.
  static func parseSignal(_ value: UnsafeMutablePointer<CChar>) -> Int32? {
    if let number = parseInteger(value) {
      switch number {
      case 4, 7, 8, 9, 11, 19: return nil  // ILL, BUS, FPE, KILL, SEGV, STOP
      case 1...64: return Int32(number)
      default: return nil
      }
    }
    let name = match(value, "SIG") ?? value
    if equals(name, "USR1") { return SIGUSR1 }
    if equals(name, "USR2") { return SIGUSR2 }
    if equals(name, "PROF") { return SIGPROF }
    if equals(name, "TERM") { return SIGTERM }
    if equals(name, "INT") { return SIGINT }
    if equals(name, "HUP") { return SIGHUP }
    if equals(name, "QUIT") { return SIGQUIT }
    if equals(name, "ALRM") { return SIGALRM }
    if equals(name, "URG") { return SIGURG }
    if equals(name, "WINCH") { return SIGWINCH }
    return nil
  }

  /// Reads SWALLOC_SECURE before anything is allocated: from `environ`, or, when libc has not set it yet
  /// (the loader's own first allocations), from /proc/self/environ, read with a small stack buffer.
  static func decideSecureMode() {
    if let environment = swalloc_environ() {
      var index = 0
      while let entry = environment[index] {
        index &+= 1
        if let value = match(entry, "SWALLOC_SECURE="), let level = secureLevel(value) { setSecureLevel(level) }
      }
    } else if let level = secureFromProcessEnvironment() {
      setSecureLevel(level)
    }
    if secure {
      userHeapsChecked = true
      Secure.initialize()
      swalloc_use_checked_sized_delete()
      swalloc_use_secure_entries(secureFull ? 1 : 0)
    }
    isSecureDecided = true
  }

  /// The level SWALLOC_SECURE's value names (0, 1, 2), or nil when it is malformed.
  static func secureLevel(_ value: UnsafeMutablePointer<CChar>) -> Int? {
    if equals(value, "0") || equals(value, "") { return 0 }
    if equals(value, "1") { return 1 }
    if equals(value, "full") || equals(value, "2") { return 2 }
    return nil
  }

  static func setSecureLevel(_ level: Int) {
    secure = level != 0
    secureFull = level == 2
  }

  /// The level SWALLOC_SECURE gives in /proc/self/environ (entries separated by NUL bytes), or nil.
  static func secureFromProcessEnvironment() -> Int? {
    let descriptor = swalloc_open_read_only("/proc/self/environ")
    if descriptor < 0 { return nil }
    defer { close(descriptor) }
    let prefix: StaticString = "SWALLOC_SECURE="
    // Streaming match: `matched` bytes of the prefix seen at the start of the current entry (-1: this entry
    // does not match); after the prefix, `value` collects the first four bytes (big-endian) and `length` the
    // value's length.
    var matched = 0
    var value: UInt32 = 0
    var length = 0
    var result: Int? = nil
    var buffer: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0, 0)
    return withUnsafeMutableBytes(of: &buffer) { bytes in
      while true {
        let count = read(descriptor, bytes.baseAddress, bytes.count)
        if count <= 0 { return result }
        for index in 0..<count {
          let byte = bytes[index]
          if byte == 0 {
            if matched == prefix.utf8CodeUnitCount {
              // "0", "1", "2", "full".
              if length == 1 && value >= 0x30 && value <= 0x32 { result = Int(value &- 0x30) }
              if length == 4 && value == 0x6675_6C6C { result = 2 }
            }
            matched = 0
            length = 0
            value = 0
          } else if matched < 0 {
            continue
          } else if matched < prefix.utf8CodeUnitCount {
            matched = prefix.utf8Start[matched] == byte ? matched &+ 1 : -1
          } else {
            if length < 4 { value = value &<< 8 | UInt32(byte) }
            length &+= 1
          }
        }
      }
    }
  }

  static func warnUnknown(_ entry: UnsafeMutablePointer<CChar>) {
    ErrorWriter.withWriter { writer in
      writer.text("swalloc: warning: ignoring unknown option ")
      writer.cString(entry)
      writer.text(" (known: SWALLOC_SHOW_STATS, SWALLOC_VERBOSE, SWALLOC_PURGE_DELAY_MS, SWALLOC_PURGE_DELAY_MAX_MS, ")
      writer.text("SWALLOC_HUGE_PAGES, SWALLOC_HUGE_RESERVE, SWALLOC_LOCKED, SWALLOC_SECURE, SWALLOC_GUARDED_SAMPLE, ")
      writer.text("SWALLOC_GUARDED_SLOTS, SWALLOC_PROFILE, SWALLOC_PROFILE_SAMPLE, SWALLOC_PROFILE_PREFIX, ")
      writer.text("SWALLOC_PROFILE_SIGNAL)\n")
    }
  }

  static func warn(_ entry: UnsafeMutablePointer<CChar>, accepted: StaticString) {
    ErrorWriter.withWriter { writer in
      writer.text("swalloc: warning: ignoring malformed ")
      writer.cString(entry)
      writer.text(" (accepted values: ")
      writer.text(accepted)
      writer.text("); using the default\n")
    }
  }
}
