// guarded.c: guarded sampling's C side (see include/guarded.h): the region bounds, the
// SIGSEGV/SIGBUS handler chained to the program's, and symbolization through dladdr.
#define _GNU_SOURCE
#include "CShim.h"

#include <dlfcn.h>
#include <elf.h>
#include <signal.h>
#include <ucontext.h>


__attribute__((visibility("hidden"))) uintptr_t swalloc_guarded_region_start = 0;
__attribute__((visibility("hidden"))) uintptr_t swalloc_guarded_region_length = 0;
__attribute__((visibility("hidden"))) int swalloc_freed_large_faults = 0;

static struct sigaction previous_segv;
static struct sigaction previous_bus;
static int handler_state;  // 0: not installed, 1: installing, 2: installed

static struct sigaction *previous_for(int signal_number) {
  return signal_number == SIGBUS ? &previous_bus : &previous_segv;
}

/// Hands a fault that is not ours to the handler the program had installed before ours, as the kernel
/// would have: its SA_SIGINFO handler or plain handler; for the default action (or an ignored fault, which
/// the kernel does not ignore either), the default disposition, and the access faults again once this
/// returns (a signal sent with kill is raised again, pending until the handler returns).
static void chain(int signal_number, siginfo_t *info, void *context) {
  struct sigaction *previous = previous_for(signal_number);
  if (previous->sa_flags & SA_SIGINFO) {
    if (previous->sa_sigaction != NULL) {
      previous->sa_sigaction(signal_number, info, context);
      return;
    }
  } else if (previous->sa_handler != SIG_DFL && previous->sa_handler != SIG_IGN) {
    previous->sa_handler(signal_number);
    return;
  }
  struct sigaction fallback;
  memset(&fallback, 0, sizeof fallback);
  fallback.sa_handler = SIG_DFL;
  sigaction(signal_number, &fallback, NULL);
  if (info->si_code <= 0) raise(signal_number);
}

static void guarded_signal_handler(int signal_number, siginfo_t *info, void *context) {
  int saved = errno;
  uintptr_t address = (uintptr_t)info->si_addr;
  int access = 0;
  uintptr_t pc = 0;
#if defined(__x86_64__)
  if (context != NULL) {
    ucontext_t *ucontext = (ucontext_t *)context;
    // The page-fault error code: bit 1 is set for a write, bit 4 for an instruction fetch (then the code
    // itself is unreadable: no size).
    greg_t error = ucontext->uc_mcontext.gregs[REG_ERR];
    access = (error & 2) ? 2 : 1;
    pc = (uintptr_t)ucontext->uc_mcontext.gregs[REG_RIP];
    // The access size rides above the kind: access | size << 4.
    if (pc != 0 && !(error & 16)) access |= swalloc_access_size((const uint8_t *)pc) << 4;
  }
#endif
  // Only a fault the kernel raised (si_code > 0) in the region, or in a freed large block, is ours.
  if (info->si_code > 0 &&
      ((address - swalloc_guarded_region_start < swalloc_guarded_region_length &&
        swalloc_core_guarded_fault(address, access, pc)) ||
       (__atomic_load_n(&swalloc_freed_large_faults, __ATOMIC_ACQUIRE) &&
        swalloc_core_freed_large_fault(address, access, pc)))) {
    // Reported. Put back what the program had and let the access fault again: the process dies of the
    // original signal (core dumps and crash reporters see it), or the program's own handler takes it.
    sigaction(signal_number, previous_for(signal_number), NULL);
    errno = saved;
    return;
  }
  chain(signal_number, info, context);
  errno = saved;
}

