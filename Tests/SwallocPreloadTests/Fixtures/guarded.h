// Guarded sampling's misuse probes, shared by guarded.c and guarded_cxx.cpp (which allocate with malloc/free or
// new/delete through the GUARDED_ALLOCATE / GUARDED_RELEASE macros they define first). Run with
// SWALLOC_GUARDED_SAMPLE=1: every eligible allocation is guarded, so the probes find guarded blocks among
// the first few they allocate. Each mode commits one misuse that must stop the process; "not stopped"
// on stdout means it did not.
#include "fixture.h"

// The probes misuse memory on purpose.
#pragma GCC diagnostic ignored "-Wpragmas"
#pragma GCC diagnostic ignored "-Wuse-after-free"

#include <malloc.h>

#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

/// A size that ends exactly at the guard page (a multiple of 16: blocks are 16-byte aligned).
#define GUARDED_SIZE 48
/// A size that leaves 8 bytes of alignment slack before the guard page (checked on free).
#define GUARDED_SLACK_SIZE 40
#define GUARDED_PAGE 4096u
#define GUARDED_NOINLINE __attribute__((noinline))
// An empty statement after a call keeps it a call (not a tail jump), so its return address is in the caller.
#define GUARDED_KEEP_FRAME() __asm__ volatile("" ::: "memory")

static volatile char guarded_sink;

/// Allocation site that the reports must name.
GUARDED_NOINLINE char *make_node(size_t size) {
  char *block = (char *)GUARDED_ALLOCATE(size);
  GUARDED_KEEP_FRAME();
  return block;
}

/// Free site that the reports must name.
GUARDED_NOINLINE void release_node(char *block) {
  GUARDED_RELEASE(block);
  GUARDED_KEEP_FRAME();
}

/// A second free site (double free).
GUARDED_NOINLINE void release_again(char *block) {
  GUARDED_RELEASE(block);
  GUARDED_KEEP_FRAME();
}

GUARDED_NOINLINE void read_node(char *block, long offset) {
  guarded_sink = block[offset];
  GUARDED_KEEP_FRAME();
}

GUARDED_NOINLINE void write_node(char *block, long offset) {
  block[offset] = 1;
  GUARDED_KEEP_FRAME();
}

/// An 8-byte store (the report gives the access size).
GUARDED_NOINLINE void write_word(char *block, long offset) {
  *(volatile unsigned long long *)(block + offset) = 0x0101010101010101ull;
  GUARDED_KEEP_FRAME();
}

typedef long long guarded_vector __attribute__((vector_size(16)));
typedef long long guarded_unaligned_vector __attribute__((vector_size(16), aligned(1)));
static volatile guarded_vector guarded_vector_sink;

/// A 16-byte vector load (movdqu).
GUARDED_NOINLINE void read_vector(char *block, long offset) {
  guarded_vector_sink = *(const guarded_unaligned_vector *)(block + offset);
  GUARDED_KEEP_FRAME();
}

/// A guarded block of `size` bytes against the end guard (`atEnd`: its 16-byte-rounded end is a page end)
/// or against the start guard: among the first 64 allocations, at rate 1 each one guarded, the side is
/// random (a quarter at the start).
static char *guardedSizedBlock(size_t size, int atEnd) {
  for (int i = 0; i < 64; i++) {
    char *block = make_node(size);
    uintptr_t address = fixtureAddress(block);
    if (atEnd && (address + ((size + 15) & ~(size_t)15)) % GUARDED_PAGE == 0) return block;
    if (!atEnd && address % GUARDED_PAGE == 0) return block;
  }
  fixtureFail("no guarded block %s among 64 allocations", atEnd ? "at a page end" : "at a page start");
}

static char *guardedBlock(int atEnd) { return guardedSizedBlock(GUARDED_SIZE, atEnd); }

/// A handler of the program's own: a JIT-style one that handles faults in its own code page (by making the
/// page accessible) and hands every other fault to the handler it replaced.
static char *jitPage;
static struct sigaction jitPrevious;
static int jitFaults;

static void jitHandler(int signal, siginfo_t *info, void *context) {
  char *address = (char *)info->si_addr;
  if (address >= jitPage && address < jitPage + GUARDED_PAGE) {
    jitFaults++;
    mprotect(jitPage, GUARDED_PAGE, PROT_READ | PROT_WRITE);
    return;
  }
  if (jitPrevious.sa_flags & SA_SIGINFO) {
    jitPrevious.sa_sigaction(signal, info, context);
  } else if (jitPrevious.sa_handler != SIG_DFL && jitPrevious.sa_handler != SIG_IGN) {
    jitPrevious.sa_handler(signal);
  } else {
    struct sigaction fallback;
    memset(&fallback, 0, sizeof fallback);
    fallback.sa_handler = SIG_DFL;
    sigaction(signal, &fallback, NULL);
  }
}

