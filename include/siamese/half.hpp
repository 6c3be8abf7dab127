// IEEE binary16 (FP16) conversions for the --half-bank image bank: the host rounds each pixel
// once (round to nearest, ties to even: the rounding a C++ `(_Float16)x` or CUDA's
// __float2half_rn makes) and the GPU widens it back, which is exact. So the engine trained on a
// half bank sees exactly the floats half_round() gives, and the CPU reference trains on the same
// floats. Pixels in [0, 1] keep 11 significant bits: a pixel moves by at most 2^-12 = 2.4e-4.
// No CUDA header: host and device (SIAMESE_HD).
#pragma once
#include <cstdint>
#include <cstring>

#include "siamese/philox.hpp"  // SIAMESE_HD

namespace siamese {

SIAMESE_HD uint32_t float_bits(float f) {
#ifdef __CUDA_ARCH__
    return __float_as_uint(f);
#else
    uint32_t u;
    std::memcpy(&u, &f, sizeof u);
    return u;
#endif
}
SIAMESE_HD float bits_float(uint32_t u) {
#ifdef __CUDA_ARCH__
    return __uint_as_float(u);
#else
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
#endif
}

// The FP16 value nearest f (ties to even); overflow to infinity, NaN kept (quiet).
SIAMESE_HD uint16_t half_from_float(float f) {
    const uint32_t u = float_bits(f);
    const uint32_t sign = (u >> 16) & 0x8000u, mag = u & 0x7fffffffu;
    if (mag >= 0x7f800000u) return uint16_t(sign | 0x7c00u | (mag > 0x7f800000u ? 0x0200u : 0u));
    const int e = int(mag >> 23) - 127;  // unbiased exponent of f
    if (e > 15) return uint16_t(sign | 0x7c00u);
    uint32_t m;      // f's significand with its leading one (24 bits), or f's fraction if subnormal
    int shift;       // bits of it to drop
    uint32_t base;   // the half's exponent field, added to the rounded significand
    if (e >= -14) {  // a normal half: keep 10 of f's 23 fraction bits
        m = mag & 0x7fffffu;
        shift = 13;
        base = uint32_t(e + 15) << 10;
    } else {  // a subnormal half (or zero): the significand scaled to units of 2^-24
        if (e < -25) return uint16_t(sign);  // below half the smallest subnormal: zero
        m = (mag & 0x7fffffu) | 0x800000u;
        shift = -1 - e;  // f = m * 2^(e - 23) = (m >> (-1 - e)) units of 2^-24, before rounding
        base = 0;
    }
    const uint32_t kept = m >> shift, rest = m & ((1u << shift) - 1u), halfway = 1u << (shift - 1);
    uint32_t h = base + kept;  // a carry out of the fraction rolls into the exponent (or to infinity)
    if (rest > halfway || (rest == halfway && (kept & 1u))) ++h;
    return uint16_t(sign | h);
}

// The float an FP16 value is (exact).
SIAMESE_HD float half_to_float(uint16_t h) {
#ifdef __CUDA_ARCH__
    float f;  // one conversion instruction, exact like the bit arithmetic below
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
#else
    const uint32_t sign = uint32_t(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, frac = h & 0x3ffu;
    if (exp == 0x1fu) return bits_float(sign | 0x7f800000u | (frac << 13));
    if (exp != 0) return bits_float(sign | ((exp + 112u) << 23) | (frac << 13));
    // Subnormal (or zero): frac * 2^-24, exact in float.
    const float v = float(frac) * 5.9604644775390625e-8f;
    return sign ? -v : v;
#endif
}

// f rounded to FP16 and back: what a pixel of the half bank is.
SIAMESE_HD float half_round(float f) { return half_to_float(half_from_float(f)); }

}  // namespace siamese
