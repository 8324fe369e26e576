// C++ fixture: every operator new/delete flavour (plain, array, sized, aligned, nothrow) across threads that
// trade objects through shared atomic slots, standard containers moved between threads, and the failure paths:
// an impossible size throws std::bad_alloc after calling the new-handler, and nothrow new returns nullptr.
#include "fixture.h"

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr int threadCount = 8;
constexpr int opsPerThread = 20000;
constexpr size_t slotCount = 512;

/// A heap object that can check its own contents; `delete` through the base calls the sized (and, for
/// over-aligned types, aligned) operator delete of the dynamic type.
struct Item {
  explicit Item(uint64_t tag) : tag(tag) {}
  virtual ~Item() = default;
  virtual void verify() const = 0;
  uint64_t tag;
};

template <size_t byteCount> struct PlainItem final : Item {
  explicit PlainItem(uint64_t tag) : Item(tag) { fixtureFill(bytes, byteCount, tag); }
  void verify() const override { fixtureVerify(bytes, byteCount, tag, "PlainItem"); }
  unsigned char bytes[byteCount];
};

template <size_t alignment> struct alignas(alignment) AlignedItem final : Item {
  explicit AlignedItem(uint64_t tag) : Item(tag) {
    FIXTURE_CHECK(fixtureIsAligned(this, alignment), "new of an alignas(%zu) type returned %p", alignment,
                  (void *)this);
    fixtureFill(bytes, sizeof bytes, tag);
  }
  void verify() const override {
    FIXTURE_CHECK(fixtureIsAligned(this, alignment), "alignas(%zu) object moved to %p", alignment,
                  (const void *)this);
    fixtureVerify(bytes, sizeof bytes, tag, "AlignedItem");
  }
  unsigned char bytes[alignment + 8];
};

/// Owns a new[] array of runtime size.
struct ArrayItem final : Item {
  ArrayItem(uint64_t tag, size_t byteCount) : Item(tag), byteCount(byteCount), bytes(new unsigned char[byteCount]) {
    fixtureFill(bytes, byteCount, tag);
  }
  ~ArrayItem() override { delete[] bytes; }
  void verify() const override { fixtureVerify(bytes, byteCount, tag, "ArrayItem"); }
  size_t byteCount;
  unsigned char *bytes;
};

/// Owns raw storage from `operator new(size, align_val_t)`, released with the sized aligned delete.
struct RawAlignedItem final : Item {
  RawAlignedItem(uint64_t tag, size_t byteCount, size_t alignment)
      : Item(tag), byteCount(byteCount), alignment(alignment),
        storage(::operator new(byteCount, std::align_val_t(alignment))) {
    FIXTURE_CHECK(fixtureIsAligned(storage, alignment), "operator new(%zu, align %zu) returned %p", byteCount,
                  alignment, storage);
    fixtureFill(storage, byteCount, tag);
  }
  ~RawAlignedItem() override { ::operator delete(storage, byteCount, std::align_val_t(alignment)); }
  void verify() const override { fixtureVerify(storage, byteCount, tag, "RawAlignedItem"); }
  size_t byteCount;
  size_t alignment;
  void *storage;
};

/// Owns nothrow new[] storage.
struct NothrowItem final : Item {
  NothrowItem(uint64_t tag, size_t byteCount)
      : Item(tag), byteCount(byteCount), bytes(new (std::nothrow) unsigned char[byteCount]) {
    FIXTURE_CHECK(bytes != nullptr, "nothrow new[%zu] returned nullptr", byteCount);
    fixtureFill(bytes, byteCount, tag);
  }
  ~NothrowItem() override { delete[] bytes; }
  void verify() const override { fixtureVerify(bytes, byteCount, tag, "NothrowItem"); }
  size_t byteCount;
  unsigned char *bytes;
};

Item *makeItem(uint64_t *random) {
  uint64_t r = fixtureRandom(random);
  uint64_t tag = fixtureRandom(random);
  size_t byteCount = 1 + (r >> 16) % ((r >> 8) % 8 == 0 ? 65536 : 512);
  switch (r % 9) {
  case 0: return new PlainItem<8>(tag);
  case 1: return new PlainItem<200>(tag);
  case 2: return new PlainItem<3000>(tag);
  case 3: return new AlignedItem<64>(tag);
  case 4: return new AlignedItem<4096>(tag);
  case 5: return new ArrayItem(tag, byteCount);
  case 6: return new RawAlignedItem(tag, byteCount, size_t(1) << (4 + (r >> 40) % 10));
  case 7: return new NothrowItem(tag, byteCount);
  default: {
    // The explicit sized forms, as a compiler emits them for `delete` of a complete type.
    void *plain = ::operator new(byteCount);
    fixtureFill(plain, byteCount, tag);
    fixtureVerify(plain, byteCount, tag, "operator new");
    ::operator delete(plain, byteCount);
    void *array = ::operator new[](byteCount);
    fixtureFill(array, byteCount, tag);
    ::operator delete[](array, byteCount);
    return new PlainItem<48>(tag);
  }
  }
}

std::atomic<Item *> slots[slotCount];

/// Strings travel from thread to thread through this queue, so their buffers are freed by another thread.
std::mutex queueLock;
std::deque<std::string> queue;

