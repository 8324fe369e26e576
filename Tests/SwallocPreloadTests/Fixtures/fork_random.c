// fork_random: a forked child draws its own random numbers. The parent allocates (the allocator, its heap and
// its samplers are set up), then forks children that make the same allocations, one after the other; each
// sends the parent a hash of the addresses it got. Where the allocator draws random numbers (secure mode's
// block order, guarded sampling's choice of blocks), children that inherited their parent's generators and
// did not reseed them get the same addresses; children that reseed get different ones.
// Usage: fork_random [CHILDREN] [leak]. Prints "child N hash H" for each and "distinct hashes: K". With
// `leak`, each child's blocks have 64 different sizes and stay allocated, and the child exits with exit(), so
// that SWALLOC_PROFILE=leaks prints its leaks table: the estimate there depends on which blocks the child's
// profiler sampled.
#include "fixture.h"

#include <sys/wait.h>
#include <unistd.h>

enum { BLOCKS = 4096, SIZE = 48 };

static uint64_t allocateAndHash(int leak) {
  static void *blocks[BLOCKS];
  uint64_t hash = 1469598103934665603ull;
  for (int i = 0; i < BLOCKS; i++) {
    size_t size = leak ? 16 + (size_t)(i % 64) * 16 : SIZE;
    blocks[i] = malloc(size);
    if (blocks[i] == NULL) _exit(3);
    memset(blocks[i], i, size);
    hash = (hash ^ (uint64_t)(uintptr_t)fixtureAddress(blocks[i])) * 1099511628211ull;
  }
  if (!leak) {
    for (int i = 0; i < BLOCKS; i++) free(blocks[i]);
  }
  return hash;
}

int main(int argc, char **argv) {
  int children = argc > 1 ? atoi(argv[1]) : 4;
  if (children < 1 || children > 64) children = 4;
  int leak = argc > 2 && strcmp(argv[2], "leak") == 0;
  fixtureReportSwalloc();
  printf("parent pid %d\n", (int)getpid());
  fflush(stdout);
  (void)allocateAndHash(0);  // the parent's heap, pages and samplers exist before the fork
  uint64_t hashes[64];
  for (int c = 0; c < children; c++) {
    int fds[2];
    if (pipe(fds) != 0) return 2;
    pid_t pid = fork();
    if (pid < 0) return 2;
    if (pid == 0) {
      uint64_t hash = allocateAndHash(leak);
      int written = write(fds[1], &hash, sizeof hash) == sizeof hash;
      if (leak) exit(written ? 0 : 4);  // the library's exit hooks run: the leaks table
      _exit(written ? 0 : 4);
    }
    close(fds[1]);
    int status = 0;
    if (read(fds[0], &hashes[c], sizeof hashes[c]) != sizeof hashes[c]) return 5;
    close(fds[0]);
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) return 6;
    printf("child %d hash %016llx\n", c, (unsigned long long)hashes[c]);
  }
  int distinct = 0;
  for (int c = 0; c < children; c++) {
    int seen = 0;
    for (int d = 0; d < c; d++) seen |= hashes[d] == hashes[c];
    distinct += !seen;
  }
  printf("distinct hashes: %d\n", distinct);
  return 0;
}
