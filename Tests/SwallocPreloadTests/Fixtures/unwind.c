// unwind.c: swalloc_backtrace (the heap profiler's unwinder) through frames built without frame pointers in a
// dlopen'ed library: called directly, from another thread, from a signal handler the program raised, and from
// a timer signal that interrupts a busy loop. Each case checks that unwind_level3, 2 and 1 appear in order.
// Usage: unwind <path of libunwind_library.so>
#include "fixture.h"
#include <pthread.h>
#include <signal.h>
#include <sys/time.h>

typedef void (*unwind_callback)(void);
typedef int (*unwind_level_function)(unwind_callback, int);

static unwind_level_function level1;
static void *frames[64];
static int frameCount;
static volatile sig_atomic_t captured;
/// libswalloc.so's swalloc_backtrace (looked up: the fixture is not linked against the library).
static int (*backtrace)(void **, int);

static void capture(void) {
  frameCount = backtrace(frames, 64);
  captured = 1;
}

/// Whether the captured frames name unwind_level3, unwind_level2 and unwind_level1 in that order.
static int checkFrames(const char *label) {
  static const char *const expected[] = {"unwind_level3", "unwind_level2", "unwind_level1"};
  size_t next = 0;
  for (int index = 0; index < frameCount && next < 3; index++) {
    Dl_info info;
    if (dladdr(frames[index], &info) && info.dli_sname && strcmp(info.dli_sname, expected[next]) == 0) next++;
  }
  if (next != 3) {
    fprintf(stderr, "%s: %d frames, found %zu of the 3 levels:\n", label, frameCount, next);
    for (int index = 0; index < frameCount; index++) {
      Dl_info info;
      int known = dladdr(frames[index], &info);
      fprintf(stderr, "  #%d %p %s %s\n", index, frames[index], known && info.dli_sname ? info.dli_sname : "?",
              known && info.dli_fname ? info.dli_fname : "?");
    }
    return 0;
  }
  printf("unwind %s ok\n", label);
  return 1;
}

static void *threadMain(void *argument) {
  (void)argument;
  level1(capture, 0);
  return NULL;
}

static void onSignal(int signal) {
  (void)signal;
  capture();
}

static void raiseSignal(void) { raise(SIGUSR1); }

static void spinUntilCaptured(void) {
  while (!captured) {
  }
}

int main(int argc, char **argv) {
  if (argc < 2) fixtureFail("usage: unwind <library>");
  if (!fixtureReportSwalloc()) return 1;
  backtrace = (int (*)(void **, int))dlsym(RTLD_DEFAULT, "swalloc_backtrace");
  if (!backtrace) fixtureFail("no swalloc_backtrace");
  void *library = dlopen(argv[1], RTLD_NOW);
  if (!library) fixtureFail("dlopen: %s", dlerror());
  level1 = (unwind_level_function)dlsym(library, "unwind_level1");
  if (!level1) fixtureFail("no unwind_level1");
  int ok = 1;

  level1(capture, 0);
  ok &= checkFrames("direct");

  pthread_t thread;
  frameCount = 0;
  if (pthread_create(&thread, NULL, threadMain, NULL) != 0) fixtureFail("pthread_create");
  pthread_join(thread, NULL);
  ok &= checkFrames("thread");

  // The test runner may start children with signals blocked: unblock the two this fixture raises.
  sigset_t used;
  sigemptyset(&used);
  sigaddset(&used, SIGUSR1);
  sigaddset(&used, SIGALRM);
  sigprocmask(SIG_UNBLOCK, &used, NULL);
  signal(SIGUSR1, onSignal);
  frameCount = 0;
  level1(raiseSignal, 0);
  ok &= checkFrames("raised signal");

  signal(SIGALRM, onSignal);
  captured = 0;
  frameCount = 0;
  struct itimerval timer = {.it_interval = {0, 10000}, .it_value = {0, 10000}};
  setitimer(ITIMER_REAL, &timer, NULL);
  level1(spinUntilCaptured, 0);
  struct itimerval off = {{0, 0}, {0, 0}};
  setitimer(ITIMER_REAL, &off, NULL);
  ok &= checkFrames("timer signal");

  if (!ok) return 1;
  printf("unwind ok\n");
  return 0;
}
