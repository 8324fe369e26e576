// ProfileScratch+LoadedObjects: the profile's mappings and build IDs from the loader's list of objects
// (dl_iterate_phdr), read in memory: no /proc/self/maps text for the kernel to generate and no ELF file to open,
// which is most of what a small process's profile used to cost at exit. It takes the loader's lock, so a dump
// in a signal handler, or in a forked child, reads /proc/self/maps instead (ProfileWriter.swift).
import CShim
import Synchronization

/// What a first walk over the loaded objects finds: enough to size the scratch memory.
struct LoadedObjectCensus {
  /// Executable PT_LOAD segments: one mapping each.
  var segmentCount = 0
  /// The objects' names, with their terminating NULs.
  var nameByteCount = 0
  /// An object whose name is not an absolute path (dlopen of a relative one, or a loader that does not
  /// name the program): /proc/self/maps knows the path.
  var hasRelativeName = false
  /// Room for the program's path: AT_EXECFN's, or a path from readlink(/proc/self/exe) when that one is not
  /// absolute.
  var programPathByteCount = 0

  static func take() -> LoadedObjectCensus {
    var census = LoadedObjectCensus()
    if let path = swalloc_program_path(), path.pointee == 47 {  // '/'
      census.programPathByteCount = strlen(path) &+ 1
    } else {
      census.programPathByteCount = 4096  // PATH_MAX
    }
    swalloc_each_loaded_object({ object, context in
      let census = context.unsafelyUnwrapped.assumingMemoryBound(to: LoadedObjectCensus.self)
      let object = object.pointee
      let headers = ElfProgramHeaders(object)
      for index in 0..<headers.count where headers.type(index) == ElfProgramHeaders.load && headers.isExecutable(index) {
        census.pointee.segmentCount &+= 1
      }
      if let name = object.name, name.pointee != 0 {
        census.pointee.nameByteCount &+= strlen(name) &+ 1
        if name.pointee != 47 && !ElfProgramHeaders.isVDSO(name) {  // '/'
          census.pointee.hasRelativeName = true
        }
      }
    }, &census)
    return census
  }
}

/// An object's program headers in memory (ELF64: 56 bytes each).
struct ElfProgramHeaders {
  static let load: UInt32 = 1  // PT_LOAD
  static let note: UInt32 = 4  // PT_NOTE
  static let entryByteCount = 56

  let base: UInt
  let headers: UnsafeRawPointer?
  let count: Int

  init(_ object: swalloc_loaded_object) {
    base = UInt(object.base)
    headers = object.program_headers
    count = headers == nil ? 0 : Int(object.program_header_count)
  }

  func field<T>(_ index: Int, _ offset: Int, as type: T.Type) -> T {
    headers.unsafelyUnwrapped.loadUnaligned(fromByteOffset: index &* Self.entryByteCount &+ offset, as: type)
  }

  func type(_ index: Int) -> UInt32 { field(index, 0, as: UInt32.self) }
  func isExecutable(_ index: Int) -> Bool { field(index, 4, as: UInt32.self) & 1 != 0 }  // PF_X
  func isReadable(_ index: Int) -> Bool { field(index, 4, as: UInt32.self) & 4 != 0 }  // PF_R
  func fileOffset(_ index: Int) -> UInt { UInt(field(index, 8, as: UInt64.self)) }
  func virtualAddress(_ index: Int) -> UInt { UInt(field(index, 16, as: UInt64.self)) }
  func fileByteCount(_ index: Int) -> UInt { UInt(field(index, 32, as: UInt64.self)) }
  func memoryByteCount(_ index: Int) -> UInt { UInt(field(index, 40, as: UInt64.self)) }

  /// The GNU build ID from the object's PT_NOTE segments, read where they are mapped (only a note that lies
  /// in the file-backed part of a readable PT_LOAD segment is read), in hexadecimal into `text`; its length.
  func buildID(into text: UnsafeMutablePointer<UInt8>) -> Int {
    for index in 0..<count where type(index) == Self.note {
      let start = virtualAddress(index)
      let byteCount = fileByteCount(index)
      var mapped = false
      for segment in 0..<count where type(segment) == Self.load && isReadable(segment) {
        let segmentStart = virtualAddress(segment)
        if start >= segmentStart && start &+ byteCount <= segmentStart &+ fileByteCount(segment) { mapped = true }
      }
      if !mapped || byteCount == 0 { continue }
      let notes = UnsafeRawPointer(bitPattern: base &+ start).unsafelyUnwrapped
      let length = ProfileScratch.buildID(notes: notes, byteCount: Int(byteCount), into: text)
      if length > 0 { return length }
    }
    return 0
  }

