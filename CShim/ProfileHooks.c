// ProfileHooks.c: the heap profiler's signal handler and its USDT probes (C: sigaction's structure and the
// probe macros of sys/sdt.h).
#include "CShim.h"
#include <signal.h>

#if __has_include(<sys/sdt.h>)
#include <sys/sdt.h>
#else
#define STAP_PROBE2(provider, name, a, b) ((void)(a), (void)(b))
#define STAP_PROBE3(provider, name, a, b, c) ((void)(a), (void)(b), (void)(c))
#endif

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

// noinline: each probe is one site, whose arguments sit in registers at its NOP.
__attribute__((noinline)) void swalloc_probe_sample(void *block, size_t byte_count, size_t weight) {
  STAP_PROBE3(swalloc, sample, block, byte_count, weight);
}

__attribute__((noinline)) void swalloc_probe_free(void *block, size_t byte_count) {
  STAP_PROBE2(swalloc, sample_free, block, byte_count);
}
