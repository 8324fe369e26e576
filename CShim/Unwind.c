// Unwind.c: the walk over the program's frames for the heap profiler's samples and guarded sampling's stacks,
// with a cache of frame rules. libgcc's unwinder (Backtrace.c) looks up and interprets each frame's FDE afresh,
// about 1 900 instructions a frame; a sampled program calls malloc from the same few hundred places again and
// again. So each return address's rule (where its frame's CFA is, where the return address and the caller's
// frame pointer are saved) is worked out once from the object's .eh_frame and kept in a small lock-free table:
// a later frame at that address is a hash probe and two loads.
//
// Only what x86-64 compilers emit for ordinary frames is interpreted: a CFA of rsp or rbp plus an offset, the
// return address at CFA - 8, rbp saved at an offset from the CFA or left alone. Anything else (a CFA
// expression, a signal frame, a frame with no FDE) hands the rest of the walk to libgcc, from that frame, through
// the trampoline in Backtrace.c. The FDE is found as libgcc finds it: glibc's _dl_find_object (lock-free,
// async-signal-safe, no allocation) gives the object's .eh_frame_hdr, whose table is searched by address.
// The tables are read from the object's file with pread where it can be opened (and its ELF header matches
// the mapped one), not through the mapping: each file page touched there maps 64 KiB around it (the kernel's
// fault-around), which counted in the resident set of every profiled process (churn: 64 KB of libc's
// .eh_frame_hdr for one lookup; gcc's compile: 1.8 MB of cc1's tables). Nothing here allocates or locks.
#define _GNU_SOURCE
#include "CShim.h"

#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

// ---- frame rules ------------------------------------------------------------------------------------------
// A rule packed in one word: bit 63 set (a rule is never 0); bit 0: the CFA is rbp-based (else rsp); bits 1-2:
// 0 rbp unchanged, 1 rbp saved at CFA + offset, 2 the stack ends here; bits 8-31: the CFA offset; bits 32-55:
// the rbp offset (signed).
enum { rule_rbp_based = 1, rule_rbp_same = 0, rule_rbp_saved = 2, rule_end = 4 };
static const uint64_t rule_valid = (uint64_t)1 << 63;

static uint64_t make_rule(int rbp_based, int rbp_rule, int64_t cfa_offset, int64_t rbp_offset) {
  return rule_valid | (uint64_t)(rbp_based ? rule_rbp_based : 0) | (uint64_t)rbp_rule
         | ((uint64_t)(cfa_offset & 0xFFFFFF) << 8) | ((uint64_t)(rbp_offset & 0xFFFFFF) << 32);
}

static int64_t sign_extend24(uint64_t value) {
  value &= 0xFFFFFF;
  return (value & 0x800000) ? (int64_t)value - 0x1000000 : (int64_t)value;
}

// ---- reading DWARF ----------------------------------------------------------------------------------------
/// `shift`: what to add to `at` for the address the bytes have in the object's mapping (nonzero when they were
/// copied out of the file: pc-relative pointers are relative to the mapped address).
typedef struct reader {
  const uint8_t *at;
  const uint8_t *end;
  int failed;
  uintptr_t shift;
} reader;

static uint64_t read_uleb(reader *r) {
  uint64_t value = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (r->at >= r->end) break;
    uint8_t byte = *r->at++;
    value |= (uint64_t)(byte & 0x7F) << shift;
    if (!(byte & 0x80)) return value;
  }
  r->failed = 1;
  return 0;
}

static int64_t read_sleb(reader *r) {
  int64_t value = 0;
  int shift = 0;
  while (shift < 64) {
    if (r->at >= r->end) break;
    uint8_t byte = *r->at++;
    value |= (int64_t)(byte & 0x7F) << shift;
    shift += 7;
    if (!(byte & 0x80)) {
      if (shift < 64 && (byte & 0x40)) value |= -((int64_t)1 << shift);
      return value;
    }
  }
  r->failed = 1;
  return 0;
}

static uint64_t read_fixed(reader *r, int size) {
  if (r->end - r->at < size) {
    r->failed = 1;
    return 0;
  }
  uint64_t value = 0;
  memcpy(&value, r->at, (size_t)size);
  r->at += size;
  return value;
}

