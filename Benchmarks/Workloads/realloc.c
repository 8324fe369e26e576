// realloc: 64 growth chains advanced in random turns, like string builders and growing arrays: mostly small
// appends, sometimes 1.5x growth or a halving; a chain past its limit is freed and restarted. Contents are
// verified after every realloc, so a move that loses bytes fails the run.
// Usage: realloc SCALE
#include "bench.h"

enum { CHAINS = 64 };

typedef struct {
  unsigned char *p;
  size_t length;  // bytes written so far, all following the pattern below
  size_t limit;   // restart after growing past this
  unsigned char seed;
} Chain;

/// The byte at `index`: constant over 256-byte runs, so filling is a memset per run and costs little next to
/// the realloc being measured, yet a run copied to the wrong place or lost shows.
static unsigned char pattern(const Chain *chain, size_t index) {
  return (unsigned char)(chain->seed + (index >> 8) * 7);
}

static void fill(Chain *chain, size_t from, size_t to) {
  while (from < to) {
    size_t runEnd = ((from >> 8) + 1) << 8;
    if (runEnd > to) runEnd = to;
    memset(chain->p + from, pattern(chain, from), runEnd - from);
    from = runEnd;
  }
}

static void check(const Chain *chain) {
  size_t n = chain->length;
  if (n == 0) return;
  size_t samples[3] = {0, n / 2, n - 1};
  for (int s = 0; s < 3; s++) {
    BENCH_CHECK(chain->p[samples[s]] == pattern(chain, samples[s]), "realloc lost byte %zu of %zu",
                samples[s], n);
  }
}

static void restart(Chain *chain, uint64_t *rng) {
  free(chain->p);
  // Most chains stay below 16 KiB; one in 32 grows to several MiB.
  chain->limit = (bench_rng(rng) % 32 == 0) ? bench_rng_range(rng, 1 << 20, 4 << 20)
                                            : bench_rng_range(rng, 256, 16 << 10);
  chain->length = bench_rng_range(rng, 1, 32);
  chain->seed = (unsigned char)bench_rng(rng);
  chain->p = realloc(NULL, chain->length);
  BENCH_CHECK(chain->p != NULL, "realloc(NULL, %zu) failed", chain->length);
  fill(chain, 0, chain->length);
}

int main(int argc, char **argv) {
  double scale = bench_arg_double(argc, argv, 1, 1.0);
  bench_report_provider();

  static Chain chains[CHAINS];
  uint64_t rng = 7;
  for (int c = 0; c < CHAINS; c++) restart(&chains[c], &rng);

  long steps = bench_scaled(12e6, scale, 1000);
  long moved = 0;
  for (long step = 0; step < steps; step++) {
    Chain *chain = &chains[bench_rng(&rng) % CHAINS];
    uint64_t choice = bench_rng(&rng) % 100;
    size_t newLength;
    if (choice < 85) {
      newLength = chain->length + bench_rng_range(&rng, 1, 64);
    } else if (choice < 95) {
      newLength = chain->length + chain->length / 2 + 1;
    } else {
      newLength = chain->length / 2 + 1;
    }
    if (newLength > chain->limit) {
      check(chain);
      restart(chain, &rng);
      continue;
    }
    unsigned char *old = chain->p;
    unsigned char *p = realloc(old, newLength);
    BENCH_CHECK(p != NULL, "realloc(%zu) failed", newLength);
    moved += p != old;
    chain->p = p;
    if (newLength < chain->length) chain->length = newLength;
    check(chain);
    fill(chain, chain->length, newLength);
    chain->length = newLength;
  }
  for (int c = 0; c < CHAINS; c++) {
    check(&chains[c]);
    free(chains[c].p);
  }
  printf("steps %ld\n", steps);
  printf("moved %ld\n", moved);
  return 0;
}
