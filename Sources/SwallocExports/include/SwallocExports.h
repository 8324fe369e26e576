// SwallocExports: the public C names and the 20 C++ operator new/delete variants of libswalloc.so.
// Nothing to import: they replace the C library's and libstdc++'s definitions by symbol name; the
// definitions forward to the Swift implementation.
#pragma once
