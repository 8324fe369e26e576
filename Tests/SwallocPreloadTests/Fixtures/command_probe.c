// command_probe.c: a program for the swalloc command's tests. Allocates and prints "probe ok", copies stdin
// to stdout when its second argument is "stdin", then exits with the status its first argument gives.
// Built dynamic (the preload takes) and static (it cannot).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
  char *line = malloc(64);
  if (line == NULL) return 99;
  snprintf(line, 64, "probe ok");
  puts(line);
  free(line);
  if (argc > 2 && strcmp(argv[2], "stdin") == 0) {
    int c;
    while ((c = getchar()) != EOF) putchar(c);
  }
  fflush(stdout);
  return argc > 1 ? atoi(argv[1]) : 0;
}
