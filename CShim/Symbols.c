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
