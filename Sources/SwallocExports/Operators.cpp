// Operators.cpp: C++ operator new/delete for libswalloc.so, forwarding to the swalloc_ C functions.
// Throwing new calls the new-handler until it succeeds or there is none, then throws std::bad_alloc.
//
// libswalloc.so does not link libstdc++ (loading it would cost every C program start-up time): the two
// libstdc++ functions needed here are weak references, bound when the program has libstdc++ loaded, which
// any program that calls operator new has. Compiled without exceptions: the throw happens inside libstdc++.
#include <cstddef>
#include <new>

extern "C" {
void *swalloc_malloc(std::size_t size);
void swalloc_free(void *pointer);
void *swalloc_aligned_alloc(std::size_t alignment, std::size_t size);
void abort(void);
// The sized deletes' entry (CheckedDelete.c): free's, or secure mode's size check.
extern void (*swalloc_sized_delete_entry)(void *, std::size_t) __attribute__((visibility("hidden")));
// The aligned sized deletes (SecureChecks.swift): in secure mode the size and alignment are checked.
void swalloc_impl_aligned_sized_delete(void *pointer, std::size_t size, std::size_t alignment);
}

namespace std {
new_handler get_new_handler() noexcept __attribute__((weak));
[[noreturn]] void __throw_bad_alloc() __attribute__((weak));
}  // namespace std

namespace {

inline void *allocate(std::size_t size, std::size_t alignment) {
  return alignment <= 16 ? swalloc_malloc(size) : swalloc_aligned_alloc(alignment, size);
}

/// The installed new-handler, or none (also when libstdc++ is not loaded).
inline std::new_handler currentHandler() {
  return std::get_new_handler != nullptr ? std::get_new_handler() : nullptr;
}

void *allocateOrThrow(std::size_t size, std::size_t alignment) {
  for (;;) {
    if (void *pointer = allocate(size, alignment)) return pointer;
    std::new_handler handler = currentHandler();
    if (handler == nullptr) {
      if (std::__throw_bad_alloc != nullptr) std::__throw_bad_alloc();
      abort();
    }
    handler();
  }
}

/// nothrow new: the handler gets its chances too; with none left, null. (A handler that throws ends the
/// program here, since these functions are noexcept and this file has no exception handling.)
void *allocateOrNull(std::size_t size, std::size_t alignment) noexcept {
  for (;;) {
    if (void *pointer = allocate(size, alignment)) return pointer;
    std::new_handler handler = currentHandler();
    if (handler == nullptr) return nullptr;
    handler();
  }
}

}  // namespace

#define SWALLOC_EXPORT __attribute__((visibility("default")))

SWALLOC_EXPORT void *operator new(std::size_t size) { return allocateOrThrow(size, 16); }
SWALLOC_EXPORT void *operator new[](std::size_t size) { return allocateOrThrow(size, 16); }
SWALLOC_EXPORT void *operator new(std::size_t size, const std::nothrow_t &) noexcept {
  return allocateOrNull(size, 16);
}
SWALLOC_EXPORT void *operator new[](std::size_t size, const std::nothrow_t &) noexcept {
  return allocateOrNull(size, 16);
}
SWALLOC_EXPORT void *operator new(std::size_t size, std::align_val_t alignment) {
  return allocateOrThrow(size, static_cast<std::size_t>(alignment));
}
SWALLOC_EXPORT void *operator new[](std::size_t size, std::align_val_t alignment) {
  return allocateOrThrow(size, static_cast<std::size_t>(alignment));
}
SWALLOC_EXPORT void *operator new(std::size_t size, std::align_val_t alignment, const std::nothrow_t &) noexcept {
  return allocateOrNull(size, static_cast<std::size_t>(alignment));
}
SWALLOC_EXPORT void *operator new[](std::size_t size, std::align_val_t alignment, const std::nothrow_t &) noexcept {
  return allocateOrNull(size, static_cast<std::size_t>(alignment));
}

SWALLOC_EXPORT void operator delete(void *pointer) noexcept { swalloc_free(pointer); }
SWALLOC_EXPORT void operator delete[](void *pointer) noexcept { swalloc_free(pointer); }
SWALLOC_EXPORT void operator delete(void *pointer, std::size_t size) noexcept {
  swalloc_sized_delete_entry(pointer, size);
}
SWALLOC_EXPORT void operator delete[](void *pointer, std::size_t size) noexcept {
  swalloc_sized_delete_entry(pointer, size);
}
SWALLOC_EXPORT void operator delete(void *pointer, const std::nothrow_t &) noexcept { swalloc_free(pointer); }
SWALLOC_EXPORT void operator delete[](void *pointer, const std::nothrow_t &) noexcept { swalloc_free(pointer); }
SWALLOC_EXPORT void operator delete(void *pointer, std::align_val_t) noexcept { swalloc_free(pointer); }
SWALLOC_EXPORT void operator delete[](void *pointer, std::align_val_t) noexcept { swalloc_free(pointer); }
SWALLOC_EXPORT void operator delete(void *pointer, std::size_t size, std::align_val_t alignment) noexcept {
  swalloc_impl_aligned_sized_delete(pointer, size, static_cast<std::size_t>(alignment));
}
SWALLOC_EXPORT void operator delete[](void *pointer, std::size_t size, std::align_val_t alignment) noexcept {
  swalloc_impl_aligned_sized_delete(pointer, size, static_cast<std::size_t>(alignment));
}
SWALLOC_EXPORT void operator delete(void *pointer, std::align_val_t, const std::nothrow_t &) noexcept {
  swalloc_free(pointer);
}
SWALLOC_EXPORT void operator delete[](void *pointer, std::align_val_t, const std::nothrow_t &) noexcept {
  swalloc_free(pointer);
}
