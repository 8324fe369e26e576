// Guarded sampling's misuse probes with realloc(NULL, n) and realloc(p, 0) (see guarded.h): realloc's guarded
// blocks carry the allocating stack, and its free the freeing stack.
#define GUARDED_ALLOCATE(size) realloc(NULL, size)
#define GUARDED_RELEASE(block) ((void)realloc(block, 0))
#include "guarded.h"

int main(int argc, char **argv) { return runGuardedProbe(argc, argv); }
