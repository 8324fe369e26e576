// Malloc before main: a .preinit_array entry (which the loader runs before any shared library's constructor,
// libswalloc.so's included) and constructors allocate and stash blocks that main verifies and frees; a
// destructor and an atexit handler allocate after main has returned.
#include "fixture.h"

#include <malloc.h>
#include <unistd.h>

enum { stageCount = 3 };

typedef struct {
  const char *name;
  unsigned char *block;   // malloc(1000), patterned
  unsigned char *zeroed;  // calloc(50, 20)
  unsigned char *resized; // malloc(10) grown to 100000 by realloc, patterned prefix kept
  void *aligned;          // posix_memalign(4096, 5000)
  char *copy;             // strdup
  int order;
} Stage;

static Stage stages[stageCount];
static int stagesRun;

static void runStage(size_t index, const char *name) {
  Stage *stage = &stages[index];
  stage->name = name;
  stage->order = stagesRun++;
  stage->block = malloc(1000);
  if (stage->block) fixtureFill(stage->block, 1000, index);
  stage->zeroed = calloc(50, 20);
  unsigned char *small = malloc(10);
  if (small) {
    fixtureFill(small, 10, index + 100);
    stage->resized = realloc(small, 100000);
    if (stage->resized == NULL) free(small);
  }
  if (posix_memalign(&stage->aligned, 4096, 5000) != 0) stage->aligned = NULL;
  stage->copy = strdup(name);
  // Churn: allocate and free a little, so that reuse before main is exercised too.
  for (size_t i = 0; i < 100; i++) free(malloc(i * 37));
}

static void preinit(int argc, char **argv, char **environment) {
  (void)argc, (void)argv, (void)environment;
  runStage(0, "preinit_array");
}

__attribute__((section(".preinit_array"), used)) static void (*const preinitEntry)(int, char **, char **) = preinit;

__attribute__((constructor(101))) static void earlyConstructor(void) { runStage(1, "constructor(101)"); }

__attribute__((constructor)) static void constructor(void) { runStage(2, "constructor"); }

static void verifyStage(size_t index) {
  Stage *stage = &stages[index];
  const char *name = stage->name ? stage->name : "(stage that never ran)";
  FIXTURE_CHECK(stage->name != NULL, "stage %zu never ran", index);
  FIXTURE_CHECK(stage->order == (int)index, "%s ran as stage %d, expected %zu", name, stage->order, index);
  FIXTURE_CHECK(stage->block != NULL, "%s: malloc failed", name);
  fixtureVerify(stage->block, 1000, index, name);
  FIXTURE_CHECK(fixtureIsAligned(stage->block, 16), "%s: malloc returned %p", name, (void *)stage->block);
  FIXTURE_CHECK(malloc_usable_size(stage->block) >= 1000, "%s: usable size too small", name);
  FIXTURE_CHECK(stage->zeroed != NULL, "%s: calloc failed", name);
  for (size_t i = 0; i < 1000; i++) FIXTURE_CHECK(stage->zeroed[i] == 0, "%s: calloc byte %zu is not 0", name, i);
  FIXTURE_CHECK(stage->resized != NULL, "%s: realloc failed", name);
  fixtureVerify(stage->resized, 10, index + 100, name);
  memset(stage->resized, 0, 100000);
  FIXTURE_CHECK(stage->aligned != NULL && fixtureIsAligned(stage->aligned, 4096), "%s: posix_memalign gave %p", name,
                stage->aligned);
  FIXTURE_CHECK(stage->copy != NULL && strcmp(stage->copy, name) == 0, "%s: strdup failed", name);
  free(stage->block);
  free(stage->zeroed);
  free(stage->resized);
  free(stage->aligned);
  free(stage->copy);
}

static void afterMain(const char *name) {
  char *block = malloc(5000);
  if (block == NULL) {
    fprintf(stderr, "early_malloc: FAIL: malloc in %s returned NULL\n", name);
    _exit(1);
  }
  snprintf(block, 5000, "malloc in %s ok", name);
  puts(block);
  free(block);
}

static void atExitHandler(void) { afterMain("an atexit handler"); }

__attribute__((destructor)) static void destructor(void) { afterMain("a destructor"); }

int main(void) {
  fixtureReportSwalloc();
  for (size_t i = 0; i < stageCount; i++) verifyStage(i);
  FIXTURE_CHECK(atexit(atExitHandler) == 0, "atexit failed");
  printf("early malloc ok: %d stages before main\n", stagesRun);
  return 0;
}
