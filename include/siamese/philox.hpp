// Philox4x32-10 counter-based generator (Salmon et al., SC'11). Dropout masks come from it on
// the CPU and the GPU alike, so both backends drop the same units and a mask can be
// regenerated in backward instead of stored.
#pragma once
#include <cstdint>

#if defined(__CUDACC__)
#define SIAMESE_HD __host__ __device__ __forceinline__
#else
#define SIAMESE_HD inline
#endif
// Unrolled on the device (constant indices keep per-thread arrays in registers); nothing on the
// host. For the kernels' host-and-device code (cuda/*_phases.hpp).
#if defined(__CUDA_ARCH__)
#define SIAMESE_UNROLL _Pragma("unroll")
#else
#define SIAMESE_UNROLL
#endif

namespace siamese {

struct Philox4 { uint32_t v[4]; };

// Philox4x32's round multipliers and key increments (Salmon et al.), for every implementation
// of the rounds (this one, the CPU engine's AVX-512 dropout).
constexpr uint32_t kPhiloxM0 = 0xD2511F53u, kPhiloxM1 = 0xCD9E8D57u;
constexpr uint32_t kPhiloxW0 = 0x9E3779B9u, kPhiloxW1 = 0xBB67AE85u;

// The four words into w0..w3 (scalar outputs, so that a CPU loop of independent calls
// vectorizes; a struct return does not).
SIAMESE_HD void philox4x32_10(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0, uint32_t k1,
                              uint32_t& w0, uint32_t& w1, uint32_t& w2, uint32_t& w3) {
    for (int round = 0; round < 10; ++round) {
        const uint64_t p0 = uint64_t(kPhiloxM0) * c0;
        const uint64_t p1 = uint64_t(kPhiloxM1) * c2;
        const uint32_t n0 = uint32_t(p1 >> 32) ^ c1 ^ k0;
        const uint32_t n2 = uint32_t(p0 >> 32) ^ c3 ^ k1;
        c0 = n0; c1 = uint32_t(p1); c2 = n2; c3 = uint32_t(p0);
        k0 += kPhiloxW0; k1 += kPhiloxW1;
    }
    w0 = c0; w1 = c1; w2 = c2; w3 = c3;
}

SIAMESE_HD Philox4 philox4x32_10(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3,
                                 uint32_t k0, uint32_t k1) {
    Philox4 r;
    philox4x32_10(c0, c1, c2, c3, k0, k1, r.v[0], r.v[1], r.v[2], r.v[3]);
    return r;
}

// Random words for elements 4*group .. 4*group+3 of image slot `image` in dropout layer
// `layer` at training step `step`.
// The Philox key of a dropout draw at training step `step`.
SIAMESE_HD uint32_t dropout_key0(uint64_t seed, uint64_t step) { return uint32_t(seed) ^ uint32_t(step >> 32); }
SIAMESE_HD uint32_t dropout_key1(uint64_t seed) { return uint32_t(seed >> 32); }

SIAMESE_HD Philox4 dropout_bits(uint64_t seed, uint64_t step, uint32_t layer, uint32_t image, uint32_t group) {
    return philox4x32_10(group, image, layer, uint32_t(step), dropout_key0(seed, step), dropout_key1(seed));
}
// A unit is kept when its uniform in [0,1) (top 24 bits) is >= rate.
SIAMESE_HD bool dropout_keep_word(uint32_t word, float rate) {
    return float(word >> 8) * (1.0f / 16777216.0f) >= rate;
}
SIAMESE_HD bool dropout_keep(uint64_t seed, uint64_t step, uint32_t layer, uint32_t image, uint32_t elem,
                             float rate) {
    return dropout_keep_word(dropout_bits(seed, step, layer, image, elem >> 2).v[elem & 3u], rate);
}

}  // namespace siamese
