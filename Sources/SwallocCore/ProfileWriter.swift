// ProfileWriter: the heap profile as pprof's profile.proto (github.com/google/pprof, proto/profile.proto),
// encoded by hand, in a gzip member of stored deflate blocks with its CRC-32. It carries Go's heap-profile
// sample types (alloc_objects, alloc_space, inuse_objects, inuse_space) and the process's executable mappings
// from /proc/self/maps with their GNU build IDs, so that pprof symbolizes the addresses itself.
// Nothing here allocates from the heap: the work memory is one anonymous mapping per dump, and files are read
// and written with open/pread/write, so a dump is safe in a signal handler and in a forked child.
import CShim
import Synchronization

/// Bytes appended to a fixed region. Writes past the end are counted, not stored (`overflowed`).
struct ByteSink {
  let base: UnsafeMutableRawPointer
  let capacity: Int
  var count = 0

  init(base: UnsafeMutableRawPointer, capacity: Int) {
    self.base = base
    self.capacity = capacity
  }

  var overflowed: Bool { count > capacity }

  mutating func byte(_ value: UInt8) {
    if count < capacity { base.storeBytes(of: value, toByteOffset: count, as: UInt8.self) }
    count &+= 1
  }

  mutating func bytes(_ source: UnsafeRawPointer, _ byteCount: Int) {
    for index in 0..<byteCount { byte(source.load(fromByteOffset: index, as: UInt8.self)) }
  }

  // MARK: protocol buffers (wire types: 0 varint, 2 length-delimited)

  mutating func varint(_ value: UInt) {
    var rest = value
    while rest >= 0x80 {
      byte(UInt8(truncatingIfNeeded: rest) | 0x80)
      rest &>>= 7
    }
    byte(UInt8(truncatingIfNeeded: rest))
  }

  static func varintSize(_ value: UInt) -> Int {
    var size = 1
    var rest = value &>> 7
    while rest != 0 {
      size &+= 1
      rest &>>= 7
    }
    return size
  }

  /// A field key (every field number here is below 16: one byte).
  mutating func key(_ field: Int, _ wireType: Int) { byte(UInt8(truncatingIfNeeded: field &<< 3 | wireType)) }

  /// A varint field; zero is the default and is left out.
  mutating func field(_ field: Int, _ value: UInt) {
    if value == 0 { return }
    key(field, 0)
    varint(value)
  }

  static func fieldSize(_ value: UInt) -> Int { value == 0 ? 0 : 1 + varintSize(value) }

  /// A length-delimited field's key and length.
  mutating func header(_ field: Int, length: Int) {
    key(field, 2)
    varint(UInt(bitPattern: length))
  }
}

/// One dump's work memory: a single anonymous mapping carved into the tables below, unmapped at the end.
/// The small tables come first, packed, then the output, so that a small profile touches a few pages (each
/// first touch is a page fault, and munmap's cost grows with the pages touched); /proc/self/maps' buffer,
/// when it is read, comes last.
struct ProfileScratch {
  /// Mappings that /proc/self/maps may give.
  static let maximumMappingCount = 4096
  static let mapsByteCount = 4 << 20
  static let buildIDTextByteCount = 80
  /// Strings besides the mappings' and functions': "", the sample types and units.
  static let fixedStringCount = 16
  /// Room in front of the output for the gzip header and the first stored block's header (10 + 5 bytes),
  /// and after it for the trailer (8), so that a small profile goes out in one write.
  static let outputHeadroom = 16
  static let outputTailroom = 8

