// The CPU reference of dropout and of the ReLU/dropout gradient gate (CUDA twins: the dropout
// fused into cuda/conv.cu's and cuda/dense.cu's forward kernels, and relu_dropout_backward in
// cuda/dense.cu). The mask comes from the shared rule dropout_keep_mask4 (rules.hpp): one
// Philox call per four units, the same stream on both engines.
#pragma once
#include <cstdint>

#include "siamese/rules.hpp"

namespace siamese {

// Inverted dropout of one image slot's `count` units: y = x * mask, mask = 1/(1-rate) for kept
// units and 0 otherwise (kept for the backward pass). rate 0: the identity.
template <class T>
void dropout_forward(T* y, T* mask, const T* x, int count, float rate, uint64_t seed, uint64_t step, uint32_t layer,
                     int image) {
    const T keep_scale = dropout_keep_scale<T>(rate);
    unsigned keep4 = 0;
    for (int k = 0; k < count; ++k) {
        if ((k & 3) == 0) keep4 = dropout_keep_mask4(seed, step, layer, uint32_t(image), uint32_t(k) >> 2, rate);
        const bool keep = (keep4 >> (k & 3)) & 1u;
        mask[k] = keep ? keep_scale : T(0);
        y[k] = x[k] * mask[k];
    }
}

// d (count) = gradient through dropout and ReLU: it passes where the unit was kept and active,
// scaled like the forward. mask from dropout_forward, act the ReLU output before dropout.
template <class T>
void relu_dropout_backward(T* d, const T* act, const T* mask, int count) {
    for (int k = 0; k < count; ++k) d[k] *= mask[k] * T(act[k] > T(0));
}

}  // namespace siamese
