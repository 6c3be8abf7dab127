// <immintrin.h> for the CPU engine's AVX-512 paths (each beside the portable loop it matches bit
// for bit, and used only where the target has AVX-512). GCC 12 warns "'__Y' may be used
// uninitialized" inside the header's own inline functions (GCC bug 105593, fixed in 13); the
// warning is silenced for the header's lines only.
#pragma once
#if defined(__AVX512F__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#endif
