// The per-element rules of the network, written once as __host__ __device__ functions: the CPU
// reference (src/cpu/: conv, dense, dropout, loss, twin), the evaluation code and the
// CUDA kernels (cuda/) all call them, so the engines cannot drift apart on a NaN, a tie, a
// dropout mask or an epsilon. (The optimizer's rule, optimizer_update, is in optimizer.hpp.)
#pragma once
#include <cmath>
#include <cstdint>

#include "siamese/philox.hpp"  // SIAMESE_HD, the dropout stream

namespace siamese {

// ReLU that keeps NaN (NaN < 0 is false): a diverged network stays non-finite on every engine,
// so the divergence check fires, instead of being silently zeroed on one of them.
template <class T>
SIAMESE_HD T relu(T v) { return v < T(0) ? T(0) : v; }

// Max-pool window scan: does value v replace the current best? Strictly greater keeps the first
// of equal values (argmax ties go to the earliest position); a NaN always wins, so NaN
// propagates through the pool as through the ReLU.
template <class T>
SIAMESE_HD bool pool_takes(T v, T best) { return v > best || v != v; }

// Dropout layer ids in the Philox stream: conv block l -> l, dense layer l -> 16 + l.
constexpr uint32_t kConvDropoutId = 0, kDenseDropoutId = 16;

// Keep bits of the four dropout units 4*group .. 4*group+3 of one image slot (bit j: unit
// 4*group+j kept), from ONE Philox4x32-10 call: the CPU and the GPU draw the same stream.
SIAMESE_HD unsigned dropout_keep_mask4(uint64_t seed, uint64_t step, uint32_t layer, uint32_t image, uint32_t group,
                                       float rate) {
    if (rate <= 0.0f) return 0xFu;
    const Philox4 r = dropout_bits(seed, step, layer, image, group);
    return unsigned(dropout_keep_word(r.v[0], rate)) | unsigned(dropout_keep_word(r.v[1], rate)) << 1 |
           unsigned(dropout_keep_word(r.v[2], rate)) << 2 | unsigned(dropout_keep_word(r.v[3], rate)) << 3;
}
// Inverted dropout's scale of a kept unit (float when training; double in the gradient checks).
template <class T = float>
SIAMESE_HD T dropout_keep_scale(float rate) { return rate > 0.0f ? T(1) / (T(1) - T(rate)) : T(1); }

// The dropout factors (0, or the keep scale) of units 4*group .. 4*group+3 of one image slot:
// what a kernel thread that owns those four units multiplies them by.
struct DropoutGroup {
    unsigned keep;
    float scale;
    SIAMESE_HD float factor(int j) const { return (keep >> j) & 1u ? scale : 0.0f; }
};
SIAMESE_HD DropoutGroup dropout_group(uint64_t seed, uint64_t step, uint32_t layer, uint32_t image, uint32_t group,
                                      float rate) {
    return DropoutGroup{dropout_keep_mask4(seed, step, layer, image, group, rate), dropout_keep_scale(rate)};
}

// Max over a P x P pool window of value(dy, dx), with the position (dy*P + dx) of the first
// maximum; NaN propagates (pool_takes).
template <class F>
SIAMESE_HD float pool_window_max(int P, F value, int& arg) {
    float best = -INFINITY;
    arg = 0;
    for (int dy = 0; dy < P; ++dy)
        for (int dx = 0; dx < P; ++dx) {
            const float v = value(dy, dx);
            if (pool_takes(v, best)) {
                best = v;
                arg = dy * P + dx;
            }
        }
    return best;
}

// ---- distance and contrastive loss
//   d = sqrt(max(|a-b|^2, eps))                  Keras' safe sqrt: a finite gradient at d = 0
//   term = y d^2 + (1-y) max(margin - d, 0)^2    the loss is the batch mean of the terms
constexpr double kDistanceEps = 1e-7;  // K.epsilon(), as in the reference recipe

template <class T>
SIAMESE_HD T hd_sqrt(T x) {
#if defined(__CUDA_ARCH__)
    return sqrt(x);
#else
    return std::sqrt(x);
#endif
}
// Is the squared distance below eps (the sqrt then clamped, and its gradient zero)? NaN is not.
template <class T>
SIAMESE_HD bool distance_clamped(T sq) { return sq < T(kDistanceEps); }
// The distance from the squared distance; NaN stays NaN.
template <class T>
SIAMESE_HD T safe_distance(T sq) { return hd_sqrt(distance_clamped(sq) ? T(kDistanceEps) : sq); }
template <class T>
SIAMESE_HD T contrastive_hinge(T d, T margin) { return margin - d > T(0) ? margin - d : T(0); }
template <class T>
SIAMESE_HD T contrastive_term(T d, T y, T margin) {
    const T hinge = contrastive_hinge(d, margin);
    return y * d * d + (T(1) - y) * hinge * hinge;
}
// dL/d(a-b) = coef * (a - b) for the mean over `count` pairs: dL/dd = (2 y d - 2 (1-y) hinge)
// / count, dd/d(a-b) = (a-b)/d; zero where the sqrt is clamped.
template <class T>
SIAMESE_HD T contrastive_grad_coef(T d, T y, T margin, bool clamped, int count) {
    return clamped ? T(0) : (T(2) * y * d - T(2) * (T(1) - y) * contrastive_hinge(d, margin)) / (T(count) * d);
}

// ---- L2-normalised embedding head
//   z = e / max(|e|, eps);  dz/de = (I - z z^T) / |e|   (dz/de = I / eps where clamped)
constexpr double kL2Eps = 1e-6;  // a dead (all-zero) embedding keeps a finite gradient
template <class T>
SIAMESE_HD T l2_norm_clamped(T sq) { return hd_sqrt(sq) < T(kL2Eps) ? T(kL2Eps) : hd_sqrt(sq); }

// ---- the P-K sampler's in-batch loss (src/cpu/batch_loss.hpp): the contrastive rule over every
// pair, or a normalised softmax over each image's partners (temperature-scaled dot products).
enum class BatchLoss : int { Contrastive = 0, Softmax = 1 };

// ---- in-batch pair weights (the in-batch contrastive loss)
enum class Mining : int { All = 0, Balanced = 1 };
struct PairWeights {
    double genuine, impostor;  // the weight of one pair's term
};
// The weights of a batch of n embeddings with `genuine` genuine pairs i < j: `all`, the mean
// over every pair; `balanced`, half the loss to each class (an empty class gets weight 0).
SIAMESE_HD PairWeights pair_weights(long genuine, int n, Mining m) {
    const long pairs = long(n) * (n - 1) / 2, impostor = pairs - genuine;
    if (pairs == 0) return PairWeights{0, 0};
    if (m == Mining::All) return PairWeights{1.0 / double(pairs), 1.0 / double(pairs)};
    return PairWeights{genuine ? 0.5 / double(genuine) : 0.0, impostor ? 0.5 / double(impostor) : 0.0};
}
// The same, counting the genuine pairs (equal ids) of the batch.
SIAMESE_HD PairWeights batch_pair_weights(const int* id, int n, Mining m) {
    long genuine = 0;
    for (int i = 0; i < n; ++i)
        for (int j = i + 1; j < n; ++j) genuine += id[i] == id[j];
    return pair_weights(genuine, n, m);
}

}  // namespace siamese
