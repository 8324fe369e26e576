// walk: the cost of a randomized block order to a program that walks its objects in the order it made
// them. Builds a linked list of 2 million 48-byte nodes in allocation order, then walks it 20 times and
// prints the time of the walks. In address order each next node is the neighbour of the last, which the
// hardware prefetches; in secure mode's random order each one is a separate cache miss.
// Usage: cc -O2 -o walk walk.c && for s in 0 1; do SWALLOC_SECURE=$s LD_PRELOAD=libswalloc.so ./walk; done
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

typedef struct Node {
  struct Node *next;
  long values[5];
} Node;

int main(void) {
  enum { COUNT = 2000000, WALKS = 20 };
  Node *head = NULL, *tail = NULL;
  for (long i = 0; i < COUNT; i++) {
    Node *node = malloc(sizeof(Node));
    if (node == NULL) return 1;
    node->next = NULL;
    node->values[0] = i;
    if (tail != NULL) tail->next = node; else head = node;
    tail = node;
  }
  struct timespec start, end;
  clock_gettime(CLOCK_MONOTONIC, &start);
  long sum = 0;
  for (int walk = 0; walk < WALKS; walk++) {
    for (Node *node = head; node != NULL; node = node->next) sum += node->values[0];
  }
  clock_gettime(CLOCK_MONOTONIC, &end);
  double seconds = (double)(end.tv_sec - start.tv_sec) + (double)(end.tv_nsec - start.tv_nsec) / 1e9;
  printf("sum %ld, %d walks of %d nodes: %.3f s\n", sum, WALKS, COUNT, seconds);
  return sum == (long)WALKS * ((long)COUNT * (COUNT - 1) / 2) ? 0 : 1;
}
