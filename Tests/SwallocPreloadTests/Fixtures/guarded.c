// Guarded sampling's misuse probes in C (malloc and free); see guarded.h.
#define GUARDED_ALLOCATE(size) malloc(size)
#define GUARDED_RELEASE(block) free(block)
#include "guarded.h"

int main(int argc, char **argv) { return runGuardedProbe(argc, argv); }
