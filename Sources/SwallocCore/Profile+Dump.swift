// Profile+Dump: when the heap profile is written (at exit, on swalloc_profile_dump, on SWALLOC_PROFILE_SIGNAL)
// and the leaks table SWALLOC_PROFILE=leaks prints at exit.
import CShim
import Synchronization

extension Profile {
  /// Bytes for a file name: <prefix>.<pid>[.<sequence>].pb.gz.
  typealias PathBuffer = (
    UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64,
    UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64,
    UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64,
    UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64,
    UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64)

  /// Writes the profile to the default file name: <prefix>.<pid>.pb.gz at exit (`sequence` 0), or
  /// <prefix>.<pid>.<sequence>.pb.gz. The pid is the writer's: a forked child writes its own file.
  /// Returns 0 or an errno value; `path` receives nothing (the name is reported under leaks/verbose).
  @discardableResult
  static func writeDefault(sequence: Int, report: Bool, symbolize: Bool = true) -> Int32 {
    var buffer: PathBuffer = (
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    return withUnsafeMutableBytes(of: &buffer) { raw -> Int32 in
      let text = raw.baseAddress!.assumingMemoryBound(to: UInt8.self)
      let limit = raw.count - 48
      var length = 0
      if let prefix = Options.profilePrefix {
        while length < limit && prefix[length] != 0 {
          text[length] = UInt8(bitPattern: prefix[length])
          length += 1
        }
      } else {
        let fallback: StaticString = "swalloc"
        for index in 0..<fallback.utf8CodeUnitCount { text[index] = fallback.utf8Start[index] }
        length = fallback.utf8CodeUnitCount
      }
      text[length] = 46  // '.'
      length += 1
      length += decimal(Int(swalloc_process_id()), into: text + length)
      if sequence > 0 {
        text[length] = 46
        length += 1
        length += decimal(sequence, into: text + length)
      }
      let suffix: StaticString = ".pb.gz"
      for index in 0..<suffix.utf8CodeUnitCount { text[length + index] = suffix.utf8Start[index] }
      length += suffix.utf8CodeUnitCount
      text[length] = 0
      let path = UnsafeRawPointer(text).assumingMemoryBound(to: CChar.self)
      let result = write(to: path, symbolize: symbolize)
      if report || Options.verbose || result != 0 {
        ErrorWriter.withWriter { writer in
          if result == 0 {
            writer.text("swalloc: heap profile written to ")
            writer.cString(path, limit: 600)
          } else {
            writer.text("swalloc: cannot write the heap profile to ")
            writer.cString(path, limit: 600)
            writer.text(" (errno ")
            writer.decimal(Int(result))
            writer.text(")")
          }
          writer.byte(10)
        }
      }
      return result
    }
  }

  /// Writes `value` in decimal at `text`; returns the digit count.
  static func decimal(_ value: Int, into text: UnsafeMutablePointer<UInt8>) -> Int {
    var digits = 1
    var rest = value / 10
    while rest > 0 {
      digits += 1
      rest /= 10
    }
    rest = value
    for index in stride(from: digits - 1, through: 0, by: -1) {
      text[index] = UInt8(48 + rest % 10)
      rest /= 10
    }
    return digits
  }

  /// Writes the profile to `path`, with the calling thread marked busy (nothing it allocates meanwhile is
  /// sampled). Returns 0 or an errno value.
  static func write(to path: UnsafePointer<CChar>, symbolize: Bool = true) -> Int32 {
    let state = swalloc_sampler_state()
    let wasBusy = state.pointee.busy
    state.pointee.busy = 1
    defer { state.pointee.busy = wasBusy }
    return ProfileWriter.write(to: path, symbolize: symbolize)
  }

  /// swalloc_profile_dump(path): to `path`, or to the next numbered default name when it is nil.
  static func dump(to path: UnsafePointer<CChar>?) -> Int32 {
    if !isActive { return EINVAL }
    if let path { return write(to: path) }
    return writeDefault(sequence: dumpSequence.wrappingAdd(1, ordering: .relaxed).newValue, report: false)
  }

  /// At exit (the library destructor): the leaks table, then the profile file, when the profile holds a
  /// sample (this process's, or the parent's a forked child inherited). A process that took none writes no
  /// file: it would say nothing, and creating it is most of what profiling costs a short process (on this
  /// project's VM, 200 to 650 us a file on ext4 against a 700 us `/bin/true`; a build under profiling would
  /// leave a file for every compiler and shell it ran). jemalloc writes no file at exit unless `prof_final` is
  /// set, gperftools' heap profiler none. A dump on request always writes.
  static func atExit() {
    if !isActive { return }
    if Options.profile == .leaks { printLeaks() }
    if holdsSamples {
      writeDefault(sequence: 0, report: Options.profile == .leaks)
    } else if Options.profile == .leaks || Options.verbose {
      ErrorWriter.withWriter { writer in
        writer.text("swalloc: no heap profile written: no sample taken (one per ")
        writer.decimal(Sampler.rate)
        writer.text(" bytes allocated on average; SWALLOC_PROFILE_SAMPLE=1 samples every allocation)\n")
      }
    }
  }

  /// Whether the profile has a sample to write: a stack entry beyond the overflow bucket (entry 0, which
  /// takes samples only once the table is full) or a sample counted.
  static var holdsSamples: Bool {
    stackCount.load(ordering: .relaxed) > 1 || sampleCount.load(ordering: .relaxed) > 0
  }

  /// SWALLOC_PROFILE_SIGNAL arrived: a numbered profile; a terminating signal then takes its default action
  /// (the process ends as it would have, with its profile written).
  static func signalArrived(_ signal: Int32) {
    // No dladdr here: the signal may have interrupted a thread holding the loader's lock.
    if isActive {
      writeDefault(sequence: dumpSequence.wrappingAdd(1, ordering: .relaxed).newValue, report: false, symbolize: false)
    }
    if signal == SIGTERM || signal == SIGINT || signal == SIGHUP || signal == SIGQUIT { swalloc_reraise_default(signal) }
  }

  // MARK: leaks

  /// How many sites, and frames per site, the leaks table shows.
  static let leakSiteCount = 10
  static let leakFrameCount = 8

  /// The sites still holding the most live bytes (estimated), with their top frames named by dladdr (the
  /// loader's symbol tables: exported functions; pprof with the profile file names the rest).
  static func printLeaks() {
    let stackCount = Swift.min(self.stackCount.load(ordering: .relaxed), stackCapacity)
    var totalBytes = 0
    var totalObjects = 0
    var liveSiteCount = 0
    for number in 0..<stackCount {
      let entry = stack(number)
      let bytes = counter(entry, inuseBytesOffset).pointee.load(ordering: .relaxed)
      if bytes <= 0 { continue }
      totalBytes += bytes
      totalObjects += counter(entry, inuseObjectsOffset).pointee.load(ordering: .relaxed) >> Sampler.objectShift
      liveSiteCount += 1
    }
    ErrorWriter.withWriter { w in
      w.text("swalloc: heap profile leaks (pid ")
      w.decimal(Int(swalloc_process_id()))
      w.text("): ")
      w.decimal(totalBytes)
      w.text(" bytes in ")
      w.decimal(totalObjects)
      w.text(" objects still live at exit (estimated from ")
      w.decimal(sampleCount.load(ordering: .relaxed))
      w.text(" samples, one per ")
      w.decimal(Sampler.rate)
      w.text(" bytes on average), ")
      w.decimal(liveSiteCount)
      w.text(" sites\n")
    }
    // The largest sites, in decreasing order: selection by a falling bound (each pass takes the largest
    // below the previous one; ties are shown once).
    var bound = Int.max
    for rank in 1...leakSiteCount {
      var best = -1
      var bestBytes = 0
      for number in 0..<stackCount {
        let bytes = counter(stack(number), inuseBytesOffset).pointee.load(ordering: .relaxed)
        if bytes > bestBytes && bytes < bound {
          best = number
          bestBytes = bytes
        }
      }
      if best < 0 { break }
      bound = bestBytes
      printSite(rank: rank, best)
    }
  }

  static func printSite(rank: Int, _ number: Int) {
    let entry = stack(number)
    ErrorWriter.withWriter { w in
      w.text("swalloc:   #")
      w.decimal(rank)
      w.text(" ")
      w.decimal(counter(entry, inuseBytesOffset).pointee.load(ordering: .relaxed))
      w.text(" bytes in ")
      w.decimal(counter(entry, inuseObjectsOffset).pointee.load(ordering: .relaxed) >> Sampler.objectShift)
      w.text(" objects, allocated at:\n")
      let depth = Swift.min(depth(entry), leakFrameCount)
      if depth == 0 { w.text("swalloc:        (stack not recorded: the profile's stack table was full)\n") }
      for index in 0..<depth {
        let address = frameAddresses(entry)[index]
        w.text("swalloc:        ")
        w.hexadecimal(address)
        var symbol = swalloc_symbol(object_name: nil, object_base: 0, symbol_name: nil, symbol_address: 0)
        if swalloc_symbolize(address, &symbol) != 0 {
          if let name = symbol.symbol_name {
            w.text(" ")
            w.cString(name, limit: 160)
            w.text("+")
            w.hexadecimal(address &- symbol.symbol_address)
          }
          if let object = symbol.object_name {
            w.text(" (")
            w.cString(object, limit: 200)
            w.text("+")
            w.hexadecimal(address &- symbol.object_base)
            w.text(")")
          }
        }
        w.byte(10)
      }
    }
  }
}

/// Called by the signal handler of CShim/ProfileHooks.c.
@_cdecl("swalloc_core_profile_signal")
func swallocCoreProfileSignal(_ signal: Int32) {
  Profile.signalArrived(signal)
}
