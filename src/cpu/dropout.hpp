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
// units and 0 otherwise (kept for the backward pass). rate 0: the identity. The factors of up
// to 256 groups of four are drawn first, in a loop of independent Philox calls that the
// compiler vectorizes (5x faster than one call per group inside the unit loop); the draws are
// dropout_keep_mask4's.
template <class T>
void dropout_forward(T* y, T* mask, const T* x, int count, float rate, uint64_t seed, uint64_t step, uint32_t layer,
                     int image) {
    const T keep_scale = dropout_keep_scale<T>(rate);
    constexpr int kGroups = 256;
    alignas(64) T fac[4 * kGroups];
    const uint32_t key0 = dropout_key0(seed, step), key1 = dropout_key1(seed), st = uint32_t(step);
    for (int k0 = 0; k0 < count; k0 += 4 * kGroups) {
        const int n = std::min(4 * kGroups, count - k0), groups = (n + 3) / 4;
        const uint32_t g0 = uint32_t(k0) >> 2;
        if (rate > 0.0f) {
#pragma omp simd
            for (int g = 0; g < groups; ++g) {
                uint32_t w0, w1, w2, w3;
                philox4x32_10(g0 + uint32_t(g), uint32_t(image), layer, st, key0, key1, w0, w1, w2, w3);
                fac[4 * g] = dropout_keep_word(w0, rate) ? keep_scale : T(0);
                fac[4 * g + 1] = dropout_keep_word(w1, rate) ? keep_scale : T(0);
                fac[4 * g + 2] = dropout_keep_word(w2, rate) ? keep_scale : T(0);
                fac[4 * g + 3] = dropout_keep_word(w3, rate) ? keep_scale : T(0);
            }
        } else {
            std::fill(fac, fac + n, keep_scale);
        }
#pragma omp simd
        for (int k = 0; k < n; ++k) {
            mask[k0 + k] = fac[k];
            y[k0 + k] = x[k0 + k] * fac[k];
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
