// measure: the driver's launcher, not a workload. Runs one command and writes its wall time and rusage.
// The driver cannot read peak RSS from its own children: a process made by fork or posix_spawn starts with
// the parent's RSS high-water mark, and the kernel keeps that mark across exec, so ru_maxrss of every child
// would read at least the driver's ~27 MB. This small process (linked statically when possible) forks the
// command instead, so the floor is its own few hundred KiB. LD_PRELOAD is set in the command only.
// Usage: measure RESULT_FILE PRELOAD|- PROGRAM ARGS...
// RESULT_FILE gets one line: "exited CODE|signaled SIGNAL wall_ns user_us system_us maxrss_kib minflt".
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: measure RESULT_FILE PRELOAD|- PROGRAM ARGS...\n");
    return 2;
  }
  const char *resultPath = argv[1], *preload = argv[2];
  long long start = now_ns();
  pid_t pid = fork();
  if (pid < 0) {
    perror("measure: fork");
    return 2;
  }
  if (pid == 0) {
    if (strcmp(preload, "-") != 0) setenv("LD_PRELOAD", preload, 1);
    execvp(argv[3], &argv[3]);
    fprintf(stderr, "measure: cannot run %s: %s\n", argv[3], strerror(errno));
    _exit(127);
  }
  int status = 0;
  struct rusage usage;
  while (wait4(pid, &status, 0, &usage) < 0) {
    if (errno != EINTR) {
      perror("measure: wait4");
      return 2;
    }
  }
  long long wall = now_ns() - start;
  FILE *result = fopen(resultPath, "w");
  if (result == NULL) {
    perror("measure: result file");
    return 2;
  }
  fprintf(result, "%s %d %lld %lld %lld %ld %ld\n", WIFSIGNALED(status) ? "signaled" : "exited",
          WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status), wall,
          (long long)usage.ru_utime.tv_sec * 1000000LL + usage.ru_utime.tv_usec,
          (long long)usage.ru_stime.tv_sec * 1000000LL + usage.ru_stime.tv_usec, usage.ru_maxrss, usage.ru_minflt);
  return fclose(result) == 0 ? 0 : 2;
}
