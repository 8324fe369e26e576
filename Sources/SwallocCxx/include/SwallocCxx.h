// SwallocCxx: the 20 C++ operator new/delete variants of libswalloc.so. Nothing to import: the operators
// replace libstdc++'s by symbol name.
#pragma once
