// The L2-normalised embedding head: the CPU reference of cuda/embed_head.cu (same names and
// argument order). Rows of (n, E); the rule (and its epsilon) is l2_norm_clamped in rules.hpp.
#pragma once
#include <cstddef>

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

}  // namespace siamese
