// dlopen fixture: loads the plugin library (argv[1]) several times; each time the plugin's constructor and
// functions allocate, blocks cross between the plugin and the program, threads touch the plugin's dynamic TLS,
// and dlclose runs the plugin's destructor.
#include "fixture.h"

#include <pthread.h>

enum { roundCount = 10, threadCount = 4 };

typedef uint64_t PluginWork(uint64_t);
typedef void *PluginAllocate(size_t, uint64_t);
typedef void PluginRelease(void *, size_t, uint64_t);

static PluginWork *pluginWork;

static void *runThread(void *argument) {
  uint64_t seed = (uint64_t)(uintptr_t)argument;
  return (void *)(uintptr_t)(pluginWork(seed) != 0);
}

int main(int argc, char **argv) {
  fixtureReportSwalloc();
  FIXTURE_CHECK(argc == 2, "usage: dlopen_plugin <plugin.so>");
  for (int round = 0; round < roundCount; round++) {
    void *handle = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    FIXTURE_CHECK(handle != NULL, "dlopen: %s", dlerror());
    pluginWork = (PluginWork *)dlsym(handle, "pluginWork");
    PluginAllocate *pluginAllocate = (PluginAllocate *)dlsym(handle, "pluginAllocate");
    PluginRelease *pluginRelease = (PluginRelease *)dlsym(handle, "pluginRelease");
    FIXTURE_CHECK(pluginWork && pluginAllocate && pluginRelease, "dlsym: %s", dlerror());

    uint64_t first = pluginWork((uint64_t)round + 1);
    FIXTURE_CHECK(first == pluginWork((uint64_t)round + 1), "pluginWork is not deterministic");

    void *fromPlugin[32];
    for (size_t i = 0; i < 32; i++) fromPlugin[i] = pluginAllocate(1 + i * 300, i);
    for (size_t i = 0; i < 32; i++) {
      fixtureVerify(fromPlugin[i], 1 + i * 300, i, "block from the plugin");
      free(fromPlugin[i]);
    }
    for (size_t i = 0; i < 32; i++) {
      void *block = malloc(1 + i * 500);
      FIXTURE_CHECK(block != NULL, "malloc failed");
      fixtureFill(block, 1 + i * 500, i + 1000);
      pluginRelease(block, 1 + i * 500, i + 1000);
    }

    pthread_t threads[threadCount];
    for (size_t i = 0; i < threadCount; i++) {
      int error = pthread_create(&threads[i], NULL, runThread, (void *)(uintptr_t)(i + 7));
      FIXTURE_CHECK(error == 0, "pthread_create: %s", strerror(error));
    }
    for (size_t i = 0; i < threadCount; i++) {
      void *result = NULL;
      pthread_join(threads[i], &result);
      FIXTURE_CHECK(result != NULL, "pluginWork in a thread returned 0");
    }
    FIXTURE_CHECK(dlclose(handle) == 0, "dlclose: %s", dlerror());
  }
  printf("dlopen ok: %d rounds\n", roundCount);
  return 0;
}
