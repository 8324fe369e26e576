// Profile.c: swalloc_profile_dump, the heap profiler's C entry point (swalloc.h). Samples are taken in the
// allocator's slow path (Sources/SwallocCore/SamplePoints.swift): with profiling on or off, malloc and free
// execute the same instructions.
#include "CShim.h"
#include "swalloc.h"

int swalloc_impl_profile_dump(const char *path);

__attribute__((visibility("default"))) int swalloc_profile_dump(const char *path) {
  return swalloc_impl_profile_dump(path);
}
