// CheckedDelete.c: the entry of C++'s sized operator delete (Operators.cpp). By default it jumps on to free's
// entry, as the sized deletes did (one jump through a pointer instead of one through the PLT). Secure mode
// points it at a check that the size the program gives is the size of the block (SecureChecks.swift): a
// `delete` through a pointer of the wrong type is caught.
#include <stddef.h>

#define SWALLOC_HIDDEN __attribute__((visibility("hidden")))

extern void (*swalloc_free_entry)(void *);
void swalloc_impl_checked_sized_free(void *pointer, size_t size);

/// Default: free's entry (the size is ignored).
__attribute__((naked, used)) static void sized_free_unchecked(void *pointer, size_t size) {
  __asm__ volatile("jmp *swalloc_free_entry(%rip)");
}

SWALLOC_HIDDEN void (*swalloc_sized_delete_entry)(void *, size_t) = sized_free_unchecked;

/// Secure mode's choice (called once, before the first allocation).
SWALLOC_HIDDEN void swalloc_select_checked_sized_delete(void) {
  swalloc_sized_delete_entry = swalloc_impl_checked_sized_free;
}