/// A pointer in DWARF's exception-handling encoding (the ones compilers and linkers use for .eh_frame); `data`
/// is the base of DW_EH_PE_datarel (the .eh_frame_hdr). Indirect and aligned encodings are refused.
static uintptr_t read_encoded(reader *r, uint8_t encoding, uintptr_t data) {
  if (encoding == 0xFF) return 0;  // DW_EH_PE_omit
  const uint8_t *field = r->at;
  uint64_t value;
  switch (encoding & 0x0F) {
    case 0x00: value = read_fixed(r, 8); break;                             // absptr
    case 0x01: value = read_uleb(r); break;                                 // uleb128
    case 0x02: value = read_fixed(r, 2); break;                             // udata2
    case 0x03: value = read_fixed(r, 4); break;                             // udata4
    case 0x04: value = read_fixed(r, 8); break;                             // udata8
    case 0x09: value = (uint64_t)read_sleb(r); break;                       // sleb128
    case 0x0A: value = (uint64_t)(int64_t)(int16_t)read_fixed(r, 2); break; // sdata2
    case 0x0B: value = (uint64_t)(int64_t)(int32_t)read_fixed(r, 4); break; // sdata4
    case 0x0C: value = read_fixed(r, 8); break;                             // sdata8
    default: r->failed = 1; return 0;
  }
  switch (encoding & 0x70) {
    case 0x00: break;                                  // absolute
    case 0x10: value += (uintptr_t)field + r->shift; break;  // pcrel
    case 0x30: value += data; break;                   // datarel
    default: r->failed = 1; return 0;
  }
  if (encoding & 0x80) r->failed = 1;                  // indirect
  return (uintptr_t)value;
}

// ---- reading an object's unwind tables ------------------------------------------------------------------
/// Where an object's tables are read: from its file (`fd` >= 0) for addresses in [start, end) of the mapping,
/// file offset = address - start + offset; through the mapping otherwise.
typedef struct tables {
  int fd;
  uintptr_t start, end;
  uint64_t offset;
} tables;

/// Opens the file of the object `object` (whose .eh_frame_hdr is mapped at `header`) for reading its tables:
/// only when its ELF header and program headers are the ones mapped (not a file replaced since it was
/// loaded) and one PT_LOAD segment holds the .eh_frame_hdr. Otherwise `fd` is -1 (read through the mapping).
static tables open_tables(const struct dl_find_object *object, uintptr_t header) {
  tables view = {-1, 0, 0, 0};
  const struct link_map *map = object->dlfo_link_map;
  if (map == NULL || map->l_name == NULL) return view;
  // The main program's name is empty; the vDSO's is no file (its open fails).
  const char *path = map->l_name[0] != 0 ? map->l_name : "/proc/self/exe";
  const ElfW(Ehdr) *mapped = (const ElfW(Ehdr) *)object->dlfo_map_start;
  if (memcmp(mapped->e_ident, ELFMAG, SELFMAG) != 0 || mapped->e_phentsize != sizeof(ElfW(Phdr))
      || mapped->e_phnum == 0 || mapped->e_phnum > 32 || mapped->e_phoff > 4096 - 32 * sizeof(ElfW(Phdr))) {
    return view;
  }
  size_t length = (size_t)mapped->e_phoff + (size_t)mapped->e_phnum * sizeof(ElfW(Phdr));
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return view;
  uint8_t file[4096];
  if (length > sizeof file || pread(fd, file, length, 0) != (ssize_t)length || memcmp(file, mapped, length) != 0) {
    close(fd);
    return view;
  }
  const ElfW(Phdr) *headers = (const ElfW(Phdr) *)(file + mapped->e_phoff);
  uintptr_t vaddr = header - map->l_addr;
  for (int index = 0; index < mapped->e_phnum; index++) {
    const ElfW(Phdr) *segment = &headers[index];
    if (segment->p_type != PT_LOAD || vaddr < segment->p_vaddr || vaddr - segment->p_vaddr >= segment->p_filesz) {
      continue;
    }
    view.fd = fd;
    view.start = map->l_addr + segment->p_vaddr;
    view.end = view.start + segment->p_filesz;
    view.offset = segment->p_offset;
    return view;
  }
  close(fd);
  return view;
}

static void close_tables(tables *view) {
  if (view->fd >= 0) close(view->fd);
  view->fd = -1;
}

/// Copies `length` bytes of the object at `address` into `buffer`, from the file where they lie in its
/// segment, else from the mapping. Returns 0 when the file read falls short.
static int read_tables(const tables *view, uintptr_t address, void *buffer, size_t length) {
  if (view->fd >= 0 && address >= view->start && address < view->end && length <= view->end - address) {
    return pread(view->fd, buffer, length, (off_t)(address - view->start + view->offset)) == (ssize_t)length;
  }
  memcpy(buffer, (const void *)address, length);
  return 1;
}

