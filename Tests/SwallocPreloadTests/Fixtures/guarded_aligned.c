// Guarded sampling's misuse probes with aligned_alloc and free (see guarded.h): the aligned family's guarded
// blocks carry the allocating stack like malloc's.
#define GUARDED_ALLOCATE(size) aligned_alloc(16, size)
#define GUARDED_RELEASE(block) free(block)
#include "guarded.h"

int main(int argc, char **argv) { return runGuardedProbe(argc, argv); }
