// Symbols.c: the loader queries the profiler needs, which need _GNU_SOURCE declarations from <dlfcn.h>:
// _dl_find_object (lock-free, async-signal-safe: glibc 2.35) for the unwinder, dladdr for the leaks table,
// dl_iterate_phdr for the profile's mappings and build IDs.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <sys/auxv.h>
#include "CShim.h"

int swalloc_object_bounds(const void *address, uintptr_t *start, uintptr_t *end) {
  struct dl_find_object found;
  if (_dl_find_object((void *)address, &found) != 0) return 0;
  *start = (uintptr_t)found.dlfo_map_start;
  *end = (uintptr_t)found.dlfo_map_end;
  return 1;
}

int swalloc_symbolize(uintptr_t address, swalloc_symbol *symbol) {
  Dl_info info;
  // dladdr takes the loader's lock and does not allocate: call it at exit or dump time, never in malloc.
  if (dladdr((void *)address, &info) == 0) return 0;
  symbol->object_name = info.dli_fname;
  symbol->object_base = (uintptr_t)info.dli_fbase;
  symbol->symbol_name = info.dli_sname;
  symbol->symbol_address = (uintptr_t)info.dli_saddr;
  return 1;
}

struct loaded_object_walk {
  swalloc_loaded_object_visitor visit;
  void *context;
};

static int visit_loaded_object(struct dl_phdr_info *info, size_t size, void *data) {
  (void)size;
  struct loaded_object_walk *walk = data;
  swalloc_loaded_object object = {
    .base = (uintptr_t)info->dlpi_addr,
    .program_headers = info->dlpi_phdr,
    .program_header_count = info->dlpi_phnum,
    .name = info->dlpi_name,
  };
  walk->visit(&object, walk->context);
  return 0;
}

void swalloc_each_loaded_object(swalloc_loaded_object_visitor visit, void *context) {
  struct loaded_object_walk walk = {visit, context};
  dl_iterate_phdr(visit_loaded_object, &walk);
}

const char *swalloc_program_path(void) { return (const char *)getauxval(AT_EXECFN); }

// ---- symbols by address, indexed -------------------------------------------------------------------------
// glibc's dladdr scans an object's whole dynamic symbol table at every call: gcc's cc1 exports about 30 000
// symbols, and a profile of a small compile spent 85 % of the run's instructions in the exit dump's dladdr
// calls. swalloc_symbolize_indexed reads each large object's defined functions once (from its dynamic section:
// DT_SYMTAB, DT_STRTAB and DT_HASH or DT_GNU_HASH for the count), sorts them by address in memory of its own
// (mmap, never malloc), and answers by binary search. For the dumps only; one dump at a time uses the tables
// (another meanwhile falls back to dladdr), and swalloc_symbol_tables_release gives them back.
#include <stdatomic.h>
#include <sys/mman.h>

typedef struct symbol_table {
  const void *map;       // the object's link_map (the key)
  uintptr_t base;        // l_addr
  uint32_t *entries;     // (start, length, name) triples sorted by start: offsets from `base`, from `strings`
  const char *strings;   // the object's dynamic string table
  size_t count;
  size_t mapped;         // bytes mapped for `entries`
  const char *name;      // the object's file name
  int small;             // few symbols: dladdr answers (no index, no memory)
} symbol_table;

/// Below this many dynamic symbols dladdr's scan is cheap and the index's memory (12 bytes a symbol, counted in
/// the process's peak RSS at exit: 24 with absolute addresses and name pointers, 0.7 MB for cc1) is not worth
/// it: libc has about 3 000, gcc's cc1 about 30 000.
enum { indexed_symbol_minimum = 8192 };

enum { symbol_table_capacity = 64 };
static symbol_table symbol_tables[symbol_table_capacity];
static int symbol_table_count;
static atomic_flag symbol_tables_busy = ATOMIC_FLAG_INIT;

/// The number of symbols of an object's dynamic symbol table, from its hash section.
static size_t dynamic_symbol_count(const uint32_t *hash, const uint32_t *gnu_hash) {
  if (hash) return hash[1];  // nchain
  if (!gnu_hash) return 0;
  uint32_t bucket_count = gnu_hash[0], symbol_offset = gnu_hash[1], bloom_size = gnu_hash[2];
  const uint32_t *buckets = gnu_hash + 4 + bloom_size * 2;  // 64-bit bloom words
  const uint32_t *chain = buckets + bucket_count;
  uint32_t last = 0;
  for (uint32_t index = 0; index < bucket_count; index++) {
    if (buckets[index] > last) last = buckets[index];
  }
  if (last < symbol_offset) return symbol_offset;
  while (!(chain[last - symbol_offset] & 1)) last++;
  return (size_t)last + 1;
}

static void sift_down(uint32_t *entries, size_t root, size_t count) {
  for (;;) {
    size_t child = 2 * root + 1;
    if (child >= count) return;
    if (child + 1 < count && entries[3 * (child + 1)] > entries[3 * child]) child++;
    if (entries[3 * root] >= entries[3 * child]) return;
    for (int field = 0; field < 3; field++) {
      uint32_t swap = entries[3 * root + field];
      entries[3 * root + field] = entries[3 * child + field];
      entries[3 * child + field] = swap;
    }
    root = child;
  }
}