  var base: UnsafeMutableRawPointer
  var byteCount: Int
  /// (address, length) of each string of the string table, in order.
  var strings: UnsafeMutablePointer<UInt>
  var stringCount = 0
  let stringCapacity: Int
  /// Per executable mapping: start, limit, file offset, filename string, build-ID string.
  var mappings: UnsafeMutablePointer<UInt>
  var mappingCount = 0
  let mappingCapacity: Int
  var buildIDText: UnsafeMutablePointer<UInt8>
  /// The loaded objects' names, copied (the loader may free its own once its lock is released).
  var names: UnsafeMutablePointer<UInt8>
  var nameByteCount = 0
  let nameCapacity: Int
  /// /proc/self/maps, when read (`mapsCapacity` bytes; 0 when the mappings come from the loader).
  var maps: UnsafeMutablePointer<UInt8>
  let mapsCapacity: Int
  /// Open addressing over code addresses: (address, location id); `locationSlotCount` a power of two.
  var locationSlots: UnsafeMutablePointer<UInt>
  var locationSlotCount = Self.initialSlotCount
  /// Location id i + 1 is `locations[i]`.
  var locations: UnsafeMutablePointer<UInt>
  var locationCount = 0
  /// Functions named by dladdr: open addressing over symbol addresses, (symbol address, function id), with
  /// `functionSlotCount` slots; function id i + 1 has the name string `functionNames[i]`.
  var functionSlots: UnsafeMutablePointer<UInt>
  var functionSlotCount = Self.initialSlotCount
  var functionNames: UnsafeMutablePointer<UInt>
  var functionCount = 0
  /// Both tables start with this many slots (one page) and double when half full, each new table after the
  /// last in room for every size up to the largest (`frameCount * 2` slots: every frame a new address), the
  /// old one purged: a hash spreads its entries over every page of its table, so a table sized for every frame
  /// touched all of it (gcc's compile: 3.8 MB of page faults at exit for 2 MB tables of a few thousand
  /// addresses each).
  static let initialSlotCount = 256
  var crcTable: UnsafeMutablePointer<UInt32>
  var output: ByteSink

  /// Maps the memory for a profile of `frameCount` frames in `sampleCount` samples, with up to
  /// `mappingCapacity` mappings whose names take up to `nameCapacity` bytes, and room for /proc/self/maps
  /// when `readsMaps`.
  init?(frameCount: Int, sampleCount: Int, mappingCapacity: Int, nameCapacity: Int, readsMaps: Bool) {
    var slots = Self.initialSlotCount
    while slots < frameCount * 2 + 2 { slots &<<= 1 }
    let frames = Swift.max(frameCount, 1)
    self.mappingCapacity = mappingCapacity
    self.nameCapacity = nameCapacity
    stringCapacity = Self.fixedStringCount + 2 * mappingCapacity + frames
    mapsCapacity = readsMaps ? Self.mapsByteCount : 0
    // Output: the header fields, each sample (its location ids and values), each location (id, mapping,
    // address, function), each function, each mapping with its strings (path and build ID), and 8 MiB for
    // the functions' names (only the pages written cost anything).
    let outputCapacity = (8 << 20) + sampleCount * 48 + frames * (10 + 48 + 40)
      + mappingCapacity * (64 + Self.buildIDTextByteCount) + nameCapacity + (readsMaps ? Self.mapsByteCount : 0)
    var offset = 0
    func part(_ byteCount: Int) -> Int {
      defer { offset += (byteCount + 15) & ~15 }
      return offset
    }
    let stringsOffset = part(stringCapacity * 16)
    let mappingsOffset = part(mappingCapacity * 40)
    let textOffset = part(mappingCapacity * Self.buildIDTextByteCount)
    // Each table's room: its sizes from `initialSlotCount` to `slots`, one after another, from a page
    // boundary (each table then fills whole pages, which are purged when it is outgrown).
    offset = Self.pageRounded(offset)
    let slotsOffset = part(2 * slots * 16)
    let locationsOffset = part(frames * 8)
    offset = Self.pageRounded(offset)
    let functionSlotsOffset = part(2 * slots * 16)
    let functionNamesOffset = part(frames * 8)
    let crcOffset = part(1024)
    let namesOffset = part(nameCapacity)  // last: mostly room left for objects loaded meanwhile
    let outputOffset = part(Self.outputHeadroom + outputCapacity + Self.outputTailroom)
    offset = Self.pageRounded(offset)
    let mapsOffset = part(mapsCapacity)
    let total = Self.pageRounded(offset)
    guard let memory = OSMemory.reserve(byteCount: total) else { return nil }
    base = memory
    byteCount = total
    strings = (memory + stringsOffset).assumingMemoryBound(to: UInt.self)
    mappings = (memory + mappingsOffset).assumingMemoryBound(to: UInt.self)
    buildIDText = (memory + textOffset).assumingMemoryBound(to: UInt8.self)
    names = (memory + namesOffset).assumingMemoryBound(to: UInt8.self)
    maps = (memory + mapsOffset).assumingMemoryBound(to: UInt8.self)
    locationSlots = (memory + slotsOffset).assumingMemoryBound(to: UInt.self)
    locations = (memory + locationsOffset).assumingMemoryBound(to: UInt.self)
    functionSlots = (memory + functionSlotsOffset).assumingMemoryBound(to: UInt.self)
    functionNames = (memory + functionNamesOffset).assumingMemoryBound(to: UInt.self)
    crcTable = (memory + crcOffset).assumingMemoryBound(to: UInt32.self)
    output = ByteSink(base: memory + outputOffset + Self.outputHeadroom, capacity: outputCapacity)
  }

