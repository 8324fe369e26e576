// Guarded sampling's misuse probes with calloc and free (see guarded.h): calloc's guarded blocks carry the
// allocating stack like malloc's.
#define GUARDED_ALLOCATE(size) calloc(1, size)
#define GUARDED_RELEASE(block) free(block)
#include "guarded.h"

int main(int argc, char **argv) { return runGuardedProbe(argc, argv); }
