// ProfileHooks.c: the heap profiler's signal handler and its USDT probes (C: sigaction's structure and the
// probes' ELF notes, which need inline assembly).
#include "CShim.h"
#include <signal.h>

// USDT probes, written out here rather than taken from sys/sdt.h (systemtap-sdt-dev), so that the library
// has them whatever the build machine has installed. The format is SystemTap's documented SDT ABI, which
// bpftrace, perf and eBPF profilers read: at the probe site a NOP, and in the ELF note section .note.stapsdt a
// note of type 3 named "stapsdt" holding the NOP's address, the address of the section .stapsdt.base (so a
// tool can correct for prelinking), a semaphore address (0: none), the provider, the probe's name, and one
// "size@operand" per argument ("8@%rdi": 8 bytes, unsigned, in rdi). .stapsdt.base is marked retained (R):
// only the note refers to it, and the linker's --gc-sections would drop it otherwise.
#define SWALLOC_SDT_NOTE(provider, name, arguments)                                                        \
  "990: nop\n"                                                                                             \
  ".pushsection .note.stapsdt,\"?\",\"note\"\n"                                                          \
  ".balign 4\n"                                                                                            \
  ".4byte 992f-991f, 994f-993f, 3\n"                                                                       \
  "991: .asciz \"stapsdt\"\n"                                                                              \
  "992: .balign 4\n"                                                                                       \
  "993: .8byte 990b\n"                                                                                     \
  ".8byte _.stapsdt.base\n"                                                                                \
  ".8byte 0\n"                                                                                             \
  ".asciz \"" #provider "\"\n"                                                                             \
  ".asciz \"" #name "\"\n"                                                                                 \
  ".asciz \"" arguments "\"\n"                                                                             \
  "994: .balign 4\n"                                                                                       \
  ".popsection\n"                                                                                          \
  ".ifndef _.stapsdt.base\n"                                                                               \
  ".pushsection .stapsdt.base,\"aGR\",\"progbits\",.stapsdt.base,comdat\n"                                 \
  ".weak _.stapsdt.base\n"                                                                                 \
  ".hidden _.stapsdt.base\n"                                                                               \
  "_.stapsdt.base: .space 1\n"                                                                             \
  ".size _.stapsdt.base, 1\n"                                                                              \
  ".popsection\n"                                                                                          \
  ".endif\n"

#define STAP_PROBE2(provider, name, a, b)                                                                  \
  __asm__ __volatile__(SWALLOC_SDT_NOTE(provider, name, "8@%[a1] 8@%[a2]")                                 \
                       : : [a1] "r"((uint64_t)(uintptr_t)(a)), [a2] "r"((uint64_t)(b)))
#define STAP_PROBE3(provider, name, a, b, c)                                                               \
  __asm__ __volatile__(SWALLOC_SDT_NOTE(provider, name, "8@%[a1] 8@%[a2] 8@%[a3]")                         \
                       : : [a1] "r"((uint64_t)(uintptr_t)(a)), [a2] "r"((uint64_t)(b)), [a3] "r"((uint64_t)(c)))

// Implemented in Swift (SwallocCore/Profile+Dump.swift).
extern void swalloc_core_profile_signal(int signal);

static void profile_signal_handler(int signal) {
  int saved = errno;
  swalloc_core_profile_signal(signal);
  errno = saved;
}

void swalloc_profile_install_signal(int signal) {
  struct sigaction action;
  memset(&action, 0, sizeof action);
  action.sa_handler = profile_signal_handler;
  action.sa_flags = SA_RESTART;
  sigemptyset(&action.sa_mask);
  sigaction(signal, &action, NULL);
}

void swalloc_reraise_default(int signal) {
  struct sigaction action;
  memset(&action, 0, sizeof action);
  action.sa_handler = SIG_DFL;
  sigemptyset(&action.sa_mask);
  sigaction(signal, &action, NULL);
  sigset_t unblocked;
  sigemptyset(&unblocked);
  sigaddset(&unblocked, signal);
  sigprocmask(SIG_UNBLOCK, &unblocked, NULL);
  kill(getpid(), signal);
}

// noinline: each probe is one site, whose arguments sit in registers at its NOP. used and retain: a program
// that links the Swift API without calling them keeps them under --gc-sections, which the note refers to.
__attribute__((noinline, used, retain)) void swalloc_probe_sample(void *block, size_t byte_count, size_t weight) {
  STAP_PROBE3(swalloc, sample, block, byte_count, weight);
}

__attribute__((noinline, used, retain)) void swalloc_probe_free(void *block, size_t byte_count) {
  STAP_PROBE2(swalloc, sample_free, block, byte_count);
}