  func release() { OSMemory.release(base, byteCount: byteCount) }

  static func pageRounded(_ byteCount: Int) -> Int { (byteCount + 4095) & ~4095 }

  /// Appends a string to the string table; returns its index.
  mutating func addString(_ start: UnsafeRawPointer, _ length: Int) -> UInt {
    if stringCount == stringCapacity { return 0 }
    strings[stringCount &* 2] = UInt(bitPattern: start)
    strings[stringCount &* 2 &+ 1] = UInt(bitPattern: length)
    stringCount &+= 1
    return UInt(stringCount &- 1)
  }

  mutating func addString(_ string: StaticString) -> UInt {
    addString(string.utf8Start, string.utf8CodeUnitCount)
  }

  /// Moves the (key, id) pairs of the table at `slots` (`count` slots) to a table of twice as many right
  /// after it, purges the old one's pages, and returns the new table.
  static func grown(_ slots: UnsafeMutablePointer<UInt>, count: Int) -> UnsafeMutablePointer<UInt> {
    let larger = slots + count &* 2
    let mask = count &* 2 &- 1
    for index in 0..<count where slots[index &* 2 &+ 1] != 0 {
      var slot = Int(bitPattern: Secure.mix(slots[index &* 2])) & mask
      while larger[slot &* 2 &+ 1] != 0 { slot = (slot &+ 1) & mask }
      larger[slot &* 2] = slots[index &* 2]
      larger[slot &* 2 &+ 1] = slots[index &* 2 &+ 1]
    }
    // The whole pages of the old table (its ends may share pages with the neighbours).
    let start = (UInt(bitPattern: slots) &+ 4095) & ~4095
    let end = UInt(bitPattern: larger) & ~4095
    if end > start {
      OSMemory.purge(UnsafeMutableRawPointer(bitPattern: start).unsafelyUnwrapped, byteCount: Int(end &- start))
    }
    return larger
  }

  /// The location id of code address `address`, given the next one when it is new.
  mutating func locationID(_ address: UInt) -> UInt {
    if (locationCount &+ 1) &* 2 > locationSlotCount {
      locationSlots = Self.grown(locationSlots, count: locationSlotCount)
      locationSlotCount &*= 2
    }
    let mask = locationSlotCount &- 1
    var slot = Int(bitPattern: Secure.mix(address)) & mask
    while true {
      let stored = locationSlots[slot &* 2]
      if stored == address && locationSlots[slot &* 2 &+ 1] != 0 { return locationSlots[slot &* 2 &+ 1] }
      if locationSlots[slot &* 2 &+ 1] == 0 {
        locations[locationCount] = address
        locationCount &+= 1
        locationSlots[slot &* 2] = address
        locationSlots[slot &* 2 &+ 1] = UInt(locationCount)
        return UInt(locationCount)
      }
      slot = (slot &+ 1) & mask
    }
  }

