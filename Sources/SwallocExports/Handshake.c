// Handshake.c: swalloc_version(), and the answer to the `swalloc run` command's handshake, which tells a
// preload that took from one the loader ignored (a setuid or static program, an unloadable file): the
// loader gives no sign of either.
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <unistd.h>

#include "swalloc.h"

/// Whether secure mode is on (the core, ThreadExit.swift).
int swalloc_core_is_secure(void);

void *swalloc_malloc(size_t size);
void swalloc_free(void *pointer);

__attribute__((visibility("default"))) const char *swalloc_version(void) { return SWALLOC_VERSION; }

/// Appends the NUL-terminated `text` to `buffer` at `*count`, within `capacity`.
static void append(char *buffer, size_t capacity, size_t *count, const char *text) {
  while (*text != 0 && *count < capacity) buffer[(*count)++] = *text++;
}

/// Appends `value` in decimal.
static void append_decimal(char *buffer, size_t capacity, size_t *count, unsigned long value) {
  char digits[24];
  size_t length = 0;
  do {
    digits[length++] = (char)('0' + value % 10);
    value /= 10;
  } while (value != 0);
  while (length > 0 && *count < capacity) buffer[(*count)++] = digits[--length];
}

/// With SWALLOC_RUN_HANDSHAKE=<path of a FIFO> in the environment, writes one line to the FIFO:
/// `swalloc-handshake version=<V> pid=<P> mode=<default|secure>`. `swalloc run` reads it and keeps the
/// line whose pid is its child's (the variable is inherited, so descendants answer too, with their pids).
/// A constructor, so environ is set; glibc passes (argc, argv, envp) to ELF constructors. Nothing here
/// allocates except one malloc/free pair, which makes sure the mode is decided before it is reported.
/// The FIFO is opened non-blocking: with no reader (the command is gone), open fails and nothing happens.
__attribute__((constructor)) static void swalloc_answer_handshake(int argc, char **argv, char **envp) {
  (void)argc;
  (void)argv;
  if (envp == NULL) return;
  static const char prefix[] = "SWALLOC_RUN_HANDSHAKE=";
  const char *path = NULL;
  for (char **entry = envp; *entry != NULL && path == NULL; entry++) {
    size_t index = 0;
    while (index < sizeof prefix - 1 && (*entry)[index] == prefix[index]) index++;
    if (index == sizeof prefix - 1) path = *entry + index;
  }
  if (path == NULL || *path == 0) return;
  int savedErrno = errno;
  swalloc_free(swalloc_malloc(16));
  int fd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd >= 0) {
    char line[128];
    size_t count = 0;
    append(line, sizeof line, &count, "swalloc-handshake version=");
    append(line, sizeof line, &count, SWALLOC_VERSION);
    append(line, sizeof line, &count, " pid=");
    append_decimal(line, sizeof line, &count, (unsigned long)getpid());
    // The core says (the entry pointers do not: guarded sampling or profiling wrap them).
    append(line, sizeof line, &count, swalloc_core_is_secure() ? " mode=secure\n" : " mode=default\n");
    // One write under PIPE_BUF bytes: atomic, never interleaved with a descendant's line.
    ssize_t written = write(fd, line, count);
    (void)written;
    close(fd);
  }
  errno = savedErrno;
}
