// Euclidean distance and contrastive loss over a batch of embedding pairs: the CPU reference of
// cuda/loss.cu (same name; outputs first, then inputs, then sizes).
//   d_i = sqrt(max(|a_i - b_i|^2, eps))                 (Keras' safe sqrt: finite gradient at 0)
//   L   = mean_i( y_i d_i^2 + (1 - y_i) max(margin - d_i, 0)^2 )
#pragma once
#include <cmath>

#include "siamese/rules.hpp"  // the distance and loss rules

namespace siamese {

// Returns the mean loss; writes the gradients with respect to both embeddings (B,E) when
// `ga`/`gb` are set and distances (B) when `dist` is set. Batch sums run in index order.
template <class T>
T contrastive_loss(T* ga, T* gb, T* dist, const T* ea, const T* eb, const float* y, int B, int E, T margin) {
    T total = 0;
    for (int i = 0; i < B; ++i) {
        const T* a = ea + size_t(i) * E;
        const T* b = eb + size_t(i) * E;
        T s = 0;
        for (int k = 0; k < E; ++k) s += (a[k] - b[k]) * (a[k] - b[k]);
        const bool clamped = distance_clamped(s);
        const T d = safe_distance(s);
        total += contrastive_term(d, T(y[i]), margin);
        if (dist) dist[i] = d;
        if (ga) {
            const T coef = contrastive_grad_coef(d, T(y[i]), margin, clamped, B);
            for (int k = 0; k < E; ++k) {
                ga[size_t(i) * E + k] = coef * (a[k] - b[k]);
                gb[size_t(i) * E + k] = -coef * (a[k] - b[k]);
            }
        }
    }
    return total / T(B);
}

}  // namespace siamese