/// Installs the JIT handler (after a guarded block exists, so swalloc's handler is the one it replaces),
/// then faults on its page 100 times; each fault is handled and the program goes on.
static void runJit(void) {
  char *block = make_node(GUARDED_SIZE);  // the first sample installs swalloc's handler
  release_node(block);
  jitPage = (char *)mmap(NULL, GUARDED_PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  FIXTURE_CHECK(jitPage != MAP_FAILED, "mmap failed");
  struct sigaction action;
  memset(&action, 0, sizeof action);
  action.sa_sigaction = jitHandler;
  action.sa_flags = SA_SIGINFO;
  sigemptyset(&action.sa_mask);
  FIXTURE_CHECK(sigaction(SIGSEGV, &action, &jitPrevious) == 0, "sigaction failed");
  for (int i = 0; i < 100; i++) {
    jitPage[i] = (char)i;  // faults once, then the page is open
    mprotect(jitPage, GUARDED_PAGE, PROT_NONE);
  }
  printf("jit faults handled: %d\n", jitFaults);
  fflush(stdout);
}

static int runGuardedProbe(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "";
  fixtureReportSwalloc();
  if (strcmp(mode, "uaf-read") == 0) {
    char *block = guardedBlock(1);
    release_node(block);
    read_node(block, 16);
  } else if (strcmp(mode, "uaf-write") == 0) {
    char *block = guardedBlock(1);
    release_node(block);
    write_node(block, 16);
  } else if (strcmp(mode, "uaf-write-word") == 0) {
    char *block = guardedBlock(1);
    release_node(block);
    write_word(block, 16);
  } else if (strcmp(mode, "uaf-read-vector") == 0) {
    char *block = guardedBlock(1);
    release_node(block);
    read_vector(block, 16);
  } else if (strcmp(mode, "overflow") == 0) {
    char *block = guardedBlock(1);
    write_node(block, GUARDED_SIZE);  // one byte past the end
  } else if (strcmp(mode, "overflow-slack") == 0) {
    char *block = guardedSizedBlock(GUARDED_SLACK_SIZE, 1);
    write_node(block, GUARDED_SLACK_SIZE);  // one byte past the end, in the alignment slack: found on free
    release_node(block);
  } else if (strcmp(mode, "underflow") == 0) {
    char *block = guardedBlock(0);
    read_node(block, -1);  // one byte before the start
  } else if (strcmp(mode, "double-free") == 0) {
    char *block = guardedBlock(1);
    release_node(block);
    release_again(block);
  } else if (strcmp(mode, "interior-free") == 0) {
    char *block = guardedBlock(1);
    release_node(block + 8);
  } else if (strcmp(mode, "jit") == 0) {
    runJit();
    printf("jit ok\n");
    if (argc > 2 && strcmp(argv[2], "then-uaf") == 0) {
      // A use after free in the same program still reaches swalloc through the JIT handler's chain.
      char *block = guardedBlock(1);
      release_node(block);
      write_node(block, 16);
    } else {
      return 0;
    }
  } else if (strcmp(mode, "fork") == 0) {
    // The child inherits the slots and the handler: its use after free of a block the parent allocated
    // is reported, and it dies of SIGSEGV; the parent goes on.
    char *block = guardedBlock(1);
    fflush(stdout);
    pid_t child = fork();
    FIXTURE_CHECK(child >= 0, "fork failed");
    if (child == 0) {
      release_node(block);
      write_node(block, 16);
      _exit(0);
    }
    int status = 0;
    FIXTURE_CHECK(waitpid(child, &status, 0) == child, "waitpid failed");
    printf("child %s %d\n", WIFSIGNALED(status) ? "signal" : "exit", WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
    block[0] = 1;  // still live in the parent
    release_node(block);
    return 0;
  } else if (strcmp(mode, "usable-size") == 0) {
    char *block = guardedBlock(1);
    printf("usable size %zu\n", malloc_usable_size(block));
    release_node(block);
    return 0;
  } else if (strcmp(mode, "realloc-stale") == 0) {
    // realloc moves a guarded block: the stale pointer to it faults.
    char *block = guardedBlock(1);
    memset(block, 7, GUARDED_SIZE);
    char *moved = (char *)realloc(block, GUARDED_SIZE * 2);
    FIXTURE_CHECK(moved != NULL && moved != block && moved[GUARDED_SIZE - 1] == 7, "realloc did not move and copy");
    write_node(block, 0);
  } else if (strcmp(mode, "hot-loop") == 0) {
    // One use after free in a hot loop: each iteration allocates, frees and then reads the freed block.
    long iterations = argc > 2 ? atol(argv[2]) : 1000000;
    for (long i = 0; i < iterations; i++) {
      char *block = make_node(GUARDED_SIZE);
      block[0] = (char)i;
      release_node(block);
      read_node(block, 0);
    }
    printf("hot loop finished\n");
    return 0;
  } else {
    fixtureFail("unknown mode %s", mode);
  }
  printf("not stopped\n");
  return 0;
}
