// Guarded sampling's misuse probes in C++ (new char[] and delete[]); see guarded.h.
#define GUARDED_ALLOCATE(size) (new char[size])
#define GUARDED_RELEASE(block) (delete[] (block))
#include "guarded.h"

int main(int argc, char **argv) { return runGuardedProbe(argc, argv); }