void runWorker(int index) {
  uint64_t random = 0x9e3779b97f4a7c15ull + uint64_t(index) * 0x100000001b3ull;
  std::map<int, std::string> map;
  std::vector<std::unique_ptr<Item>> kept;
  for (int op = 0; op < opsPerThread; op++) {
    Item *item = makeItem(&random);
    Item *previous = slots[fixtureRandom(&random) % slotCount].exchange(item, std::memory_order_acq_rel);
    if (previous != nullptr) {
      previous->verify();
      delete previous;
    }
    if (op % 16 == 0) {
      std::string text(size_t(1 + fixtureRandom(&random) % 300), char('a' + index));
      map[int(fixtureRandom(&random) % 1000)] = text;
      std::lock_guard<std::mutex> guard(queueLock);
      queue.push_back(std::move(text));
      if (queue.size() > 64) queue.pop_front();
    }
    if (op % 64 == 0) {
      kept.emplace_back(makeItem(&random));
      if (kept.size() > 32) kept.erase(kept.begin(), kept.begin() + 16);
    }
  }
  for (const auto &item : kept) item->verify();
}

/// Counts calls, then uninstalls itself so that the retry in operator new throws.
int newHandlerCallCount = 0;
void countingNewHandler() {
  newHandlerCallCount++;
  std::set_new_handler(nullptr);
}

template <typename Allocate> void expectBadAlloc(const char *what, Allocate allocate) {
  try {
    void *pointer = allocate();
    fixtureFail("%s returned %p instead of throwing std::bad_alloc", what, pointer);
  } catch (const std::bad_alloc &) {
  }
}

void checkFailurePaths() {
  // volatile: the compiler must not see (and warn about, or fold) the impossible sizes.
  volatile size_t impossible = SIZE_MAX / 2 + 1;
  volatile size_t nearlyAll = SIZE_MAX - 4096;

  std::set_new_handler(countingNewHandler);
  expectBadAlloc("operator new(SIZE_MAX / 2 + 1)", [&] { return ::operator new(impossible); });
  FIXTURE_CHECK(newHandlerCallCount == 1, "the new-handler ran %d times, expected 1", newHandlerCallCount);

  expectBadAlloc("operator new(SIZE_MAX - 4096)", [&] { return ::operator new(nearlyAll); });
  expectBadAlloc("operator new[](SIZE_MAX / 2 + 1)", [&] { return ::operator new[](impossible); });
  expectBadAlloc("new char[SIZE_MAX - 4096]", [&] { return static_cast<void *>(new char[nearlyAll]); });
  expectBadAlloc("aligned operator new", [&] { return ::operator new(impossible, std::align_val_t(64)); });
  expectBadAlloc("aligned operator new[]", [&] { return ::operator new[](nearlyAll, std::align_val_t(4096)); });

  FIXTURE_CHECK(::operator new(impossible, std::nothrow) == nullptr, "nothrow operator new did not return nullptr");
  FIXTURE_CHECK(::operator new[](nearlyAll, std::nothrow) == nullptr,
                "nothrow operator new[] did not return nullptr");
  // Through a volatile: clang may otherwise elide a new-expression whose result does not escape and assume
  // it succeeded ([expr.new]: the allocation call may be omitted), which says nothing about the allocator.
  char *volatile nothrowArray = new (std::nothrow) char[nearlyAll];
  FIXTURE_CHECK(nothrowArray == nullptr, "nothrow new char[] did not return nullptr");
  FIXTURE_CHECK(::operator new(impossible, std::align_val_t(256), std::nothrow) == nullptr,
                "nothrow aligned operator new did not return nullptr");
  FIXTURE_CHECK(::operator new[](impossible, std::align_val_t(64), std::nothrow) == nullptr,
                "nothrow aligned operator new[] did not return nullptr");

  // The nothrow forms still succeed for ordinary sizes, and their deletes accept nothrow_t.
  void *small = ::operator new(100, std::nothrow);
  FIXTURE_CHECK(small != nullptr && fixtureIsAligned(small, 16), "nothrow operator new(100) returned %p", small);
  ::operator delete(small, std::nothrow);
  void *aligned = ::operator new[](1000, std::align_val_t(1 << 16), std::nothrow);
  FIXTURE_CHECK(aligned != nullptr && fixtureIsAligned(aligned, 1 << 16), "nothrow aligned new[] returned %p",
                aligned);
  ::operator delete[](aligned, std::align_val_t(1 << 16), std::nothrow);
  void *zero = ::operator new(0);
  FIXTURE_CHECK(zero != nullptr, "operator new(0) returned nullptr");
  ::operator delete(zero);
}

} // namespace

int main(int argc, char **argv) {
  fixtureReportSwalloc();
  // `--no-failure-paths` lets the fixture run under valgrind, which aborts where operator new should throw.
  bool checksFailurePaths = !(argc > 1 && strcmp(argv[1], "--no-failure-paths") == 0);
  if (checksFailurePaths) checkFailurePaths();
  std::vector<std::thread> threads;
  for (int i = 0; i < threadCount; i++) threads.emplace_back(runWorker, i);
  for (auto &thread : threads) thread.join();
  for (auto &slot : slots) {
    if (Item *item = slot.load()) {
      item->verify();
      delete item;
    }
  }
  FIXTURE_CHECK(queue.size() <= 64, "the string queue grew to %zu", queue.size());
  for (const auto &text : queue) FIXTURE_CHECK(!text.empty(), "an empty string arrived");
  printf("cxx ok: %d threads, %d objects each, failure paths %s\n", threadCount, opsPerThread,
         checksFailurePaths ? "checked" : "skipped");
  return 0;
}