// ---- finding and interpreting a frame's FDE ---------------------------------------------------------------
/// The address of the FDE that covers `pc` (an address inside a call instruction), from its object's
/// .eh_frame_hdr; 0 when there is none or the table is in a form not handled here. `view` is opened for the
/// object (the caller closes it).
static uintptr_t find_fde(uintptr_t pc, tables *view) {
  struct dl_find_object object;
  if (_dl_find_object((void *)pc, &object) != 0 || object.dlfo_eh_frame == NULL) return 0;
  uintptr_t header = (uintptr_t)object.dlfo_eh_frame;
  *view = open_tables(&object, header);
  // The version, three encodings, and the encoded .eh_frame pointer and count (at most 8 bytes each).
  uint8_t start[20];
  if (!read_tables(view, header, start, sizeof start)) return 0;
  if (start[0] != 1) return 0;
  uint8_t frame_encoding = start[1], count_encoding = start[2], table_encoding = start[3];
  // The table of (initial location, FDE address) pairs, both hdr-relative 32-bit: what ld writes.
  if (table_encoding != 0x3B) return 0;
  reader r = {start + 4, start + sizeof start, 0, header - (uintptr_t)start};
  (void)read_encoded(&r, frame_encoding, header);
  uintptr_t count = read_encoded(&r, count_encoding, header);
  if (r.failed || count == 0) return 0;
  uintptr_t table = header + (uintptr_t)(r.at - start);
  intptr_t target = (intptr_t)(pc - header);
  size_t low = 0, high = count;
  // The last entry whose initial location is <= pc: halving with one 4-byte read a step down to 64 entries,
  // then those in one read.
  while (high - low > 64) {
    size_t middle = (low + high) / 2;
    int32_t location;
    if (!read_tables(view, table + 8 * middle, &location, 4)) return 0;
    if ((intptr_t)location <= target) low = middle; else high = middle;
  }
  int32_t entries[128];
  if (!read_tables(view, table + 8 * low, entries, 8 * (high - low))) return 0;
  size_t found = 0;
  for (size_t index = 1; index < high - low && (intptr_t)entries[2 * index] <= target; index++) found = index;
  if ((intptr_t)entries[2 * found] > target) return 0;
  return header + (uintptr_t)(intptr_t)entries[2 * found + 1];
}

typedef struct row {
  int cfa_register;
  int64_t cfa_offset;
  int rbp_rule;  // rule_rbp_same or rule_rbp_saved
  int64_t rbp_offset;
  int return_saved;  // the return address at CFA + return_offset
  int64_t return_offset;
} row;

