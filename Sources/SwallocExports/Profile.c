// Profile.c: swalloc_profile_dump, the heap profiler's C entry point (swalloc.h). Samples are taken in the
// allocator's slow path (Sources/SwallocCore/SamplePoints.swift): with profiling on or off, malloc and free
// execute the same instructions.
#include <stddef.h>
#include <stdint.h>

#include "CShim.h"
#include "swalloc.h"

int swalloc_impl_profile_dump(const char *path);
int swalloc_impl_profile_note_sample(const uintptr_t *frames, int count, size_t byte_count, size_t charged,
                                     void *block, int64_t *weights);
void swalloc_impl_profile_note_release(void *block, int stack, int64_t bytes, int64_t objects, size_t byte_count);

__attribute__((visibility("default"))) int swalloc_profile_dump(const char *path) {
  return swalloc_impl_profile_dump(path);
}

// For the Swift API's copy of the allocator (module Swalloc, inside the program): its heaps' samples go into
// this library's profile, so that one process writes one profile. Not part of swalloc.h.

/// Records a sample taken elsewhere: `frames` its stack, `byte_count` the bytes asked for, `charged` what its
/// countdown counted. Stores the weights (bytes, objects in fixed point) in `weights`; returns the stack's
/// entry, which the release takes back, or -1 when profiling is off.
__attribute__((visibility("default"))) int swalloc_profile_note_sample(const uintptr_t *frames, int count,
                                                                      size_t byte_count, size_t charged, void *block,
                                                                      int64_t *weights) {
  return swalloc_impl_profile_note_sample(frames, count, byte_count, charged, block, weights);
}

/// The free of such a sample: its figures leave the live ones.
__attribute__((visibility("default"))) void swalloc_profile_note_release(void *block, int stack, int64_t bytes,
                                                                       int64_t objects, size_t byte_count) {
  swalloc_impl_profile_note_release(block, stack, bytes, objects, byte_count);
}