  /// The function id of the exported symbol dladdr finds for `address` (a new function for a new symbol),
  /// or 0. pprof keeps these names where it cannot symbolize an address itself (no DWARF: stripped programs
  /// such as python3, libc), and replaces them with its own (file and line) where it can.
  mutating func functionID(_ address: UInt) -> UInt {
    var symbol = swalloc_symbol(object_name: nil, object_base: 0, symbol_name: nil, symbol_address: 0)
    guard swalloc_symbolize_indexed(address, &symbol) != 0, let name = symbol.symbol_name, symbol.symbol_address != 0 else {
      return 0
    }
    if (functionCount &+ 1) &* 2 > functionSlotCount {
      functionSlots = Self.grown(functionSlots, count: functionSlotCount)
      functionSlotCount &*= 2
    }
    let mask = functionSlotCount &- 1
    var slot = Int(bitPattern: Secure.mix(symbol.symbol_address)) & mask
    while true {
      if functionSlots[slot &* 2 &+ 1] == 0 {
        functionNames[functionCount] = addString(name, strlen(name))
        functionCount &+= 1
        functionSlots[slot &* 2] = symbol.symbol_address
        functionSlots[slot &* 2 &+ 1] = UInt(functionCount)
        return UInt(functionCount)
      }
      if functionSlots[slot &* 2] == symbol.symbol_address { return functionSlots[slot &* 2 &+ 1] }
      slot = (slot &+ 1) & mask
    }
  }

  /// The id (index + 1) of the executable mapping that holds `address`, or 0.
  func mappingID(_ address: UInt) -> UInt {
    var low = 0
    var high = mappingCount
    while low < high {
      let middle = (low &+ high) &>> 1
      if mappings[middle &* 5] <= address { low = middle &+ 1 } else { high = middle }
    }
    if low == 0 { return 0 }
    return address < mappings[(low &- 1) &* 5 &+ 1] ? UInt(low) : 0
  }

  // MARK: /proc/self/maps and build IDs

  /// Reads the executable mappings of /proc/self/maps (sorted by address), their file names and build IDs.
  mutating func readMappings() {
    let descriptor = swalloc_open_read_only("/proc/self/maps")
    if descriptor < 0 { return }
    var length = 0
    while length < mapsCapacity - 1 {
      let count = read(descriptor, maps + length, mapsCapacity - 1 - length)
      if count <= 0 { break }
      length &+= count
    }
    close(descriptor)
    var lineStart = 0
    while lineStart < length && mappingCount < mappingCapacity {
      var lineEnd = lineStart
      while lineEnd < length && maps[lineEnd] != 10 { lineEnd &+= 1 }
      maps[lineEnd] = 0  // the path becomes a C string
      parseMapping(lineStart, lineEnd)
      lineStart = lineEnd &+ 1
    }
  }

  /// One line: `start-limit perms offset dev inode [path]`.
  mutating func parseMapping(_ start: Int, _ end: Int) {
    var position = start
    let low = Self.hexadecimal(maps, &position, end)
    position &+= 1  // '-'
    let high = Self.hexadecimal(maps, &position, end)
    position &+= 1  // ' '
    let executable = position + 2 < end && maps[position &+ 2] == 120  // 'x'
    Self.skipField(maps, &position, end)  // perms
    let offset = Self.hexadecimal(maps, &position, end)
    Self.skipField(maps, &position, end)  // the offset's terminator
    Self.skipField(maps, &position, end)  // dev
    Self.skipField(maps, &position, end)  // inode
    if !executable || high <= low { return }
    let pathLength = end &- position
    let entry = mappings + mappingCount &* 5
    entry[0] = low
    entry[1] = high
    entry[2] = offset
    entry[3] = pathLength > 0 ? addString(maps + position, pathLength) : 0
    entry[4] = 0
    if pathLength > 0 && maps[position] == 47 {  // '/'
      let text = buildIDText + mappingCount &* Self.buildIDTextByteCount
      let textLength = Self.readBuildID(UnsafeRawPointer(maps + position).assumingMemoryBound(to: CChar.self), into: text)
      if textLength > 0 { entry[4] = addString(text, textLength) }
    }
    mappingCount &+= 1
  }

