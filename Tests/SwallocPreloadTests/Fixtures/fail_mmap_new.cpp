// fail_mmap_new: C++ operator new while libfail_mmap.so (preloaded after libswalloc.so) makes mmap fail.
// Throwing new throws std::bad_alloc, nothrow new returns nullptr, a new-handler gets its chance (and a
// handler that makes room lets new succeed), and the allocator serves again once mmap works.
#include "fixture.h"
#include <malloc.h>
#include <new>

static void (*injectFailures)(long skip, long count);
static void (*stopFailures)(void);
static long (*mmapFailures)(void);

/// Where results go, so that the compiler keeps every new.
static void *volatile sink;

enum { maximumKept = 1 << 14 };
static char *kept[maximumKept];
static size_t keptCount;

/// Whether `allocate` throws std::bad_alloc (and only that).
template <typename Allocate> static bool throwsBadAlloc(Allocate allocate) {
  try {
    sink = allocate();
  } catch (const std::bad_alloc &) {
    return true;
  }
  return false;
}

static int handlerCalls;

/// A new-handler that "makes room": it stops the injected failures, so new's next try succeeds.
static void makeRoom() {
  handlerCalls++;
  stopFailures();
}

int main() {
  FIXTURE_CHECK(fixtureReportSwalloc(), "libswalloc.so is not loaded");
  injectFailures = (void (*)(long, long))dlsym(RTLD_DEFAULT, "fail_mmap_inject");
  stopFailures = (void (*)(void))dlsym(RTLD_DEFAULT, "fail_mmap_stop");
  mmapFailures = (long (*)(void))dlsym(RTLD_DEFAULT, "fail_mmap_failures");
  FIXTURE_CHECK(injectFailures && stopFailures && mmapFailures, "libfail_mmap.so is not loaded");

  malloc_trim(0);  // the span cache is empty: every new span means mmap
  injectFailures(0, -1);
  FIXTURE_CHECK(throwsBadAlloc([] { return new char[2u << 20]; }), "new char[2 MiB] did not throw bad_alloc");
  FIXTURE_CHECK(throwsBadAlloc([] { return ::operator new(1u << 20, std::align_val_t(1u << 20)); }),
                "aligned operator new did not throw bad_alloc");
  sink = new (std::nothrow) char[2u << 20];
  FIXTURE_CHECK(sink == nullptr, "nothrow new char[2 MiB] did not return nullptr");
  sink = ::operator new(1u << 20, std::align_val_t(1u << 20), std::nothrow);
  FIXTURE_CHECK(sink == nullptr, "nothrow aligned operator new did not return nullptr");

  // Small objects: fill the current segments until new needs a mapping.
  bool threw = false;
  while (!threw) {
    FIXTURE_CHECK(keptCount < maximumKept, "new char[1000] never threw while mmap failed");
    try {
      char *object = new char[1000];
      fixtureFill(object, 1000, keptCount);
      kept[keptCount++] = object;
    } catch (const std::bad_alloc &) {
      threw = true;
    }
  }
  FIXTURE_CHECK(mmapFailures() > 0, "bad_alloc without a failed mmap call");

  // A new-handler that makes room: new calls it once, then succeeds.
  std::set_new_handler(makeRoom);
  // volatile: clang elides a new/delete pair whose block does not escape, and the handler would never run.
  char *volatile rescued = new char[2u << 20];
  std::set_new_handler(nullptr);
  FIXTURE_CHECK(handlerCalls == 1, "the new-handler ran %d times, not once", handlerCalls);
  rescued[0] = 1;
  rescued[(2u << 20) - 1] = 2;
  delete[] rescued;

  // Mapping works again: the objects made before are intact, and new serves every size.
  for (size_t i = 0; i < keptCount; i++) {
    fixtureVerify(kept[i], 1000, i, "an object made before new threw");
    delete[] kept[i];
  }
  char *small = new char[1000];
  char *huge = new char[8u << 20];
  small[999] = huge[(8u << 20) - 1] = 3;
  delete[] small;
  delete[] huge;
  printf("fail-mmap-new ok: %zu objects before bad_alloc\n", keptCount);
  return 0;
}
