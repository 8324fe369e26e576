// CShim.c: the static empty heap and page, the segment map, the TLS slot, and the process hooks.
#include "CShim.h"
#include <pthread.h>
#include <stdlib.h>

#define SWALLOC_HIDDEN __attribute__((visibility("hidden")))

// Implemented in Swift (SwallocCore/ThreadExit.swift, Statistics.swift).
extern void swalloc_core_thread_exit(void *heap);
extern void swalloc_core_process_init(void);
extern void swalloc_core_process_exit(void);
extern void swalloc_core_fork_child(void);

/// A page descriptor with every field zero: its free list is empty, so a pop from it fails into the slow path.
SWALLOC_HIDDEN uint64_t swalloc_empty_page[32] __attribute__((aligned(128)));

SWALLOC_HIDDEN void *swalloc_empty_heap[SWALLOC_DIRECT_COUNT] __attribute__((aligned(64))) = {
  [0 ... SWALLOC_DIRECT_COUNT - 1] = swalloc_empty_page
};

SWALLOC_HIDDEN uint8_t swalloc_segment_map[SWALLOC_SEGMENT_MAP_COUNT] __attribute__((aligned(4096)));

/// The span cache: slot i holds (span base | mapping size >> 16), or 0; time[i] is when it was put there.
SWALLOC_HIDDEN uint64_t swalloc_span_cache[SWALLOC_SPAN_CACHE_COUNT] __attribute__((aligned(64)));
SWALLOC_HIDDEN uint64_t swalloc_span_cache_time[SWALLOC_SPAN_CACHE_COUNT] __attribute__((aligned(64)));

SWALLOC_HIDDEN uint64_t swalloc_huge_reserve_bits[16];

__thread void *swalloc_tls_heap __attribute__((tls_model("initial-exec"))) = swalloc_empty_heap;
__thread void *swalloc_tls_secure_heap __attribute__((tls_model("initial-exec"))) = swalloc_empty_heap;
__thread swalloc_sampler swalloc_tls_sampler __attribute__((tls_model("initial-exec")));

void swalloc_abort(void) { abort(); }

static pthread_key_t thread_key;
static pthread_once_t thread_key_once = PTHREAD_ONCE_INIT;

static void thread_destructor(void *heap) {
  if (heap != NULL) swalloc_core_thread_exit(heap);
}

static void create_thread_key(void) {
  // Keys below PTHREAD_KEY_2NDLEVEL_SIZE (32) live in the thread descriptor: setspecific does not allocate.
  pthread_key_create(&thread_key, thread_destructor);
}

void swalloc_thread_register(void *heap) {
  pthread_once(&thread_key_once, create_thread_key);
  pthread_setspecific(thread_key, heap);
}

/// Runs in a forked child (fork(), before it returns there): the child draws its own random numbers.
static void after_fork_child(void) {
  swalloc_tls_sampler.random = 0;  // the profiler's generator of the thread that forked: seeded again
  swalloc_core_fork_child();
}

__attribute__((constructor(101))) static void swalloc_constructor(void) {
  pthread_once(&thread_key_once, create_thread_key);
  swalloc_core_process_init();
  // Outside the allocator's paths: glibc may allocate the handler's record (it then calls this malloc).
  pthread_atfork(NULL, NULL, after_fork_child);
}

__attribute__((destructor(101))) static void swalloc_destructor(void) {
  swalloc_core_process_exit();
}
