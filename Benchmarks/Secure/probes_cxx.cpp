// probes_cxx: the C++ heap-misuse probes of GrapheneOS hardened_malloc's test/ (sized and aligned delete), written
// here from what each one does, under the same names. Same interface as probes.c: `probes_cxx NAME`,
// `probes_cxx --list` ("NAME EXPECTED SOURCE"), `probes_cxx --expect NAME`. Expectations as in probes.c, from
// hardened_malloc's test/test_smc.py. hardened_malloc has no probe for a new/delete[] mismatch, so none is here.
//
// Build at -O0 with sized deallocation: c++ -std=c++17 -fsized-deallocation -O0 -g -o probes_cxx probes_cxx.cpp
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <new>

namespace {

struct ThirtyTwoBytes {
  std::uint64_t a, b, c, d;
};

// `new char` (1 byte) deleted through a pointer to a 32-byte type: GCC calls operator delete(void *, 32).
int delete_type_size_mismatch() {
  void *block = new char;
  ThirtyTwoBytes *wrong = static_cast<ThirtyTwoBytes *>(block);
  delete wrong;
  return 0;
}

struct alignas(64) SmallAligned {
  char bytes[24];
};  // sizeof 64

struct alignas(8192) LargeAligned {
  char bytes[9000];
};  // sizeof 16384

int aligned_sized_delete_small() {
  SmallAligned *p = new SmallAligned;
  operator delete(p, sizeof(SmallAligned), std::align_val_t(alignof(SmallAligned)));
  return 0;
}

int invalid_aligned_sized_delete_small() {
  SmallAligned *p = new SmallAligned;
  operator delete(p, sizeof(SmallAligned) + 64, std::align_val_t(alignof(SmallAligned)));  // size too big
  return 0;
}

int aligned_sized_delete_large() {
  LargeAligned *p = new LargeAligned;
  operator delete(p, sizeof(LargeAligned), std::align_val_t(alignof(LargeAligned)));
  return 0;
}

int invalid_aligned_sized_delete_large() {
  LargeAligned *p = new LargeAligned;
  operator delete(p, sizeof(LargeAligned) - 10, std::align_val_t(alignof(LargeAligned)));  // size too small
  return 0;
}

struct Probe {
  const char *name;
  int (*run)();
  const char *expected;
  const char *source;
};

const Probe probes[] = {
    {"delete_type_size_mismatch", delete_type_size_mismatch, "caught", "suite"},
    {"aligned_sized_delete_small", aligned_sized_delete_small, "valid", "suite"},
    {"invalid_aligned_sized_delete_small", invalid_aligned_sized_delete_small, "caught", "suite"},
    {"aligned_sized_delete_large", aligned_sized_delete_large, "valid", "suite"},
    {"invalid_aligned_sized_delete_large", invalid_aligned_sized_delete_large, "caught", "suite"},
};

}  // namespace

int main(int argc, char **argv) {
  if (argc == 2 && std::strcmp(argv[1], "--list") == 0) {
    for (const Probe &probe : probes) std::printf("%s %s %s\n", probe.name, probe.expected, probe.source);
    return 0;
  }
  if (argc == 3 && std::strcmp(argv[1], "--expect") == 0) return 0;  // no value probes here
  if (argc != 2) {
    std::fprintf(stderr, "usage: probes_cxx NAME | --list | --expect NAME\n");
    return 2;
  }
  for (const Probe &probe : probes)
    if (std::strcmp(argv[1], probe.name) == 0) return probe.run();
  std::fprintf(stderr, "probes_cxx: no probe %s\n", argv[1]);
  return 2;
}
