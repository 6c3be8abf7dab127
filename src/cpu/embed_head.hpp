// The L2-normalised embedding head and test-time flip averaging: the CPU reference of
// cuda/batch_loss.cu and cuda/eval.cu (same names and argument order). Rows of (n, E); the rule
// (and its epsilon) is l2_norm_clamped in rules.hpp.
#pragma once
#include <cstddef>

#include "cpu/madd.hpp"
#include "siamese/rules.hpp"

namespace siamese {

// z = e / max(|e|, eps) row by row; norm (n) keeps the clamped norms for the backward pass.
template <class T>
void l2_normalize_forward(T* z, T* norm, const T* e, int n, int E) {
    for (int i = 0; i < n; ++i) {
        const T* x = e + size_t(i) * E;
        T sq = 0;
        for (int k = 0; k < E; ++k) sq += x[k] * x[k];
        const T r = l2_norm_clamped(sq);
        norm[i] = r;
        for (int k = 0; k < E; ++k) z[size_t(i) * E + k] = x[k] / r;
    }
}

// de = (dz - z (z . dz)) / norm: the gradient at the raw embedding from the one at z (de may
// alias dz). Where the norm was clamped z = e / eps is linear in e: de = dz / eps.
template <class T>
void l2_normalize_backward(T* de, const T* dz, const T* z, const T* norm, int n, int E) {
    for (int i = 0; i < n; ++i) {
        const T* g = dz + size_t(i) * E;
        const T* y = z + size_t(i) * E;
        const bool clamped = norm[i] <= T(kL2Eps);
        T dot = 0;
        if (!clamped)
            for (int k = 0; k < E; ++k) dot += y[k] * g[k];
        for (int k = 0; k < E; ++k) de[size_t(i) * E + k] = (g[k] - y[k] * dot) / norm[i];
    }
}


// Test-time flip averaging (NetConfig::flip_average): the mirror images (left-right) of n
// images of H x W, and the combination of the embeddings a (of the images) and b (of their
// mirrors) into a: their mean, re-normalised when the head is L2 (as each of them was).
// a + b is commutative in floating point, so an image and its mirror get the same embedding,
// bit for bit. The squared norm is summed with madd (one rounding where there is FMA), not
// `sq += x * x`: whether the compiler contracts that into an FMA differs from one caller's code
// to another's (on an AVX-512 Xeon the backend's copy did not, the test's did: 1 ulp apart).
template <class T>
void mirror_images(T* out, const T* in, int n, int H, int W) {
    for (size_t r = 0; r < size_t(n) * H; ++r)
        for (int x = 0; x < W; ++x) out[r * W + x] = in[r * W + (W - 1 - x)];
}

template <class T>
void flip_average(T* a, const T* b, int n, int E, bool l2) {
    for (int i = 0; i < n; ++i) {
        T* x = a + size_t(i) * E;
        const T* y = b + size_t(i) * E;
        T sq = 0;
        for (int k = 0; k < E; ++k) {
            x[k] = (x[k] + y[k]) * T(0.5);
            sq = madd(x[k], x[k], sq);
        }
        if (!l2) continue;
        const T r = l2_norm_clamped(sq);
        for (int k = 0; k < E; ++k) x[k] /= r;
    }
}

}  // namespace siamese
