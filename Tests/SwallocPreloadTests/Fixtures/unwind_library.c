// unwind_library.c: three nested frames without frame pointers (dlopen'ed by unwind.c), for the unwinder test.
// Each level does work after its call, so that no call is a tail call and every frame stays on the stack.
#include <stddef.h>

typedef void (*unwind_callback)(void);

static volatile int unwindSink;

#define UNWIND_LEVEL __attribute__((visibility("default"), noinline, optimize("omit-frame-pointer")))

UNWIND_LEVEL int unwind_level3(unwind_callback callback, int depth) {
  volatile char scratch[96];  // a frame of its own size, addressed through %rsp only
  scratch[depth & 63] = (char)depth;
  callback();
  unwindSink += scratch[depth & 63];
  return depth + 1 + unwindSink;
}

UNWIND_LEVEL int unwind_level2(unwind_callback callback, int depth) {
  int result = unwind_level3(callback, depth + 1);
  unwindSink += result;
  return result + 1;
}

UNWIND_LEVEL int unwind_level1(unwind_callback callback, int depth) {
  int result = unwind_level2(callback, depth + 1);
  unwindSink += result;
  return result + 1;
}
