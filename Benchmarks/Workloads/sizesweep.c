// sizesweep: every size class from 8 B to 64 KiB in turn: a batch of objects of one size is allocated,
// touched (one byte per 4 KiB page), checked for alignment and usable size, and freed; then the next size.
// Usage: sizesweep SCALE
#include "bench.h"
#include <malloc.h>

enum { MAX_SIZES = 512, MAX_BATCH = 4096 };

/// 8..1024 in steps of 8, then 8 steps per power of two up to 64 KiB, each also as size - 1.
static int make_sizes(size_t *sizes) {
  int n = 0;
  for (size_t size = 8; size <= 1024; size += 8) sizes[n++] = size;
  for (size_t power = 1024; power < 65536; power *= 2) {
    for (size_t step = 1; step <= 8; step++) {
      size_t size = power + power * step / 8;
      sizes[n++] = size - 1;
      sizes[n++] = size;
    }
  }
  return n;
}

/// The alignment glibc promises for a request of `size` bytes: 16, or less for smaller requests.
static size_t expected_alignment(size_t size) {
  size_t alignment = 16;
  while (alignment > 1 && alignment > size) alignment /= 2;
  return alignment;
}

int main(int argc, char **argv) {
  double scale = bench_arg_double(argc, argv, 1, 1.0);
  bench_report_provider();

  static size_t sizes[MAX_SIZES];
  static unsigned char *batch[MAX_BATCH];
  int sizeCount = make_sizes(sizes);
  long rounds = bench_scaled(50, scale, 1);
  long operations = 0;
  for (long round = 0; round < rounds; round++) {
    for (int s = 0; s < sizeCount; s++) {
      size_t size = sizes[s];
      // About 1 MiB per batch, at least 16 objects.
      size_t count = (1u << 20) / size;
      if (count > MAX_BATCH) count = MAX_BATCH;
      if (count < 16) count = 16;
      for (size_t i = 0; i < count; i++) {
        unsigned char *p = malloc(size);
        BENCH_CHECK(p != NULL, "malloc(%zu) failed", size);
        BENCH_CHECK((uintptr_t)p % expected_alignment(size) == 0, "malloc(%zu) = %p is misaligned", size, p);
        for (size_t offset = 4096; offset < size; offset += 4096) p[offset] = (unsigned char)i;
        bench_tag_write(p, size);
        batch[i] = p;
      }
      // Usable size is checked on a sample: it costs a lookup that is not part of the workload.
      BENCH_CHECK(malloc_usable_size(batch[0]) >= size, "malloc_usable_size < %zu", size);
      for (size_t i = 0; i < count; i++) {
        bench_tag_check(batch[i], size);
        free(batch[i]);
      }
      operations += (long)count;
    }
  }
  printf("sizes %d\n", sizeCount);
  printf("operations %ld\n", operations);
  return 0;
}
