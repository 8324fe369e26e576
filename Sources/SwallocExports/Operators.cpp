// Operators.cpp: C++ operator new/delete for libswalloc.so, forwarding to the swalloc_ C functions.
// Throwing new calls the new-handler until it succeeds or there is none, then throws std::bad_alloc.
#include <cstddef>
#include <new>

extern "C" {
void *swalloc_malloc(std::size_t size);
void swalloc_free(void *pointer);
void *swalloc_aligned_alloc(std::size_t alignment, std::size_t size);
}

namespace {

inline void *allocate(std::size_t size, std::size_t alignment) {
  return alignment <= 16 ? swalloc_malloc(size) : swalloc_aligned_alloc(alignment, size);
}

void *allocateOrThrow(std::size_t size, std::size_t alignment) {
  for (;;) {
    if (void *pointer = allocate(size, alignment)) return pointer;
    std::new_handler handler = std::get_new_handler();
    if (handler == nullptr) throw std::bad_alloc();
    handler();
  }
}

void *allocateOrNull(std::size_t size, std::size_t alignment) noexcept {
  try {
    return allocateOrThrow(size, alignment);
  } catch (...) {
    return nullptr;
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
SWALLOC_EXPORT void operator delete(void *pointer, std::size_t) noexcept { swalloc_free(pointer); }
SWALLOC_EXPORT void operator delete[](void *pointer, std::size_t) noexcept { swalloc_free(pointer); }
SWALLOC_EXPORT void operator delete(void *pointer, const std::nothrow_t &) noexcept { swalloc_free(pointer); }
SWALLOC_EXPORT void operator delete[](void *pointer, const std::nothrow_t &) noexcept { swalloc_free(pointer); }
SWALLOC_EXPORT void operator delete(void *pointer, std::align_val_t) noexcept { swalloc_free(pointer); }
SWALLOC_EXPORT void operator delete[](void *pointer, std::align_val_t) noexcept { swalloc_free(pointer); }
SWALLOC_EXPORT void operator delete(void *pointer, std::size_t, std::align_val_t) noexcept { swalloc_free(pointer); }
SWALLOC_EXPORT void operator delete[](void *pointer, std::size_t, std::align_val_t) noexcept {
  swalloc_free(pointer);
}
SWALLOC_EXPORT void operator delete(void *pointer, std::align_val_t, const std::nothrow_t &) noexcept {
  swalloc_free(pointer);
}
SWALLOC_EXPORT void operator delete[](void *pointer, std::align_val_t, const std::nothrow_t &) noexcept {
  swalloc_free(pointer);
}
