// Euclidean distance and contrastive loss over a batch of embedding pairs (CPU reference).
//   d_i = sqrt(max(|a_i - b_i|^2, eps))                 (Keras' safe sqrt: finite gradient at 0)
//   L   = mean_i( y_i d_i^2 + (1 - y_i) max(margin - d_i, 0)^2 )
#pragma once
#include <cmath>

namespace siamese {

constexpr double kDistanceEps = 1e-7;  // K.epsilon(), as in the reference recipe

// Returns the mean loss; writes distances (B) when `dist` is set and the gradients with respect
// to both embeddings (B,E) when `ga`/`gb` are set. Batch sums run in index order.
template <class T>
T contrastive_loss(const T* ea, const T* eb, const float* y, int B, int E, T margin, T* dist, T* ga, T* gb) {
    T total = 0;
    for (int i = 0; i < B; ++i) {
        const T* a = ea + size_t(i) * E;
        const T* b = eb + size_t(i) * E;
        T s = 0;
        for (int k = 0; k < E; ++k) s += (a[k] - b[k]) * (a[k] - b[k]);
        const bool clamped = s < T(kDistanceEps);
        const T d = std::sqrt(clamped ? T(kDistanceEps) : s);
        const T hinge = margin - d > T(0) ? margin - d : T(0);
        total += T(y[i]) * d * d + (T(1) - T(y[i])) * hinge * hinge;
        if (dist) dist[i] = d;
        if (ga) {
            // dL/dd = (2 y d - 2 (1-y) hinge) / B; dd/da = (a-b)/d; zero where the sqrt is clamped.
            const T coef = clamped ? T(0) : (T(2) * T(y[i]) * d - T(2) * (T(1) - T(y[i])) * hinge) / (T(B) * d);
            for (int k = 0; k < E; ++k) {
                ga[size_t(i) * E + k] = coef * (a[k] - b[k]);
                gb[size_t(i) * E + k] = -coef * (a[k] - b[k]);
            }
        }
    }
    return total / T(B);
}

}  // namespace siamese