/// Runs the call-frame instructions in [r->at, r->end) over `current` up to `pc`, from location `location`.
/// Returns 0 when an instruction is not handled (or the return address's column is undefined: `*ended`).
static int run_instructions(reader *r, row *current, const row *initial, uintptr_t location, uintptr_t pc,
                            uint64_t code_align, int64_t data_align, uint8_t fde_encoding, int *ended) {
  row saved[4];
  int depth = 0;
  while (r->at < r->end && !r->failed) {
    uint8_t op = *r->at++;
    uint8_t low = op & 0x3F;
    uint64_t reg;
    int64_t offset;
    switch (op & 0xC0) {
      case 0x40:  // advance_loc
        location += low * code_align;
        if (location > pc) return 1;
        continue;
      case 0x80:  // offset
        reg = low;
        offset = (int64_t)read_uleb(r) * data_align;
        goto set_offset;
      case 0xC0:  // restore
        reg = low;
        goto restore;
    }
    switch (op) {
      case 0x00: break;  // nop
      case 0x01:         // set_loc
        location = read_encoded(r, fde_encoding, 0);
        if (location > pc) return 1;
        break;
      case 0x02: location += read_fixed(r, 1) * code_align; if (location > pc) return 1; break;
      case 0x03: location += read_fixed(r, 2) * code_align; if (location > pc) return 1; break;
      case 0x04: location += read_fixed(r, 4) * code_align; if (location > pc) return 1; break;
      case 0x05:  // offset_extended
        reg = read_uleb(r);
        offset = (int64_t)read_uleb(r) * data_align;
        goto set_offset;
      case 0x06:  // restore_extended
        reg = read_uleb(r);
        goto restore;
      case 0x07:  // undefined
        reg = read_uleb(r);
        if (reg == 16) *ended = 1;
        if (reg == 6) current->rbp_rule = rule_rbp_same;  // not needed to go on
        if (reg == 16) return 0;
        break;
      case 0x08:  // same_value
        reg = read_uleb(r);
        if (reg == 6) current->rbp_rule = rule_rbp_same;
        if (reg == 16) return 0;
        break;
      case 0x09:  // register
        reg = read_uleb(r);
        (void)read_uleb(r);
        if (reg == 6 || reg == 16) return 0;
        break;
      case 0x0A:  // remember_state
        if (depth == 4) return 0;
        saved[depth++] = *current;
        break;
      case 0x0B:  // restore_state
        if (depth == 0) return 0;
        *current = saved[--depth];
        break;
      case 0x0C:  // def_cfa
        current->cfa_register = (int)read_uleb(r);
        current->cfa_offset = (int64_t)read_uleb(r);
        break;
      case 0x0D: current->cfa_register = (int)read_uleb(r); break;  // def_cfa_register
      case 0x0E: current->cfa_offset = (int64_t)read_uleb(r); break; // def_cfa_offset
      case 0x0F: return 0;                                             // def_cfa_expression
      case 0x10:  // expression
      case 0x16:  // val_expression
        reg = read_uleb(r);
        {
          uint64_t length = read_uleb(r);
          if ((uint64_t)(r->end - r->at) < length) return 0;
          r->at += length;
        }
        if (reg == 6 || reg == 16) return 0;
        break;
      case 0x11:  // offset_extended_sf
        reg = read_uleb(r);
        offset = read_sleb(r) * data_align;
        goto set_offset;
      case 0x12:  // def_cfa_sf
        current->cfa_register = (int)read_uleb(r);
        current->cfa_offset = read_sleb(r) * data_align;
        break;
      case 0x13: current->cfa_offset = read_sleb(r) * data_align; break;  // def_cfa_offset_sf
      case 0x14:  // val_offset
        reg = read_uleb(r);
        (void)read_uleb(r);
        if (reg == 6 || reg == 16) return 0;
        break;
      case 0x15:  // val_offset_sf
        reg = read_uleb(r);
        (void)read_sleb(r);
        if (reg == 6 || reg == 16) return 0;
        break;
      case 0x2E: (void)read_uleb(r); break;  // GNU_args_size
      case 0x2F:                              // GNU_negative_offset_extended
        reg = read_uleb(r);
        offset = -(int64_t)read_uleb(r) * data_align;
        goto set_offset;
      default: return 0;
    }
    continue;
  set_offset:
    if (reg == 6) {
      current->rbp_rule = rule_rbp_saved;
      current->rbp_offset = offset;
    } else if (reg == 16) {
      current->return_saved = 1;
      current->return_offset = offset;
    }
    continue;
  restore:
    if (initial == NULL) return 0;
    if (reg == 6) {
      current->rbp_rule = initial->rbp_rule;
      current->rbp_offset = initial->rbp_offset;
    } else if (reg == 16) {
      current->return_saved = initial->return_saved;
      current->return_offset = initial->return_offset;
    }
  }
  return !r->failed;
}

/// The rule of the frame whose code address (inside its call instruction) is `pc`; 0 when it cannot be had
/// here (libgcc takes over), `make_rule(0, rule_end, ...)` where the stack ends.
/// An FDE or CIE longer than this is handed to libgcc.
enum { entry_capacity = 1024 };

static uint64_t compute_rule_from(uintptr_t pc, tables *view);

static uint64_t compute_rule(uintptr_t pc) {
  // open, pread and close may set errno: a sampled malloc must leave it as the program had it.
  int saved_errno = errno;
  tables view = {-1, 0, 0, 0};
  uint64_t rule = compute_rule_from(pc, &view);
  close_tables(&view);
  errno = saved_errno;
  return rule;
}

/// Copies the CIE or FDE at `address` (its length word included) into `buffer`; its length without the
/// length word, or 0 when it cannot be had here.
static uint32_t read_entry(const tables *view, uintptr_t address, uint8_t *buffer) {
  uint32_t length;
  if (!read_tables(view, address, &length, 4)) return 0;
  if (length == 0 || length == 0xFFFFFFFF || length > entry_capacity - 4) return 0;
  if (!read_tables(view, address, buffer, 4 + (size_t)length)) return 0;
  return length;
}

