// TF32 (8-bit exponent, 10-bit fraction: FP32 with 13 fraction bits less) as the CPU engine
// emulates `--tf32`: the CUDA engine's cuBLAS GEMMs on tensor cores read only the first 10
// fraction bits of each FP32 operand (NVIDIA's and PyTorch's TF32 notes) and accumulate in FP32.
// Cutting those bits off (round toward zero) is the larger of the two errors cuBLAS may make
// (at most 2^-10 of the value, against 2^-11 for round to nearest), so the accuracy the
// emulation measures is the pessimistic one.
#pragma once
#include <cstddef>
#include <cstdint>

#include "siamese/half.hpp"  // float_bits, bits_float

namespace siamese {

// f with its 13 lowest fraction bits cleared; infinities and zeros kept, NaN kept a NaN (a NaN
// whose payload lies only in those bits would otherwise become an infinity).
SIAMESE_HD float tf32_truncate(float f) {
    const uint32_t u = float_bits(f);
    if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x7fffffu) != 0) return bits_float(u | 0x400000u);
    return bits_float(u & 0xffffe000u);
}

// out[i] = tf32_truncate(in[i]) for i < n (T: float, or double: the same cut of its nearest float,
// for the tests' double twin).
template <class T>
void tf32_truncate(T* out, const T* in, size_t n) {
    for (size_t i = 0; i < n; ++i) out[i] = T(tf32_truncate(float(in[i])));
}

}  // namespace siamese
