// The in-batch losses of the P-K sampler (contrastive, and normalised softmax below): the CPU
// reference of cuda/batch_loss.cu (same names and argument order). A batch is n embeddings with
// person ids; for the contrastive loss EVERY pair i < j counts, genuine when the ids match:
//   L = sum_{i<j} w_ij term(d_ij, y_ij)      term, d: the contrastive rule of rules.hpp
// with weights from batch_pair_weights (rules.hpp): `all` weighs every pair alike; `balanced`
// gives the genuine and the impostor pairs half the loss each (a P-K batch holds ~P times more
// impostor pairs than genuine ones).
// Row-wise, as the kernel does it: row i sums its terms j > i (its share of the loss) and its
// gradient over every j != i.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

#include "siamese/rules.hpp"

namespace siamese {

// Returns the loss; g (n, E) = dL/d emb when set.
template <class T>
T batch_contrastive_loss(T* g, const T* emb, const int* id, int n, int E, T margin, Mining mining) {
    const PairWeights w = batch_pair_weights(id, n, mining);
    T total = 0;
    for (int i = 0; i < n; ++i) {
        const T* a = emb + size_t(i) * E;
        T* gi = g ? g + size_t(i) * E : nullptr;
        if (gi)
            for (int k = 0; k < E; ++k) gi[k] = 0;
        T row = 0;
        for (int j = 0; j < n; ++j) {
            if (j == i) continue;
            const T* b = emb + size_t(j) * E;
            T s = 0;
            for (int k = 0; k < E; ++k) s += (a[k] - b[k]) * (a[k] - b[k]);
            const bool genuine = id[i] == id[j];
            const T y = genuine ? T(1) : T(0);
            const T wt = T(genuine ? w.genuine : w.impostor);
            const T d = safe_distance(s);
            if (j > i) row += wt * contrastive_term(d, y, margin);
            if (gi) {
                // contrastive_grad_coef is for a mean over `count` pairs: count 1, then the weight.
                const T coef = wt * contrastive_grad_coef(d, y, margin, distance_clamped(s), 1);
                for (int k = 0; k < E; ++k) gi[k] += coef * (a[k] - b[k]);
            }
        }
        total += row;
    }
    return total;
}


// The in-batch normalised-softmax loss (supervised contrastive, Khosla et al. 2020). Logits
// s_ij = <e_i, e_j> / T; each anchor i with at least one genuine partner (P(i): the other
// images of its person) scores minus the mean log-softmax of its partners over every j != i:
//   l_i = lse_i - mean_{p in P(i)} s_ip,   lse_i = log sum_{j != i} exp(s_ij),
//   L   = mean of l_i over the A anchors that have a partner (0 when none has).
// Gradient: c_ij = dL/ds_ij = (exp(s_ij - lse_i) - [j in P(i)] / |P(i)|) / A (0 when i has no
// partner), and as s is symmetric dL/de_i = sum_{j != i} (c_ij + c_ji) e_j / T.
// Row-wise in two passes as the kernel does it (lse and |P| of every row, then the gradient),
// so no n x n matrix is kept. Returns L; g (n, E) = dL/d emb when set.
template <class T>
T softmax_logit(const T* emb, int E, int i, int j, T temperature) {
    T d = 0;
    for (int k = 0; k < E; ++k) d += emb[size_t(i) * E + k] * emb[size_t(j) * E + k];
    return d / temperature;
}

template <class T>
T batch_softmax_loss(T* g, const T* emb, const int* id, int n, int E, T temperature) {
    std::vector<T> lse(static_cast<size_t>(n), T(0)), logits(static_cast<size_t>(n));
    std::vector<int> partners(static_cast<size_t>(n), 0);
    int anchors = 0;
    T total = 0;
    if (g) std::fill(g, g + size_t(n) * E, T(0));
    if (n < 2) return T(0);
    for (int i = 0; i < n; ++i) {
        T mx = -INFINITY, pos_sum = 0;
        for (int j = 0; j < n; ++j) {
            if (j == i) continue;
            logits[j] = softmax_logit(emb, E, i, j, temperature);
            mx = std::max(mx, logits[j]);
            if (id[j] == id[i]) ++partners[i], pos_sum += logits[j];
        }
        T se = 0;
        for (int j = 0; j < n; ++j)
            if (j != i) se += std::exp(logits[j] - mx);
        lse[i] = mx + std::log(se);
        if (partners[i]) ++anchors, total += lse[i] - pos_sum / T(partners[i]);
    }
    if (!anchors) return T(0);
    if (g) {
        auto coef = [&](int i, int j, T s) {
            if (!partners[i]) return T(0);
            return std::exp(s - lse[i]) - (id[j] == id[i] ? T(1) / T(partners[i]) : T(0));
        };
        const T scale = T(1) / (T(anchors) * temperature);
        for (int i = 0; i < n; ++i) {
            for (int j = 0; j < n; ++j) {
                if (j == i) continue;
                const T s = softmax_logit(emb, E, i, j, temperature);
                const T c = (coef(i, j, s) + coef(j, i, s)) * scale;
                for (int k = 0; k < E; ++k) g[size_t(i) * E + k] += c * emb[size_t(j) * E + k];
            }
        }
    }
    return total / T(anchors);
}

}  // namespace siamese