static uint64_t compute_rule_from(uintptr_t pc, tables *view) {
  uintptr_t fde_address = find_fde(pc, view);
  if (fde_address == 0) return 0;
  uint8_t fde[entry_capacity], cie[entry_capacity];
  uint32_t fde_length = read_entry(view, fde_address, fde);
  if (fde_length < 8) return 0;
  int32_t cie_pointer;
  memcpy(&cie_pointer, fde + 4, 4);
  uintptr_t cie_address = fde_address + 4 - (uintptr_t)(intptr_t)cie_pointer;
  uint32_t cie_length = read_entry(view, cie_address, cie);
  if (cie_length < 4) return 0;
  reader c = {cie + 8, cie + 4 + cie_length, 0, cie_address - (uintptr_t)cie};
  uint8_t version = (uint8_t)read_fixed(&c, 1);
  const char *augmentation = (const char *)c.at;
  size_t augmentation_length = strnlen(augmentation, (size_t)(c.end - c.at));
  c.at += augmentation_length + 1;
  uint64_t code_align = read_uleb(&c);
  int64_t data_align = read_sleb(&c);
  uint64_t return_column = version == 1 ? read_fixed(&c, 1) : read_uleb(&c);
  if (return_column != 16) return 0;
  uint8_t fde_encoding = 0;
  int has_data = augmentation[0] == 'z';
  if (has_data) {
    uint64_t length = read_uleb(&c);
    const uint8_t *data_end = c.at + length;
    for (size_t index = 1; index < augmentation_length; index++) {
      switch (augmentation[index]) {
        case 'R': fde_encoding = (uint8_t)read_fixed(&c, 1); break;
        case 'L': (void)read_fixed(&c, 1); break;
        case 'P': {
          uint8_t encoding = (uint8_t)read_fixed(&c, 1);
          reader skip = c;
          skip.failed = 0;
          // The personality routine's address: only its size matters here (indirect is fine to skip).
          (void)read_encoded(&skip, encoding & 0x7F, 0);
          c.at = skip.at;
          break;
        }
        case 'S': return 0;  // a signal frame: libgcc's
        default: return 0;
      }
    }
    c.at = data_end;
  } else if (augmentation_length != 0) {
    return 0;
  }
  if (c.failed) return 0;

  reader f = {fde + 8, fde + 4 + fde_length, 0, fde_address - (uintptr_t)fde};
  uintptr_t start = read_encoded(&f, fde_encoding, 0);
  uintptr_t range = read_encoded(&f, fde_encoding & 0x0F, 0);
  if (f.failed || pc < start || pc >= start + range) return 0;
  if (has_data) {
    uint64_t length = read_uleb(&f);
    f.at += length;
  }

  row current = {7, 8, rule_rbp_same, 0, 0, 0};
  int ended = 0;
  if (!run_instructions(&c, &current, NULL, start, pc, code_align, data_align, fde_encoding, &ended)) {
    return ended ? make_rule(0, rule_end, 0, 0) : 0;
  }
  row initial = current;
  if (!run_instructions(&f, &current, &initial, start, pc, code_align, data_align, fde_encoding, &ended)) {
    return ended ? make_rule(0, rule_end, 0, 0) : 0;
  }
  if (current.cfa_register != 7 && current.cfa_register != 6) return 0;
  if (!current.return_saved || current.return_offset != -8) return 0;
  if (current.cfa_offset < 0 || current.cfa_offset >= 0x800000) return 0;
  if (current.rbp_rule == rule_rbp_saved && (current.rbp_offset < -0x800000 || current.rbp_offset >= 0x800000)) {
    return 0;
  }
  return make_rule(current.cfa_register == 6, current.rbp_rule, current.cfa_offset,
                   current.rbp_rule == rule_rbp_saved ? current.rbp_offset : 0);
}

// ---- the cache --------------------------------------------------------------------------------------------
/// Rules by code address: 4096 entries of (address, rule), open addressing with a short probe. Written by any
/// thread: an entry's address is cleared, its rule stored, then its address; a reader checks the address on
/// both sides of the rule's load, so a torn entry is a miss.
///
/// Until 128 rules are cached the table is used at 8 bits (its first 256 entries: one page), then at 12: a
/// hash over the whole table touches a page for each of its first rules (4 to 16 pages of a process that
/// samples a few stacks). A rule cached at 8 bits is still found after the switch (a miss looks at its 8-bit
/// home too) and moves to its 12-bit home.
enum { cache_bits = 12, cache_size = 1 << cache_bits, cache_probe = 4, small_cache_bits = 8,
       small_cache_limit = 1 << (small_cache_bits - 1) };