  static func hexadecimal(_ text: UnsafeMutablePointer<UInt8>, _ position: inout Int, _ end: Int) -> UInt {
    var value: UInt = 0
    while position < end {
      let c = text[position]
      let digit: UInt8
      if c >= 48 && c <= 57 { digit = c &- 48 } else if c >= 97 && c <= 102 { digit = c &- 87 } else { break }
      value = value &<< 4 | UInt(digit)
      position &+= 1
    }
    return value
  }

  /// Skips to the start of the next space-separated field.
  static func skipField(_ text: UnsafeMutablePointer<UInt8>, _ position: inout Int, _ end: Int) {
    while position < end && text[position] != 32 { position &+= 1 }
    while position < end && text[position] == 32 { position &+= 1 }
  }

  /// The GNU build ID of the ELF file at `path` (its NT_GNU_BUILD_ID note), in hexadecimal into `text` (up to
  /// 32 bytes of ID); returns the text's length, 0 when there is none.
  static func readBuildID(_ path: UnsafePointer<CChar>, into text: UnsafeMutablePointer<UInt8>) -> Int {
    let descriptor = swalloc_open_read_only(path)
    if descriptor < 0 { return 0 }
    defer { close(descriptor) }
    var header: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0, 0)
    var notes: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64,
                UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) =
      (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    return withUnsafeMutableBytes(of: &header) { elf -> Int in
      // ELF64 little-endian: "\x7fELF", class 2.
      if pread(descriptor, elf.baseAddress, 64, 0) != 64 || elf.load(as: UInt32.self) != 0x464C_457F || elf[4] != 2 {
        return 0
      }
      let programHeaders = Int(elf.load(fromByteOffset: 0x20, as: UInt64.self))
      let entrySize = Int(elf.load(fromByteOffset: 0x36, as: UInt16.self))
      let entryCount = Int(elf.load(fromByteOffset: 0x38, as: UInt16.self))
      return withUnsafeMutableBytes(of: &notes) { note -> Int in
        for index in 0..<Swift.min(entryCount, 64) {
          if pread(descriptor, note.baseAddress, 56, programHeaders + index * entrySize) != 56 { return 0 }
          if note.load(as: UInt32.self) != 4 { continue }  // PT_NOTE
          let fileOffset = Int(note.load(fromByteOffset: 8, as: UInt64.self))
          let fileSize = Swift.min(Int(note.load(fromByteOffset: 32, as: UInt64.self)), note.count)
          if pread(descriptor, note.baseAddress, fileSize, fileOffset) != fileSize { continue }
          let length = Self.buildID(notes: UnsafeRawPointer(note.baseAddress!), byteCount: fileSize, into: text)
          if length > 0 { return length }
        }
        return 0
      }
    }
  }

  /// The GNU build ID among the ELF notes at `notes` (a PT_NOTE segment's `byteCount` bytes), in hexadecimal
  /// into `text` (up to 32 bytes of ID); returns the text's length, 0 when there is none.
  static func buildID(notes: UnsafeRawPointer, byteCount: Int, into text: UnsafeMutablePointer<UInt8>) -> Int {
    var position = 0
    while position + 12 <= byteCount {
      let nameSize = Int(notes.loadUnaligned(fromByteOffset: position, as: UInt32.self))
      let descriptionSize = Int(notes.loadUnaligned(fromByteOffset: position + 4, as: UInt32.self))
      let type = notes.loadUnaligned(fromByteOffset: position + 8, as: UInt32.self)
      let name = position + 12
      let description = name + ((nameSize + 3) & ~3)
      if description + descriptionSize > byteCount { break }
      // NT_GNU_BUILD_ID, name "GNU\0"
      if type == 3 && nameSize == 4 && notes.loadUnaligned(fromByteOffset: name, as: UInt32.self) == 0x0055_4E47 {
        let hexDigits: StaticString = "0123456789abcdef"
        let count = Swift.min(descriptionSize, 32)
        for byteIndex in 0..<count {
          let value = notes.load(fromByteOffset: description + byteIndex, as: UInt8.self)
          text[byteIndex * 2] = hexDigits.utf8Start[Int(value >> 4)]
          text[byteIndex * 2 + 1] = hexDigits.utf8Start[Int(value & 15)]
        }
        return count * 2
      }
      position = description + ((descriptionSize + 3) & ~3)
    }
    return 0
  }

  // MARK: gzip

  /// Writes `output` to `descriptor` as one gzip member (RFC 1952) of stored deflate blocks (RFC 1951, type 0):
  /// in one write when it fits one block (the header goes in the output's headroom, the trailer after it).
  /// Returns false when a write fails.
  mutating func writeGzip(to descriptor: Int32) -> Bool {
    fillCRCTable()
    let data = output.base
    let length = Swift.min(output.count, output.capacity)
    var crc: UInt32 = 0xFFFF_FFFF
    for index in 0..<length {
      crc = crcTable[Int((crc ^ UInt32(data.load(fromByteOffset: index, as: UInt8.self))) & 0xFF)] ^ (crc &>> 8)
    }
    crc ^= 0xFFFF_FFFF
    // Header: magic, deflate, no flags, no time, no extra flags, OS = Unix.
    var header: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) = (
      0x1F, 0x8B, 8, 0, 0, 0, 0, 0, 0, 3)
    var trailer: (UInt32, UInt32) = (crc.littleEndian, UInt32(truncatingIfNeeded: length).littleEndian)
    if length <= 65535 {
      let start = data - 15
      start.copyMemory(from: &header, byteCount: 10)
      Self.storeBlockHeader(start + 10, byteCount: length, final: true)
      (data + length).copyMemory(from: &trailer, byteCount: 8)
      return Self.writeAll(descriptor, start, 15 + length + 8)
    }
    if !Self.writeAll(descriptor, &header, 10) { return false }
    var position = 0
    var block: (UInt64) = 0
    repeat {
      let chunk = Swift.min(length - position, 65535)
      Self.storeBlockHeader(&block, byteCount: chunk, final: position + chunk == length)
      if !Self.writeAll(descriptor, &block, 5) { return false }
      if chunk > 0 && !Self.writeAll(descriptor, data + position, chunk) { return false }
      position += chunk
    } while position < length
    return Self.writeAll(descriptor, &trailer, 8)
  }

  /// A stored block's header: BFINAL and BTYPE 00 in one byte, then LEN and NLEN (little-endian).
  static func storeBlockHeader(_ header: UnsafeMutableRawPointer, byteCount: Int, final: Bool) {
    header.storeBytes(of: final ? 1 : 0, as: UInt8.self)
    header.storeBytes(of: UInt16(byteCount).littleEndian, toByteOffset: 1, as: UInt16.self)
    header.storeBytes(of: (~UInt16(byteCount)).littleEndian, toByteOffset: 3, as: UInt16.self)
  }

  /// The CRC-32 table (reflected polynomial 0xEDB88320), from the entries of the powers of two: the table is
  /// linear over XOR, so entry i ^ j is entry i ^ entry j (256 XORs instead of 2048 shift steps).
  func fillCRCTable() {
    crcTable[0] = 0
    var value: UInt32 = 0xEDB8_8320  // entry 128
    var bit = 128
    while bit > 0 {
      for index in stride(from: 0, to: 256, by: 2 * bit) { crcTable[index ^ bit] = crcTable[index] ^ value }
      value = value & 1 != 0 ? (value &>> 1) ^ 0xEDB8_8320 : value &>> 1
      bit &>>= 1
    }
  }

  static func writeAll(_ descriptor: Int32, _ bytes: UnsafeRawPointer, _ byteCount: Int) -> Bool {
    var offset = 0
    while offset < byteCount {
      let written = write(descriptor, bytes + offset, byteCount - offset)
      if written < 0 && swalloc_errno_get() == EINTR { continue }
      if written <= 0 { return false }
      offset += written
    }
    return true
  }
}

