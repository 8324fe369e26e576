// largeblocks: 2000 random replacements among 20 live blocks of 5..25 MiB, each zero-filled as C++'s
// std::make_unique<char[]>(n) does (operator new, then memset; never folded into calloc), and one byte per
// page written. An allocator that unmaps or purges a freed large block and maps a fresh one for the next
// request pays a page fault per 4 KiB on every replacement.
// Usage: largeblocks SCALE
#include "bench.h"

enum { SLOTS = 20, REPLACEMENTS = 2000, PAGE = 4096 };

/// memset through a volatile pointer: the compiler must not turn malloc + memset(0) into calloc.
static void *(*volatile zeroFill)(void *, int, size_t) = memset;

typedef struct {
  unsigned char *p;
  size_t size;
} Block;

static Block make(uint64_t *rng, unsigned char mark) {
  size_t size = bench_rng_range(rng, 5u << 20, 25u << 20);
  unsigned char *p = malloc(size);
  BENCH_CHECK(p != NULL, "malloc(%zu) failed", size);
  zeroFill(p, 0, size);
  for (size_t offset = 0; offset < size; offset += 16 * PAGE) p[offset] = mark;
  return (Block){p, size};
}

static void check(Block block, unsigned char mark) {
  for (size_t offset = 0; offset < block.size; offset += 16 * PAGE) {
    BENCH_CHECK(block.p[offset] == mark, "a %zu-byte block was overwritten at %zu", block.size, offset);
  }
  BENCH_CHECK(block.p[block.size - 1] == 0 || (block.size - 1) % (16 * PAGE) == 0, "last byte overwritten");
}

int main(int argc, char **argv) {
  double scale = bench_arg_double(argc, argv, 1, 1.0);
  bench_report_provider();
  long replacements = bench_scaled(REPLACEMENTS, scale, 20);
  uint64_t rng = 7;
  Block blocks[SLOTS];
  unsigned char marks[SLOTS];
  for (int i = 0; i < SLOTS; i++) {
    marks[i] = (unsigned char)(i + 1);
    blocks[i] = make(&rng, marks[i]);
  }
  for (long r = 0; r < replacements; r++) {
    int i = (int)(bench_rng(&rng) % SLOTS);
    check(blocks[i], marks[i]);
    free(blocks[i].p);
    marks[i] = (unsigned char)(r % 250 + 1);
    blocks[i] = make(&rng, marks[i]);
  }
  for (int i = 0; i < SLOTS; i++) {
    check(blocks[i], marks[i]);
    free(blocks[i].p);
  }
  printf("replacements %ld\n", replacements);
  return 0;
}
