// <immintrin.h> for the CPU engine's AVX-512 paths (each beside the portable loop it matches bit
// for bit), and SIAMESE_AVX512: 1 where the target has what they use (AVX-512 F, BW and VL, and
// BMI2's pdep: every AVX-512 CPU since Skylake-X and Zen 4, both CI machine kinds among them).
// GCC 12 warns "'__Y' may be used uninitialized" inside the header's own inline functions (GCC
// bug 105593, fixed in 13); the warning is silenced for the header's lines only.
#pragma once
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && defined(__BMI2__)
#define SIAMESE_AVX512 1
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#else
#define SIAMESE_AVX512 0
#endif
