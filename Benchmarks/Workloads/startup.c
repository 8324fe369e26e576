// startup: process start-up cost. Spawns /bin/true N times and waits for each; LD_PRELOAD is inherited, so
// every child loads and initializes the allocator under test. Compare with glibc (no preload).
// Usage: startup SCALE
#include "bench.h"
#include <spawn.h>
#include <sys/wait.h>

extern char **environ;

int main(int argc, char **argv) {
  double scale = bench_arg_double(argc, argv, 1, 1.0);
  bench_report_provider();

  long spawns = bench_scaled(400, scale, 5);
  char *childArgv[] = {"/bin/true", NULL};
  double start = bench_now();
  for (long i = 0; i < spawns; i++) {
    pid_t pid;
    int error = posix_spawn(&pid, "/bin/true", NULL, NULL, childArgv, environ);
    BENCH_CHECK(error == 0, "posix_spawn(/bin/true) failed: %s", strerror(error));
    int status = 0;
    BENCH_CHECK(waitpid(pid, &status, 0) == pid, "waitpid failed");
    BENCH_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "/bin/true failed: status %d", status);
  }
  double elapsed = bench_now() - start;
  printf("spawns %ld\n", spawns);
  printf("spawn_us %.1f\n", elapsed / (double)spawns * 1e6);
  return 0;
}
