// profile_tables.c: whether the unwinder's reads of libc's unwind tables map libc's file pages into the
// process. Two threads and the main thread allocate (every allocation sampled under SWALLOC_PROFILE_SAMPLE=1:
// stacks through libc's start_thread, clone3 and __libc_start_call_main), then the program prints how many
// pages of libc's read-only segment from its .eh_frame_hdr on are mapped in its page table
// (`unwind-table-pages N`, from /proc/self/pagemap): the unwinder reads them with pread, so the count is the
// one of a run without profiling (each page read through the mapping mapped up to 16 pages around it).
//
// `profile_tables sizes`: one block of each power of two from 16 B to 4 KiB, allocated and freed three times,
// then the process's anonymous memory (`anonymous-kb N`, from /proc/self/smaps_rollup): what sampling a few
// blocks of many sizes costs in pages (their slots, the slots' records, the stack table, the rule cache).
#include "fixture.h"
#include <fcntl.h>
#include <link.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

static FIXTURE_SITE void *work(void *argument) {
  void *blocks[64];
  for (int round = 0; round < 50; round++) {
    for (int index = 0; index < 64; index++) {
      blocks[index] = malloc((size_t)(16 + 16 * index));
      if (blocks[index] == NULL) fixtureFail("malloc");
      memset(blocks[index], round, 16);
    }
    for (int index = 0; index < 64; index++) free(blocks[index]);
  }
  return argument;
}

typedef struct range {
  uintptr_t start, end;
} range;

/// libc's .eh_frame_hdr to the end of the loaded segment that holds it.
static int findTables(struct dl_phdr_info *info, size_t size, void *argument) {
  (void)size;
  range *tables = argument;
  if (info->dlpi_name == NULL || strstr(info->dlpi_name, "/libc.so") == NULL) return 0;
  uintptr_t header = 0;
  for (int index = 0; index < info->dlpi_phnum; index++) {
    if (info->dlpi_phdr[index].p_type == PT_GNU_EH_FRAME) header = info->dlpi_addr + info->dlpi_phdr[index].p_vaddr;
  }
  for (int index = 0; index < info->dlpi_phnum && header != 0; index++) {
    const ElfW(Phdr) *segment = &info->dlpi_phdr[index];
    uintptr_t start = info->dlpi_addr + segment->p_vaddr;
    if (segment->p_type == PT_LOAD && header >= start && header < start + segment->p_filesz) {
      tables->start = header & ~(uintptr_t)4095;
      tables->end = (start + segment->p_filesz + 4095) & ~(uintptr_t)4095;
      return 1;
    }
  }
  return 0;
}

static FIXTURE_SITE void *allocateSizes(size_t size) {
  void *block = malloc(size);
  if (block == NULL) fixtureFail("malloc");
  memset(block, 1, size);
  return block;
}

static int sizes(void) {
  for (int round = 0; round < 3; round++) {
    void *blocks[9];
    for (int index = 0; index < 9; index++) blocks[index] = allocateSizes((size_t)16 << index);
    for (int index = 0; index < 9; index++) free(blocks[index]);
  }
  int descriptor = open("/proc/self/smaps_rollup", O_RDONLY);
  if (descriptor < 0) fixtureFail("/proc/self/smaps_rollup");
  char text[4096];
  ssize_t length = read(descriptor, text, sizeof text - 1);
  close(descriptor);
  if (length <= 0) fixtureFail("smaps_rollup read");
  text[length] = 0;
  const char *anonymous = strstr(text, "\nAnonymous:");
  if (anonymous == NULL) fixtureFail("no Anonymous line");
  printf("anonymous-kb %ld\n", strtol(anonymous + 11, NULL, 10));
  return 0;
}

int main(int argc, char **argv) {
  fixtureReportSwalloc();
  if (argc > 1 && strcmp(argv[1], "sizes") == 0) return sizes();
  pthread_t threads[2];
  for (int index = 0; index < 2; index++) {
    if (pthread_create(&threads[index], NULL, work, NULL) != 0) fixtureFail("pthread_create");
  }
  for (int index = 0; index < 2; index++) pthread_join(threads[index], NULL);
  work(NULL);
  range tables = {0, 0};
  if (!dl_iterate_phdr(findTables, &tables)) fixtureFail("libc's .eh_frame_hdr not found");
  int descriptor = open("/proc/self/pagemap", O_RDONLY);
  if (descriptor < 0) fixtureFail("/proc/self/pagemap");
  long mapped = 0;
  for (uintptr_t page = tables.start; page < tables.end; page += 4096) {
    uint64_t entry = 0;
    if (pread(descriptor, &entry, 8, (off_t)(page / 4096 * 8)) != 8) fixtureFail("pagemap read");
    if (entry >> 63) mapped++;
  }
  close(descriptor);
  printf("unwind-table-pages %ld of %ld\n", mapped, (long)((tables.end - tables.start) / 4096));
  return 0;
}
