// Heap misuse that secure mode (SWALLOC_SECURE=1) catches deterministically beyond guarded sampling, in C++:
// reads and writes through new char[0]'s pointer, a delete through a pointer of the wrong type, delete of
// an array from new[] and delete[] of an object from new, overflows and underflows of 1 and 32 bytes,
// writes after delete. Each mode must stop the process; "not stopped"
// means it did not. `valid` does everything right (no false positive).
#pragma GCC diagnostic ignored "-Wpragmas"
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#pragma GCC diagnostic ignored "-Warray-bounds"

#define MISUSE_ALLOCATE(size) (new char[size])
#define MISUSE_RELEASE(p) delete[] (p)
#define MISUSE_OVERFLOW_BYTE 'x'
#include "misuse.h"

#include <memory>
#include <string>
#include <vector>

struct Wide {
  uint64_t a, b, c, d;
};

/// A type with a destructor: new[] stores the element count before the array.
struct Counted {
  ~Counted() { sink += 1; }
  long values[3];
  static volatile int sink;
};
volatile int Counted::sink = 0;

/// A type with a destructor, of a size class the C++ runtime does not use.
struct Rare {
  ~Rare() { Counted::sink += 1; }
  long values[43];
};

static volatile char sinkByte;

struct Node {
  Node *next;
  long payload[10];
};

/// Deletes an object, writes into it through the dangling pointer (payload[index]: bytes 8 + 8 * index on of
/// its 96-byte secure block, every one of which SWALLOC_SECURE=full fills and checks), then makes objects of
/// its type until its memory is handed out again.
static void writeAfterDelete(int index, long value) {
  Node *volatile node = new Node();
  delete node;
  *(volatile long *)launder((char *)&node->payload[index]) = value;
  for (int i = 0; i < 2000; i++) escape(new Node());
}

int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "";
  fixtureReportSwalloc();
  if (strcmp(mode, "zero-read") == 0) {
    char *p = new char[0];
    sinkByte = *(volatile char *)p;
  } else if (strcmp(mode, "zero-write") == 0) {
    char *p = new char[0];
    fixtureAddress(p);
    *(volatile char *)p = 1;
  } else if (strcmp(mode, "delete-size") == 0) {
    void *p = new char;
    fixtureAddress(p);
    delete static_cast<Wide *>(p);
  } else if (strcmp(mode, "delete-size-large") == 0) {
    // A sized delete 16 bytes short of a 20 000-byte block: the same size class, so only a check of the exact
    // size (the seal's trailer records it: blocks above 1 KiB at SWALLOC_SECURE=1, every block at full) sees it.
    char *p = new char[20000];
    fixtureAddress(p);
    ::operator delete(p, static_cast<size_t>(20000 - 16));
  } else if (strcmp(mode, "aligned-delete-size") == 0) {
    struct alignas(64) Line {
      char bytes[64];
    };
    Line *line = new Line;
    fixtureAddress(line);
    ::operator delete(line, sizeof(Line) * 4, std::align_val_t(alignof(Line)));
  } else if (strcmp(mode, "array-deleted") == 0) {
    Counted *volatile array = new Counted[4];
    delete array;
  } else if (strcmp(mode, "object-deleted-as-array") == 0) {
    // Through a volatile pointer: clang sees the mismatch as undefined behaviour and drops the branch.
    // C++ reads the element count from the 8 bytes before the object: the end of the block before it, in
    // secure mode zero while that block is free (a block of a class nothing else here uses: free).
    Rare *volatile object = new Rare;
    object->values[0] = 0;
    delete[] object;
  } else if (strcmp(mode, "overflow-1-small") == 0) {
    overflow(24, 1);
  } else if (strcmp(mode, "overflow-32-small") == 0) {
    overflow(260, 32);
  } else if (strcmp(mode, "overflow-1-medium") == 0) {
    overflow(20000, 1);
  } else if (strcmp(mode, "overflow-32-large") == 0) {
    overflow(300000, 32);
  } else if (strcmp(mode, "underflow-1") == 0) {
    underflow(40, 1);
  } else if (strcmp(mode, "underflow-32") == 0) {
    underflow(40, 32);
  } else if (strcmp(mode, "write-after-free") == 0) {
    writeAfterDelete(5, 0x4141);
  } else if (strcmp(mode, "zero-after-free") == 0) {
    writeAfterDelete(5, 0);
  } else if (strcmp(mode, "write-after-free-anywhere") == 0) {
    // payload[2]: bytes 24 to 31, none of the three words the fill had before checking every byte.
    writeAfterDelete(2, 0x4141);
  } else if (strcmp(mode, "valid") == 0) {
    std::vector<std::unique_ptr<Wide>> wides;
    for (int i = 0; i < 1000; i++) wides.push_back(std::make_unique<Wide>());
    std::vector<std::string> strings;
    for (int i = 0; i < 1000; i++) strings.push_back(std::string(static_cast<size_t>(i), 'x'));
    std::vector<Counted *> arrays;
    for (size_t i = 1; i < 100; i++) arrays.push_back(new Counted[i]);
    for (Counted *array : arrays) delete[] array;
    std::vector<Counted *> objects;
    for (int i = 0; i < 100; i++) objects.push_back(new Counted);
    for (Counted *object : objects) delete object;
    delete[] new char[0];
    struct alignas(64) Aligned {
      char bytes[200];
    };
    for (int i = 0; i < 100; i++) delete new Aligned;
    // Aligned sized deletes (secure mode checks the size and alignment) at several alignments and sizes.
    struct alignas(4096) Page {
      char bytes[9000];
    };
    struct alignas(128) Line {
      char bytes[40];
    };
    for (int i = 0; i < 20; i++) delete new Page;
    for (size_t count = 1; count < 5000; count = count * 3 + 1) delete[] new Line[count];
    for (size_t count = 1; count < 100; count = count * 3 + 1) delete[] new Page[count];
    for (size_t size = 1; size < 3000000; size = size * 3 + 1) delete[] new char[size];
    // Sized deletes of objects above 1 KiB (sealed at SWALLOC_SECURE=1 too: the size is checked exactly),
    // aligned ones above 1 KiB, and containers that grow through every size range.
    struct Record {
      char bytes[5000];
    };
    struct alignas(2048) Block {
      char bytes[10];
    };
    std::vector<std::unique_ptr<Record>> records;
    for (int i = 0; i < 100; i++) records.push_back(std::make_unique<Record>());
    records.clear();
    for (int i = 0; i < 20; i++) delete new Block;
    std::vector<char> growing;
    for (int i = 0; i < 600000; i++) growing.push_back(static_cast<char>(i));
    std::string text;
    for (int i = 0; i < 100000; i++) text += 'y';
    printf("valid ok\n");
    return 0;
  } else {
    fixtureFail("unknown mode %s", mode);
  }
  printf("not stopped\n");
  return 0;
}
