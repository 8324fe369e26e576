// profile_program.c: the heap profiler's behaviours, one per mode (argv[1]); each allocation site is a named,
// non-inlined function, so that the profile names it. Profiles go to SWALLOC_PROFILE_PREFIX.<pid>[.<n>].pb.gz.
//   fork     parent_site allocates, then a child allocates at child_site and exits normally: two files
//   threads  four threads allocate at thread_site (freeing a third of it), main joins them
//   dlopen   plugin_allocate in argv[2] (a dlopen'ed library) allocates
//   dump     dump_site allocates, swalloc_profile_dump(argv[2]); more at dump_site; swalloc_profile_dump(argv[3])
//   signal   signal_site allocates, then raises SWALLOC_PROFILE_SIGNAL (USR2 in the test) and goes on
//   term     term_site allocates, then sends itself SIGTERM (the profile signal in the test): it dies of it
//   leaks    leak_site keeps 64 MiB, transient_site frees what it allocates
//   realloc  realloc_site grows 2000 buffers from 128 B to 64 KiB by doubling (every step a new block) and
//            keeps them: 262 016 000 bytes allocated, 131 072 000 live
//   steps    step_site starts 64 buffers of 1 MiB and grows each by 64 bytes 2000 times (in place, but for a
//            move or two), and 4096 buffers of 1000 bytes grown by 2 bytes 12 times (in place: 1024-byte
//            class); keeps them: 64 x 1 176 576 + 4096 x 1024 bytes live at exit
// Prints `profile <mode> done` (and `child pid=<pid>` for fork) on stdout.
#include "fixture.h"
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

void **parent_site(size_t count);
void **child_site(size_t count);
void *thread_site(void *argument);
void **dump_site(size_t count);
void **signal_site(size_t count);
void **term_site(size_t count);
void **leak_site(size_t count);
void transient_site(size_t count);
void **realloc_site(size_t count);
void **step_site(void);

/// `count` blocks of 1000 bytes, kept.
static void **keep(size_t count) {
  void **blocks = calloc(count, sizeof(void *));
  if (!blocks) fixtureFail("calloc");
  return blocks;
}

#define SITE(name)                                                         \
  FIXTURE_SITE void **name(size_t count) {                       \
    void **blocks = keep(count);                                           \
    for (size_t index = 0; index < count; index++) {                       \
      blocks[index] = malloc(1000);                                        \
      if (!blocks[index]) fixtureFail("malloc");                           \
      memset(blocks[index], 1, 8);                                         \
    }                                                                      \
    return blocks;                                                         \
  }

SITE(parent_site)
SITE(child_site)
SITE(dump_site)
SITE(signal_site)
SITE(term_site)
SITE(leak_site)

FIXTURE_SITE void transient_site(size_t count) {
  for (size_t index = 0; index < count; index++) {
    void *block = malloc(1000);
    if (!block) fixtureFail("malloc");
    memset(block, 1, 8);
    free(block);
  }
}

FIXTURE_SITE void **realloc_site(size_t count) {
  void **blocks = keep(count);
  for (size_t index = 0; index < count; index++) {
    unsigned char *block = NULL;
    for (size_t size = 128; size <= 65536; size *= 2) {
      unsigned char *grown = realloc(block, size);
      if (!grown) fixtureFail("realloc");
      grown[size - 1] = (unsigned char)size;
      if (block && grown[size / 2 - 1] != (unsigned char)(size / 2)) fixtureFail("realloc lost the contents");
      block = grown;
    }
    blocks[index] = block;
  }
  return blocks;
}

FIXTURE_SITE void **step_site(void) {
  void **blocks = keep(64 + 4096);
  for (size_t index = 0; index < 64 + 4096; index++) {
    size_t size = index < 64 ? 1 << 20 : 1000;
    size_t step = index < 64 ? 64 : 2;
    size_t steps = index < 64 ? 2000 : 12;
    unsigned char *block = malloc(size);
    if (!block) fixtureFail("malloc");
    block[size - 1] = 1;
    for (size_t count = 0; count < steps; count++) {
      size += step;
      block = realloc(block, size);
      if (!block) fixtureFail("realloc");
      block[size - 1] = 1;
    }
    blocks[index] = block;
  }
  return blocks;
}

FIXTURE_SITE void *thread_site(void *argument) {
  (void)argument;
  for (int index = 0; index < 30000; index++) {
    void *block = malloc(1000);
    if (!block) fixtureFail("malloc");
    memset(block, 2, 8);
    if (index % 3 == 0) free(block);
  }
  return NULL;
}

int main(int argc, char **argv) {
  if (argc < 2) fixtureFail("usage: profile_program <mode> [...]");
  const char *mode = argv[1];
  if (!fixtureReportSwalloc()) return 1;
  int (*dump)(const char *) = (int (*)(const char *))dlsym(RTLD_DEFAULT, "swalloc_profile_dump");
  if (!dump) fixtureFail("no swalloc_profile_dump");
  sigset_t used;
  sigemptyset(&used);
  sigaddset(&used, SIGUSR2);
  sigaddset(&used, SIGTERM);
  sigprocmask(SIG_UNBLOCK, &used, NULL);

  if (strcmp(mode, "fork") == 0) {
    parent_site(20000);
    pid_t child = fork();
    if (child < 0) fixtureFail("fork");
    if (child == 0) {
      child_site(40000);
      printf("child pid=%d\n", (int)getpid());
      fflush(stdout);
      exit(0);
    }
    int status;
    if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 0) fixtureFail("child");
  } else if (strcmp(mode, "threads") == 0) {
    pthread_t threads[4];
    for (int index = 0; index < 4; index++) {
      if (pthread_create(&threads[index], NULL, thread_site, NULL) != 0) fixtureFail("pthread_create");
    }
    for (int index = 0; index < 4; index++) pthread_join(threads[index], NULL);
  } else if (strcmp(mode, "dlopen") == 0) {
    if (argc < 3) fixtureFail("dlopen needs a library");
    void *library = dlopen(argv[2], RTLD_NOW);
    if (!library) fixtureFail("dlopen: %s", dlerror());
    void **(*allocate)(size_t, size_t) = (void **(*)(size_t, size_t))dlsym(library, "plugin_allocate");
    if (!allocate || !allocate(30000, 1000)) fixtureFail("plugin_allocate");
  } else if (strcmp(mode, "dump") == 0) {
    if (argc < 4) fixtureFail("dump needs two paths");
    dump_site(20000);
    if (dump(argv[2]) != 0) fixtureFail("first dump: %s", strerror(errno));
    dump_site(20000);
    if (dump(argv[3]) != 0) fixtureFail("second dump: %s", strerror(errno));
    if (dump("/nonexistent-directory/profile.pb.gz") == 0 || errno != ENOENT) fixtureFail("a bad path must fail");
  } else if (strcmp(mode, "signal") == 0) {
    signal_site(20000);
    raise(SIGUSR2);
  } else if (strcmp(mode, "term") == 0) {
    term_site(20000);
    printf("profile term raising\n");
    fflush(stdout);
    kill(getpid(), SIGTERM);
    sleep(5);
    fixtureFail("SIGTERM did not end the process");
  } else if (strcmp(mode, "realloc") == 0) {
    realloc_site(2000);
  } else if (strcmp(mode, "steps") == 0) {
    step_site();
  } else if (strcmp(mode, "leaks") == 0) {
    leak_site(64 * 1024);
    transient_site(64 * 1024);
  } else {
    fixtureFail("unknown mode %s", mode);
  }
  printf("profile %s done\n", mode);
  return 0;
}