/// Builds `table` for the object whose link_map is `map` (heap sort by start address: no recursion).
static void build_symbol_table(symbol_table *table, const struct link_map *map) {
  table->map = map;
  table->base = map->l_addr;
  table->name = map->l_name;
  table->entries = NULL;
  table->strings = NULL;
  table->count = 0;
  table->mapped = 0;
  table->small = 0;
  const ElfW(Sym) *symbols = NULL;
  const char *strings = NULL;
  const uint32_t *hash = NULL, *gnu_hash = NULL;
  for (const ElfW(Dyn) *entry = map->l_ld; entry && entry->d_tag != DT_NULL; entry++) {
    uintptr_t pointer = entry->d_un.d_ptr;
    // glibc relocates these in place, except in read-only dynamic sections (the vDSO's).
    if (pointer < map->l_addr) pointer += map->l_addr;
    switch (entry->d_tag) {
      case DT_SYMTAB: symbols = (const ElfW(Sym) *)pointer; break;
      case DT_STRTAB: strings = (const char *)pointer; break;
      case DT_HASH: hash = (const uint32_t *)pointer; break;
      case DT_GNU_HASH: gnu_hash = (const uint32_t *)pointer; break;
      default: break;
    }
  }
  size_t total = symbols && strings ? dynamic_symbol_count(hash, gnu_hash) : 0;
  if (total < indexed_symbol_minimum) {
    table->small = 1;
    return;
  }
  size_t bytes = (total * 3 * sizeof(uint32_t) + 4095) & ~(size_t)4095;
  uint32_t *entries = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (entries == MAP_FAILED) return;
  size_t count = 0;
  for (size_t index = 0; index < total; index++) {
    const ElfW(Sym) *symbol = &symbols[index];
    int type = ELF64_ST_TYPE(symbol->st_info);
    if ((type != STT_FUNC && type != STT_GNU_IFUNC) || symbol->st_shndx == SHN_UNDEF || symbol->st_value == 0) continue;
    uint64_t length = symbol->st_size ? symbol->st_size : 1;
    if (symbol->st_value > UINT32_MAX || length > UINT32_MAX || symbol->st_name > UINT32_MAX) {
      // An object of 4 GiB or more: dladdr answers.
      munmap(entries, bytes);
      table->small = 1;
      return;
    }
    entries[3 * count] = (uint32_t)symbol->st_value;
    entries[3 * count + 1] = (uint32_t)length;
    entries[3 * count + 2] = symbol->st_name;
    count++;
  }
  for (size_t root = count / 2; root-- > 0;) sift_down(entries, root, count);
  for (size_t end = count; end > 1; end--) {
    for (int field = 0; field < 3; field++) {
      uint32_t swap = entries[field];
      entries[field] = entries[3 * (end - 1) + field];
      entries[3 * (end - 1) + field] = swap;
    }
    sift_down(entries, 0, end - 1);
  }
  table->entries = entries;
  table->strings = strings;
  table->count = count;
  table->mapped = bytes;
}

int swalloc_symbolize_indexed(uintptr_t address, swalloc_symbol *symbol) {
  struct dl_find_object found;
  if (_dl_find_object((void *)address, &found) != 0 || found.dlfo_link_map == NULL) return 0;
  if (atomic_flag_test_and_set_explicit(&symbol_tables_busy, memory_order_acquire)) {
    return swalloc_symbolize(address, symbol);
  }
  const struct link_map *map = found.dlfo_link_map;
  symbol_table *table = NULL;
  for (int index = 0; index < symbol_table_count; index++) {
    if (symbol_tables[index].map == map) table = &symbol_tables[index];
  }
  if (table == NULL && symbol_table_count < symbol_table_capacity) {
    table = &symbol_tables[symbol_table_count++];
    build_symbol_table(table, map);
  }
  int result = 0;
  if (table != NULL) {
    symbol->object_name = table->name;
    symbol->object_base = table->base;
    symbol->symbol_name = NULL;
    symbol->symbol_address = 0;
    result = 1;
    // The last entry whose start is <= address; a hit when the address is inside it.
    uintptr_t offset = address - table->base;
    size_t low = 0, high = table->count;
    while (low < high) {
      size_t middle = (low + high) / 2;
      if (table->entries[3 * middle] <= offset) low = middle + 1; else high = middle;
    }
    if (low > 0 && address >= table->base && offset - table->entries[3 * (low - 1)] < table->entries[3 * (low - 1) + 1]) {
      symbol->symbol_address = table->base + table->entries[3 * (low - 1)];
      symbol->symbol_name = table->strings + table->entries[3 * (low - 1) + 2];
    }
  }
  int small = table != NULL && table->small;
  atomic_flag_clear_explicit(&symbol_tables_busy, memory_order_release);
  if (table == NULL || small) return swalloc_symbolize(address, symbol);
  return result;
}

void swalloc_symbol_tables_release(void) {
  if (atomic_flag_test_and_set_explicit(&symbol_tables_busy, memory_order_acquire)) return;
  for (int index = 0; index < symbol_table_count; index++) {
    if (symbol_tables[index].entries) munmap(symbol_tables[index].entries, symbol_tables[index].mapped);
  }
  symbol_table_count = 0;
  atomic_flag_clear_explicit(&symbol_tables_busy, memory_order_release);
}
