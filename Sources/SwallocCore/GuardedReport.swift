// GuardedReport: what guarded sampling prints when it catches a misuse: the kind (use after free, overflow,
// underflow, double free, invalid free), the address, its place relative to the block, and the stacks that
// allocated and freed the block, symbolized as far as the process can without allocating. Written with
// write(2) from stack buffers: it runs in the SIGSEGV handler.
import CShim
import Synchronization

enum GuardedReport {
  /// A fault at `address` in the guarded region (`access`: 0 unknown, 1 read, 2 write, plus the access size
  /// shifted left by 4; `pc`: the faulting instruction). Finds the block it concerns: the slot holding the address, or for a guard page the
  /// nearer of the blocks on either side.
  static func fault(_ address: UInt, access: Int32, pc: UInt) {
    guard let records = Guarded.records else { return }
    if Guarded.isZeroSize(address) {
      report(kind: "zero-size-access", address: address, access: access, index: -1, pc: pc, caller: 0,
             freeLabel: nil)
      return
    }
    var index = -1
    if let (slot, offset) = Guarded.slot(of: address) {
      index = slot
      if offset >= Guarded.maximumByteCount {
        // A trailing guard page: an overflow of this slot's block or an underflow of the next one's.
        let next = slot &+ 1
        let here = used(records, slot) ? address &- blockEnd(records, slot) : UInt.max
        let there = next < Guarded.slotCount && used(records, next)
          ? Guarded.record(records, next).pointee.block &- address : UInt.max
        index = there < here ? next : slot
      }
    } else {
      index = 0
    }
    if index >= Guarded.slotCount || !used(records, index) {
      report(kind: "wild access to guarded memory", address: address, access: access, index: -1, pc: pc,
             caller: 0, freeLabel: nil)
      return
    }
    let slot = Guarded.record(records, index)
    let freed = slot.pointee.state.load(ordering: .acquiring) & 3 == 3
    let kind: StaticString
    if freed {
      kind = "heap-use-after-free"
    } else if address < slot.pointee.block {
      kind = "heap-buffer-underflow"
    } else {
      kind = "heap-buffer-overflow"
    }
    report(kind: kind, address: address, access: access, index: index, pc: pc, caller: 0, freeLabel: nil)
  }

  /// A free of a pointer in the guarded region that is not a live guarded block: a double free (`double`),
  /// or a pointer inside a block or in no block. Reports, then aborts (both modes: the program asked for
  /// guarded sampling, or runs in secure mode).
  static func badFree(_ address: UInt, index: Int, caller: UInt, stack: StackCapture.Captured, double: Bool)
    -> Never
  {
    let known = index >= 0 && Guarded.records.map { used($0, index) } == true
    report(kind: double ? "double-free" : "invalid-free", address: address, access: 0, index: known ? index : -1,
           pc: 0, caller: caller, stack: stack, freeLabel: double ? "freed again" : "invalid free")
    swalloc_abort()
  }

  /// An overflow into the alignment slack after a live guarded block (where no guard page reaches), found
  /// when the block is freed: `address` is the first byte found overwritten. Reports, then aborts.
  static func overwrittenSlack(_ address: UInt, index: Int, caller: UInt, stack: StackCapture.Captured) -> Never {
    report(kind: "heap-buffer-overflow", address: address, access: 2, index: index, pc: 0, caller: caller,
           stack: stack,
           freeLabel: "freed", foundAtFree: true)
    swalloc_abort()
  }

  /// Whether slot `index` holds a block, live or freed.
  static func used(_ records: UnsafeMutableRawPointer, _ index: Int) -> Bool {
    let state = Guarded.record(records, index).pointee.state.load(ordering: .acquiring)
    return state == 1 || state & 3 == 3
  }

  static func blockEnd(_ records: UnsafeMutableRawPointer, _ index: Int) -> UInt {
    let slot = Guarded.record(records, index)
    return slot.pointee.block &+ UInt(slot.pointee.byteCount)
  }

  /// "write of 8 bytes at 0x...": the access the fault handler decoded (CShim/AccessSize.c: access | size << 4;
  /// no size when the instruction was not decoded). SWALLOC_SECURE=full's freed large blocks report it too.
  static func writeAccess(_ writer: inout ErrorWriter, _ address: UInt, _ access: Int32) {
    let size = Int(access >> 4)
    writer.text(access & 3 == 2 ? "write" : access & 3 == 1 ? "read" : "access")
    if size > 0 {
      writer.text(" of ")
      writer.decimal(size)
      writer.text(size == 1 ? " byte" : " bytes")
    }
    writer.text(" at ")
    writer.hexadecimal(address)
  }