int swalloc_guarded_install_handler(void) {
  int expected = 0;
  if (!__atomic_compare_exchange_n(&handler_state, &expected, 1, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
    return 0;
  }
  int saved = errno;
  struct sigaction action;
  memset(&action, 0, sizeof action);
  action.sa_sigaction = guarded_signal_handler;
  action.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
  sigemptyset(&action.sa_mask);
  int result = sigaction(SIGSEGV, &action, &previous_segv);
  if (result == 0) result = sigaction(SIGBUS, &action, &previous_bus);
  __atomic_store_n(&handler_state, 2, __ATOMIC_RELEASE);
  errno = saved;
  return result;
}


/// Looks `address` up in the ELF symbol table (.symtab, which dladdr does not read: it has the functions
/// that are not exported) of the file at `path`, loaded at `base`. Copies the name of the function that
/// contains it into `name` and stores its start; returns 0 when none does. Maps the file read-only for the
/// look-up (mmap, not malloc), and checks every offset against the file's size.
static int symtab_lookup(const char *path, uintptr_t base, uintptr_t address, char *name, size_t capacity,
                         uintptr_t *symbol_address) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  off_t size = lseek(fd, 0, SEEK_END);
  if (size < (off_t)sizeof(Elf64_Ehdr)) {
    close(fd);
    return 0;
  }
  const unsigned char *file = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  if (file == MAP_FAILED) return 0;
  int found = 0;
  const Elf64_Ehdr *header = (const Elf64_Ehdr *)file;
  uint64_t length = (uint64_t)size;
  if (memcmp(header->e_ident, ELFMAG, SELFMAG) == 0 && header->e_ident[EI_CLASS] == ELFCLASS64 &&
      header->e_shentsize == sizeof(Elf64_Shdr) && header->e_shoff < length &&
      (uint64_t)header->e_shnum * sizeof(Elf64_Shdr) <= length - header->e_shoff) {
    uintptr_t target = header->e_type == ET_DYN ? address - base : address;
    const Elf64_Shdr *sections = (const Elf64_Shdr *)(file + header->e_shoff);
    for (unsigned index = 0; index < header->e_shnum && !found; index++) {
      const Elf64_Shdr *table = &sections[index];
      if (table->sh_type != SHT_SYMTAB || table->sh_link >= header->e_shnum) continue;
      const Elf64_Shdr *strings = &sections[table->sh_link];
      if (table->sh_offset > length || table->sh_size > length - table->sh_offset) continue;
      if (strings->sh_offset > length || strings->sh_size > length - strings->sh_offset) continue;
      const Elf64_Sym *symbols = (const Elf64_Sym *)(file + table->sh_offset);
      size_t count = table->sh_size / sizeof(Elf64_Sym);
      for (size_t s = 0; s < count; s++) {
        const Elf64_Sym *symbol = &symbols[s];
        if (ELF64_ST_TYPE(symbol->st_info) != STT_FUNC || symbol->st_value == 0) continue;
        if (target < symbol->st_value || target - symbol->st_value >= symbol->st_size) continue;
        if (symbol->st_name >= strings->sh_size) break;
        const char *text = (const char *)(file + strings->sh_offset + symbol->st_name);
        size_t limit = strings->sh_size - symbol->st_name;
        size_t n = 0;
        while (n + 1 < capacity && n < limit && text[n] != 0) {
          name[n] = text[n];
          n++;
        }
        name[n] = 0;
        *symbol_address = address - (target - symbol->st_value);
        found = n > 0;
        break;
      }
    }
  }
  munmap((void *)file, (size_t)size);
  return found;
}

int swalloc_guarded_symbolize(uintptr_t address, char *name, size_t capacity, uintptr_t *symbol_address,
                              char *module, size_t module_capacity, uintptr_t *module_base) {
  swalloc_symbol info;
  memset(&info, 0, sizeof info);
  int saved = errno;
  int known = swalloc_symbolize(address, &info);
  name[0] = 0;
  module[0] = 0;
  if (!known) {
    errno = saved;
    return 0;
  }
  *module_base = info.object_base;
  const char *path = info.object_name != NULL ? info.object_name : "";
  const char *base_name = strrchr(path, '/');
  base_name = base_name != NULL ? base_name + 1 : path;
  size_t n = 0;
  while (n + 1 < module_capacity && base_name[n] != 0) {
    module[n] = base_name[n];
    n++;
  }
  module[n] = 0;
  if (info.symbol_name != NULL && info.symbol_address != 0) {
    size_t m = 0;
    while (m + 1 < capacity && info.symbol_name[m] != 0) {
      name[m] = info.symbol_name[m];
      m++;
    }
    name[m] = 0;
    *symbol_address = info.symbol_address;
  } else if (!symtab_lookup(path, *module_base, address, name, capacity, symbol_address)) {
    // The main program's path as dladdr gives it (argv[0]) may not open from here.
    symtab_lookup("/proc/self/exe", *module_base, address, name, capacity, symbol_address);
  }
  errno = saved;
  return 1;
}
