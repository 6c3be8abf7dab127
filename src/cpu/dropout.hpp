// The CPU reference of dropout and of the ReLU/dropout gradient gate (CUDA twins: the dropout
// fused into cuda/conv.cu's and cuda/dense.cu's forward kernels, and relu_dropout_backward in
// cuda/dense.cu). The mask comes from the shared rule dropout_keep_mask4 (rules.hpp): one
// Philox call per four units, the same stream on both engines.
#pragma once
#include <algorithm>
#include <cstdint>

#include "siamese/rules.hpp"

namespace siamese {

// Inverted dropout of one image slot's `count` units: y = x * mask, mask = 1/(1-rate) for kept
// units and 0 otherwise (kept for the backward pass). rate 0: the identity. The keep bits of up
// to 256 groups of four are drawn first in a loop of independent Philox calls, which the
// compiler vectorizes (2-3x faster than one call per group inside the unit loop); the draws
// are the same.
template <class T>
void dropout_forward(T* y, T* mask, const T* x, int count, float rate, uint64_t seed, uint64_t step, uint32_t layer,
                     int image) {
    const T keep_scale = dropout_keep_scale<T>(rate);
    constexpr int kGroups = 256;
    uint8_t keep[kGroups];
    for (int k0 = 0; k0 < count; k0 += 4 * kGroups) {
        const int n = std::min(4 * kGroups, count - k0), groups = (n + 3) / 4;
        const uint32_t g0 = uint32_t(k0) >> 2;
#pragma omp simd
        for (int g = 0; g < groups; ++g)
            keep[g] = uint8_t(dropout_keep_mask4(seed, step, layer, uint32_t(image), g0 + uint32_t(g), rate));
#pragma omp simd
        for (int k = 0; k < n; ++k) {
            const bool kept = (keep[k >> 2] >> (k & 3)) & 1u;
            mask[k0 + k] = kept ? keep_scale : T(0);
            y[k0 + k] = x[k0 + k] * mask[k0 + k];
        }
    }
}

// d (count) = gradient through dropout and ReLU: it passes where the unit was kept and active,
// scaled like the forward. mask from dropout_forward, act the ReLU output before dropout.
template <class T>
void relu_dropout_backward(T* d, const T* act, const T* mask, int count) {
    for (int k = 0; k < count; ++k) d[k] *= mask[k] * T(act[k] > T(0));
}

}  // namespace siamese