enum ProfileWriter {
  /// A ValueType message (type and unit, as string indices) as field `field`.
  static func valueType(_ sink: inout ByteSink, field: Int, _ type: UInt, _ unit: UInt) {
    sink.header(field, length: ByteSink.fieldSize(type) + ByteSink.fieldSize(unit))
    sink.field(1, type)
    sink.field(2, unit)
  }

  /// Writes the profile to `path` (gzip-compressed profile.proto). Returns 0, or an errno value.
  /// `symbolize`: name the frames with dladdr and list the mappings with dl_iterate_phdr (both take the
  /// loader's lock: not in a signal handler, which reads /proc/self/maps and the ELF files instead).
  static func write(to path: UnsafePointer<CChar>, symbolize: Bool) -> Int32 {
    if !Profile.isActive { return EINVAL }
    let stackCount = Swift.min(Profile.stackCount.load(ordering: .relaxed), Profile.stackCapacity)
    var frameCount = 0
    var sampleCount = 0
    for number in 0..<stackCount {
      let entry = Profile.stack(number)
      if Profile.counter(entry, Profile.allocObjectsOffset).pointee.load(ordering: .relaxed) == 0 { continue }
      frameCount += Swift.min(Profile.depth(entry), Backtrace.maximumFrameCount)
      sampleCount += 1
    }
    // With the loader's lock allowed, the mappings come from the loader's list of objects (no files to
    // read); otherwise (a signal handler, a forked child), and when an object's path is relative, from
    // /proc/self/maps.
    let usesLoader = symbolize && !ProfileScratch.isForkedChild
    let census = usesLoader ? LoadedObjectCensus.take() : LoadedObjectCensus()
    let readsMaps = !usesLoader || census.hasRelativeName
    // Room for objects loaded between the census and the walk (8 mappings, 512 bytes of names), and for the
    // program's path.
    let mappingCapacity = readsMaps ? ProfileScratch.maximumMappingCount : census.segmentCount + 8
    let nameCapacity = readsMaps ? 0 : census.nameByteCount + census.programPathByteCount + 512
    guard var scratch = ProfileScratch(frameCount: frameCount, sampleCount: sampleCount,
                                       mappingCapacity: mappingCapacity, nameCapacity: nameCapacity,
                                       readsMaps: readsMaps)
    else { return ENOMEM }
    defer {
      scratch.release()
      if symbolize { swalloc_symbol_tables_release() }
    }
    _ = scratch.addString(UnsafeRawPointer(scratch.buildIDText), 0)  // index 0: ""
    let allocObjects = scratch.addString("alloc_objects")
    let count = scratch.addString("count")
    let allocSpace = scratch.addString("alloc_space")
    let bytes = scratch.addString("bytes")
    let inuseObjects = scratch.addString("inuse_objects")
    let inuseSpace = scratch.addString("inuse_space")
    let space = scratch.addString("space")
    if readsMaps { scratch.readMappings() } else { scratch.readLoadedObjects() }

    // sample_type (1): the four value types, in the order of every sample's values.
    valueType(&scratch.output, field: 1, allocObjects, count)
    valueType(&scratch.output, field: 1, allocSpace, bytes)
    valueType(&scratch.output, field: 1, inuseObjects, count)
    valueType(&scratch.output, field: 1, inuseSpace, bytes)
    // sample (2): location ids (packed, 1) and values (packed, 2).
    for number in 0..<stackCount {
      let entry = Profile.stack(number)
      let objects = Profile.counter(entry, Profile.allocObjectsOffset).pointee.load(ordering: .relaxed)
      if objects == 0 { continue }
      let values = (
        UInt(bitPattern: objects) &>> UInt(Sampler.objectShift),
        UInt(bitPattern: Profile.counter(entry, Profile.allocBytesOffset).pointee.load(ordering: .relaxed)),
        UInt(bitPattern: Swift.max(0, Profile.counter(entry, Profile.inuseObjectsOffset).pointee.load(ordering: .relaxed)))
          &>> UInt(Sampler.objectShift),
        UInt(bitPattern: Swift.max(0, Profile.counter(entry, Profile.inuseBytesOffset).pointee.load(ordering: .relaxed))))
      let depth = Swift.min(Profile.depth(entry), Backtrace.maximumFrameCount)
      let frames = Profile.frameAddresses(entry)
      var idsSize = 0
      for index in 0..<depth { idsSize += ByteSink.varintSize(scratch.locationID(frames[index])) }
      let valuesSize = ByteSink.varintSize(values.0) + ByteSink.varintSize(values.1)
        + ByteSink.varintSize(values.2) + ByteSink.varintSize(values.3)
      let idsField = depth == 0 ? 0 : 1 + ByteSink.varintSize(UInt(idsSize)) + idsSize
      scratch.output.header(2, length: idsField + 1 + ByteSink.varintSize(UInt(valuesSize)) + valuesSize)
      if depth > 0 {
        scratch.output.header(1, length: idsSize)
        for index in 0..<depth { scratch.output.varint(scratch.locationID(frames[index])) }
      }
      scratch.output.header(2, length: valuesSize)
      scratch.output.varint(values.0)
      scratch.output.varint(values.1)
      scratch.output.varint(values.2)
      scratch.output.varint(values.3)
    }
    // mapping (3): id, start, limit, offset, filename, build ID.
    for index in 0..<scratch.mappingCount {
      let entry = scratch.mappings + index * 5
      let id = UInt(index + 1)
      let size = ByteSink.fieldSize(id) + ByteSink.fieldSize(entry[0]) + ByteSink.fieldSize(entry[1])
        + ByteSink.fieldSize(entry[2]) + ByteSink.fieldSize(entry[3]) + ByteSink.fieldSize(entry[4])
      scratch.output.header(3, length: size)
      scratch.output.field(1, id)
      scratch.output.field(2, entry[0])
      scratch.output.field(3, entry[1])
      scratch.output.field(4, entry[2])
      scratch.output.field(5, entry[3])
      scratch.output.field(6, entry[4])
    }
    // location (4): id, mapping id, address, and a line (4) naming its function (1) when dladdr knows it.
    for index in 0..<scratch.locationCount {
      let address = scratch.locations[index]
      let id = UInt(index + 1)
      let mapping = scratch.mappingID(address)
      let function = symbolize ? scratch.functionID(address) : 0
      let lineSize = function == 0 ? 0 : 2 + ByteSink.fieldSize(function)
      scratch.output.header(4, length: ByteSink.fieldSize(id) + ByteSink.fieldSize(mapping)
        + ByteSink.fieldSize(address) + lineSize)
      scratch.output.field(1, id)
      scratch.output.field(2, mapping)
      scratch.output.field(3, address)
      if function != 0 {
        scratch.output.header(4, length: ByteSink.fieldSize(function))
        scratch.output.field(1, function)
      }
    }
    // function (5): id, name and system name.
    for index in 0..<scratch.functionCount {
      let id = UInt(index + 1)
      let name = scratch.functionNames[index]
      scratch.output.header(5, length: ByteSink.fieldSize(id) + 2 * ByteSink.fieldSize(name))
      scratch.output.field(1, id)
      scratch.output.field(2, name)
      scratch.output.field(3, name)
    }
    // string_table (6).
    for index in 0..<scratch.stringCount {
      let length = Int(bitPattern: scratch.strings[index * 2 + 1])
      scratch.output.header(6, length: length)
      scratch.output.bytes(UnsafeRawPointer(bitPattern: scratch.strings[index * 2]).unsafelyUnwrapped, length)
    }
    // time_nanos (9), period_type (11): space/bytes, period (12): the sampling rate.
    scratch.output.field(9, UInt(swalloc_realtime_ns()))
    valueType(&scratch.output, field: 11, space, bytes)
    scratch.output.field(12, UInt(bitPattern: Sampler.rate))
    if scratch.output.overflowed { return ENOMEM }

    let descriptor = swalloc_open_write(path)
    if descriptor < 0 { return swalloc_errno_get() }
    let written = scratch.writeGzip(to: descriptor)
    let error = written ? 0 : swalloc_errno_get()
    if close(descriptor) != 0 && written { return swalloc_errno_get() }
    return written ? 0 : (error == 0 ? EIO : error)
  }
}