  /// The loader's name for the vDSO (it has no file).
  static func isVDSO(_ name: UnsafePointer<CChar>) -> Bool {
    let prefix: StaticString = "linux-vdso"
    for index in 0..<prefix.utf8CodeUnitCount where UInt8(bitPattern: name[index]) != prefix.utf8Start[index] {
      return false
    }
    return true
  }
}

extension ProfileScratch {
  /// The process that turned profiling on. A forked child must not walk the loader's list: fork resets the
  /// loader's main lock in the child but not the one dl_iterate_phdr takes (glibc 2.36), which another thread
  /// of the parent may have held at the fork.
  static let startingProcessID = Atomic<Int32>(0)

  static func noteStartingProcess() { startingProcessID.store(swalloc_process_id(), ordering: .relaxed) }

  static var isForkedChild: Bool { swalloc_process_id() != startingProcessID.load(ordering: .relaxed) }

  /// Page size for the mappings' bounds: the kernel maps whole pages.
  static let mappingPageSize: UInt = 4096

  /// Fills `mappings` with the executable segments of the loaded objects (sorted by address), named by their
  /// paths (the program's from /proc/self/exe) and carrying their build IDs. Objects loaded since the census
  /// are left out when the tables are full.
  mutating func readLoadedObjects() {
    withUnsafeMutablePointer(to: &self) { scratch in
      swalloc_each_loaded_object({ object, context in
        context.unsafelyUnwrapped.assumingMemoryBound(to: ProfileScratch.self).pointee.addLoadedObject(object.pointee)
      }, scratch)
    }
    // Insertion sort by start address (the loader lists objects in load order); mappingID searches them.
    var sorted = 1
    while sorted < mappingCount {
      var index = sorted
      while index > 0 && mappings[(index &- 1) &* 5] > mappings[index &* 5] {
        for field in 0..<5 {
          let swapped = mappings[index &* 5 &+ field]
          mappings[index &* 5 &+ field] = mappings[(index &- 1) &* 5 &+ field]
          mappings[(index &- 1) &* 5 &+ field] = swapped
        }
        index &-= 1
      }
      sorted &+= 1
    }
  }

  mutating func addLoadedObject(_ object: swalloc_loaded_object) {
    let headers = ElfProgramHeaders(object)
    var hasExecutableSegment = false
    for index in 0..<headers.count where headers.type(index) == ElfProgramHeaders.load && headers.isExecutable(index) {
      hasExecutableSegment = true
    }
    if !hasExecutableSegment || mappingCount == mappingCapacity { return }
    let nameString = copyName(object.name)
    var buildIDString: UInt = 0
    let text = buildIDText + mappingCount &* Self.buildIDTextByteCount
    let textLength = headers.buildID(into: text)
    if textLength > 0 { buildIDString = addString(text, textLength) }
    let pageMask = Self.mappingPageSize &- 1
    for index in 0..<headers.count where headers.type(index) == ElfProgramHeaders.load && headers.isExecutable(index) {
      if mappingCount == mappingCapacity { return }
      let start = headers.base &+ headers.virtualAddress(index)
      let entry = mappings + mappingCount &* 5
      entry[0] = start & ~pageMask
      entry[1] = (start &+ headers.memoryByteCount(index) &+ pageMask) & ~pageMask
      entry[2] = headers.fileOffset(index) & ~pageMask
      entry[3] = nameString
      entry[4] = buildIDString
      mappingCount &+= 1
    }
  }

  /// Copies an object's name into `names` and adds it to the string table; the program (named "") gets the
  /// absolute path it was started by, else the path of /proc/self/exe. Returns the string's index (0, "", when there is no room).
  mutating func copyName(_ name: UnsafePointer<CChar>?) -> UInt {
    let destination = names + nameByteCount
    let room = nameCapacity &- nameByteCount
    var length = 0
    if let name, name.pointee != 0 {
      while length < room && name[length] != 0 {
        destination[length] = UInt8(bitPattern: name[length])
        length &+= 1
      }
      if name[length] != 0 { return 0 }  // no room for all of it
    } else if let path = swalloc_program_path(), path.pointee == 47 {  // '/'
      // The path the program was started by (readlink of /proc/self/exe costs 28 us here): maybe through a
      // symbolic link, which pprof follows; the build ID is the program's either way.
      while length < room && path[length] != 0 {
        destination[length] = UInt8(bitPattern: path[length])
        length &+= 1
      }
      if path[length] != 0 { return 0 }
    } else {
      let count = readlink("/proc/self/exe", UnsafeMutableRawPointer(destination).assumingMemoryBound(to: CChar.self),
                           room)
      if count <= 0 || count >= room { return 0 }
      length = count
    }
    nameByteCount &+= length
    return addString(destination, length)
  }
}