  /// The report:
  ///
  ///     swalloc: heap-use-after-free: write at 0x7f12a4c03ff0, 16 bytes inside a 40-byte block at 0x7f12a4c03fe0
  ///       at:                     #0 walk (prog+0x1190)
  ///       allocated by thread 3:  #0 make_node (prog+0x1234)  #1 parse (prog+0x2345)
  ///       freed by thread 1:      #0 free_tree (prog+0x3456)
  static func report(kind: StaticString, address: UInt, access: Int32, index: Int, pc: UInt, caller: UInt,
                     stack: StackCapture.Captured = .none, freeLabel: StaticString?, foundAtFree: Bool = false) {
    ErrorWriter.withWriter { writer in
      writer.text("swalloc: ")
      writer.text(kind)
      writer.text(": ")
      if foundAtFree {
        writer.text("write at ")
        writer.hexadecimal(address)
        writer.text(" (found when the block was freed)")
      } else if freeLabel != nil {
        writer.text("free(")
        writer.hexadecimal(address)
        writer.text(")")
      } else {
        writeAccess(&writer, address, access)
      }
      if index >= 0, let records = Guarded.records {
        let slot = Guarded.record(records, index)
        let block = slot.pointee.block
        let end = block &+ UInt(slot.pointee.byteCount)
        writer.text(", ")
        if address < block {
          writer.decimal(Int(block &- address))
          writer.text(" bytes before")
        } else if address >= end {
          writer.decimal(Int(address &- end))
          writer.text(" bytes after the end of")
        } else {
          writer.decimal(Int(address &- block))
          writer.text(" bytes inside")
        }
        writer.text(" a ")
        writer.decimal(slot.pointee.byteCount)
        writer.text("-byte block at ")
        writer.hexadecimal(block)
        writer.text("\n")
        if pc != 0 {
          writer.text("  at:                     ")
          frame(&writer, 0, pc)
          writer.text("\n")
        }
        writeStack(&writer, label: "allocated by thread ", thread: slot.pointee.allocatingThread,
              frames: Guarded.frames(records, index, freed: false), count: Int(slot.pointee.allocationFrameCount))
        if slot.pointee.state.load(ordering: .acquiring) & 3 == 3 {
          writeStack(&writer, label: "freed by thread ", thread: slot.pointee.freeingThread,
                frames: Guarded.frames(records, index, freed: true), count: Int(slot.pointee.freeFrameCount))
        }
      } else if Guarded.isZeroSize(address) {
        writer.text(" (a block from malloc(0): none of its bytes may be read or written)\n")
      } else {
        writer.text(" (no guarded block there)\n")
        if pc != 0 {
          writer.text("  at:                     ")
          frame(&writer, 0, pc)
          writer.text("\n")
        }
      }
      if let freeLabel {
        writer.text("  ")
        writer.text(freeLabel)
        writer.text(" by thread ")
        writer.decimal(Int(swalloc_thread_id()))
        writer.text(":  ")
        if let frames = stack.frames, stack.count > 0 {
          for index in 0..<Swift.min(stack.count, StackCapture.frameCapacity) {
            if index > 0 { writer.text("  ") }
            frame(&writer, index, frames[index])
          }
        } else if caller != 0 {
          frame(&writer, 0, caller &- 1)
        } else {
          writer.text("(no stack)")
        }
        writer.text("\n")
      }
      if index < 0 && Guarded.isZeroSize(address) {
        writer.text("swalloc: secure mode answers malloc(0) with inaccessible memory; the process now dies of it\n")
      } else {
        writer.text("swalloc: guarded sampling (SWALLOC_GUARDED_SAMPLE=")
        writer.decimal(Guarded.sampleRate)
        writer.text(") caught this; the process now dies of it\n")
      }
    }
  }

  static func writeStack(_ writer: inout ErrorWriter, label: StaticString, thread: Int32,
                    frames: UnsafeMutablePointer<UInt>, count: Int) {
    writer.text("  ")
    writer.text(label)
    writer.decimal(Int(thread))
    writer.text(":  ")
    if count == 0 { writer.text("(no stack)") }
    for index in 0..<count {
      if index > 0 { writer.text("  ") }
      frame(&writer, index, frames[index])
    }
    writer.text("\n")
  }

  /// `#n name (module+0xoffset)`, or `#n 0xaddress` when the address is in no module. Stack frames are
  /// inside their call instructions (a return address less one).
  static func frame(_ writer: inout ErrorWriter, _ number: Int, _ address: UInt) {
    writer.text("#")
    writer.decimal(number)
    writer.text(" ")
    withUnsafeTemporaryAllocation(byteCount: 512, alignment: 16) { buffer in
      let name = buffer.baseAddress!.assumingMemoryBound(to: CChar.self)
      let module = name + 384
      var symbolAddress: UInt = 0
      var moduleBase: UInt = 0
      if swalloc_guarded_symbolize(address, name, 384, &symbolAddress, module, 128, &moduleBase) == 0 {
        writer.hexadecimal(address)
        return
      }
      if name[0] != 0 {
        writer.cString(name, limit: 383)
      } else {
        writer.hexadecimal(address)
      }
      writer.text(" (")
      writer.cString(module, limit: 127)
      writer.text("+")
      writer.hexadecimal(address &- moduleBase)
      writer.text(")")
    }
  }
}

/// The SIGSEGV/SIGBUS handler's question (CShim/guarded.c): is this fault ours? If so, the report.
@_cdecl("swalloc_core_guarded_fault")
func swallocCoreGuardedFault(_ address: UInt, _ access: Int32, _ pc: UInt) -> Int32 {
  if Guarded.records == nil || !Guarded.contains(UnsafeMutableRawPointer(bitPattern: address) ?? UnsafeMutableRawPointer(bitPattern: 1)!) {
    return 0
  }
  GuardedReport.fault(address, access: access, pc: pc)
  return 1
}