static struct {
  uintptr_t address;
  uint64_t rule;
} rule_cache[cache_size];
/// The bits the table is hashed with now (small_cache_bits, then cache_bits), and the rules cached at 8 bits.
static unsigned rule_cache_bits = small_cache_bits;
static unsigned rule_cache_count;

static size_t cache_slot(uintptr_t pc, unsigned bits) {
  return (size_t)((pc * 0x9E3779B97F4A7C15ull) >> (64 - bits));
}

/// The cached rule of `pc` in its home probe at `bits`, or 0.
static uint64_t cached_rule(uintptr_t pc, unsigned bits) {
  size_t slot = cache_slot(pc, bits);
  for (int probe = 0; probe < cache_probe; probe++) {
    size_t index = (slot + (size_t)probe) & ((1u << bits) - 1);
    if (__atomic_load_n(&rule_cache[index].address, __ATOMIC_ACQUIRE) == pc) {
      uint64_t rule = __atomic_load_n(&rule_cache[index].rule, __ATOMIC_ACQUIRE);
      if (__atomic_load_n(&rule_cache[index].address, __ATOMIC_RELAXED) == pc) return rule;
    }
  }
  return 0;
}

static void cache_rule(uintptr_t pc, uint64_t rule, unsigned bits) {
  // First empty slot of the probe, else the home slot.
  size_t slot = cache_slot(pc, bits);
  size_t index = slot;
  for (int probe = 0; probe < cache_probe; probe++) {
    size_t candidate = (slot + (size_t)probe) & ((1u << bits) - 1);
    if (__atomic_load_n(&rule_cache[candidate].address, __ATOMIC_RELAXED) == 0) {
      index = candidate;
      break;
    }
  }
  __atomic_store_n(&rule_cache[index].address, 0, __ATOMIC_RELAXED);
  __atomic_store_n(&rule_cache[index].rule, rule, __ATOMIC_RELEASE);
  __atomic_store_n(&rule_cache[index].address, pc, __ATOMIC_RELEASE);
}

static uint64_t rule_for(uintptr_t pc) {
  unsigned bits = __atomic_load_n(&rule_cache_bits, __ATOMIC_RELAXED);
  uint64_t rule = cached_rule(pc, bits);
  if (rule != 0) return rule;
  if (bits != small_cache_bits) rule = cached_rule(pc, small_cache_bits);
  if (rule == 0) {
    rule = compute_rule(pc);
    if (rule == 0) return 0;
    if (bits == small_cache_bits &&
        __atomic_add_fetch(&rule_cache_count, 1, __ATOMIC_RELAXED) >= small_cache_limit) {
      __atomic_store_n(&rule_cache_bits, cache_bits, __ATOMIC_RELAXED);
    }
  }
  cache_rule(pc, rule, bits);
  return rule;
}

// ---- the walk ---------------------------------------------------------------------------------------------
typedef struct handover {
  uintptr_t *frames;
  int capacity;
  int count;
} handover;

static void walk_on_with_libgcc(void *argument) {
  handover *walk = argument;
  walk->count = swalloc_backtrace_capture(walk->frames, walk->capacity, 1);
}

void swalloc_unwind_trampoline(uintptr_t stack, uintptr_t frame, void (*function)(void *), void *argument);

int swalloc_walk_frames(uintptr_t *frames, int capacity, uintptr_t pc, uintptr_t stack, uintptr_t frame) {
  int count = 0;
  while (count < capacity && pc != 0) {
    // A return address points after its call: the frame's code address is inside the call.
    frames[count++] = pc - 1;
    uint64_t rule = rule_for(pc - 1);
    if (rule == 0) {
      // libgcc walks on from this frame (whose return address is at stack - 8): its first frame is this one.
      handover walk = {frames + count - 1, capacity - count + 1, 0};
      swalloc_unwind_trampoline(stack, frame, walk_on_with_libgcc, &walk);
      return count - 1 + walk.count;
    }
    if (rule & rule_end) break;
    uintptr_t cfa = ((rule & rule_rbp_based) ? frame : stack) + (uintptr_t)sign_extend24(rule >> 8);
    // The caller's frame lies above this one, on the same stack.
    if (cfa <= stack || cfa - stack > ((uintptr_t)1 << 24) || (cfa & 7) != 0) break;
    uintptr_t caller_pc = *(const uintptr_t *)(cfa - 8);
    if (rule & rule_rbp_saved) frame = *(const uintptr_t *)(cfa + (uintptr_t)sign_extend24(rule >> 32));
    stack = cfa;
    pc = caller_pc;
  }
  return count;
}
