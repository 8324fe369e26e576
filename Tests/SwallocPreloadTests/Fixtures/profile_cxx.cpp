// profile_cxx.cpp: C++ allocation sites (operator new, array new, aligned new) that the heap profile must name.
#include "fixture.h"
#include <memory>
#include <new>
#include <vector>

struct Record {
  char payload[240];
};

struct alignas(256) Aligned {
  char payload[300];
};

FIXTURE_SITE std::vector<std::unique_ptr<Record>> cxx_new_site(size_t count) {
  std::vector<std::unique_ptr<Record>> records;
  records.reserve(count);
  for (size_t index = 0; index < count; index++) records.emplace_back(new Record());
  return records;
}

FIXTURE_SITE std::vector<std::unique_ptr<Aligned>> cxx_aligned_site(size_t count) {
  std::vector<std::unique_ptr<Aligned>> blocks;
  blocks.reserve(count);
  for (size_t index = 0; index < count; index++) blocks.emplace_back(new Aligned());
  return blocks;
}

FIXTURE_SITE char *cxx_array_site(size_t count) {
  char *text = new char[count];
  text[0] = 1;
  return text;
}

int main() {
  fixtureReportSwalloc();
  auto records = cxx_new_site(100000);
  auto blocks = cxx_aligned_site(50000);
  char *arrays[64];
  for (auto &array : arrays) array = cxx_array_site(256 * 1024);
  printf("cxx done %zu %zu %d\n", records.size(), blocks.size(), arrays[3][0]);
  return 0;
}
