// profile_plugin.c: a dlopen'ed library whose allocation site the heap profile must name (profile_program.c).
#include "fixture.h"
#include <stdlib.h>
#include <string.h>

__attribute__((visibility("default"))) FIXTURE_SITE void **plugin_allocate(size_t count, size_t byteCount) {
  void **blocks = calloc(count, sizeof(void *));
  for (size_t index = 0; blocks && index < count; index++) {
    blocks[index] = malloc(byteCount);
    if (blocks[index]) memset(blocks[index], 7, 1);
  }
  return blocks;
}
