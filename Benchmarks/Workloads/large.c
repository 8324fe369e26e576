// large: 8 slots replaced at random by blocks of 64 KiB..64 MiB (log-uniform), every page of each written,
// so an allocator that unmaps and refaults on every reuse pays for it. Checked before each free.
// Usage: large SCALE
#include "bench.h"
#include <math.h>

enum { SLOTS = 8, PAGE = 4096 };

typedef struct {
  unsigned char *p;
  size_t size;
} Block;

static void touch(Block block) {
  for (size_t offset = 0; offset < block.size; offset += PAGE) {
    block.p[offset] = (unsigned char)(offset / PAGE);
  }
  bench_tag_write(block.p, block.size);
}

static void check(Block block) {
  bench_tag_check(block.p, block.size);
  size_t pages = (block.size + PAGE - 1) / PAGE;
  for (size_t page = 1; page < pages; page += 61) {
    size_t offset = page * PAGE;
    BENCH_CHECK(offset == block.size - 1 || block.p[offset] == (unsigned char)page,
                "page %zu of a %zu-byte block was overwritten", page, block.size);
  }
}

int main(int argc, char **argv) {
  double scale = bench_arg_double(argc, argv, 1, 1.0);
  bench_report_provider();

  static Block slots[SLOTS];
  uint64_t rng = 99;
  long operations = bench_scaled(400, scale, 10);
  double touchedBytes = 0;
  for (long op = 0; op < operations; op++) {
    Block *slot = &slots[bench_rng(&rng) % SLOTS];
    if (slot->p != NULL) {
      check(*slot);
      free(slot->p);
    }
    // log2(size) uniform in [16, 26): 64 KiB..64 MiB, half of them below 2 MiB.
    double exponent = 16.0 + 10.0 * (double)(bench_rng(&rng) >> 11) / 9007199254740992.0;
    size_t size = (size_t)exp2(exponent);
    slot->p = malloc(size);
    BENCH_CHECK(slot->p != NULL, "malloc(%zu) failed", size);
    slot->size = size;
    touch(*slot);
    touchedBytes += (double)size;
  }
  for (int s = 0; s < SLOTS; s++) {
    if (slots[s].p != NULL) {
      check(slots[s]);
      free(slots[s].p);
    }
  }
  printf("operations %ld\n", operations);
  printf("touched_mib %.0f\n", touchedBytes / 1048576.0);
  return 0;
}
