// The in-batch contrastive loss of the P-K sampler: the CPU reference of cuda/batch_loss.cu
// (same name and argument order). A batch is n embeddings with person ids; EVERY pair i < j
// counts, genuine when the ids match:
//   L = sum_{i<j} w_ij term(d_ij, y_ij)      term, d: the contrastive rule of rules.hpp
// with weights from batch_pair_weights (rules.hpp): `all` weighs every pair alike; `balanced`
// gives the genuine and the impostor pairs half the loss each (a P-K batch holds ~P times more
// impostor pairs than genuine ones).
// Row-wise, as the kernel does it: row i sums its terms j > i (its share of the loss) and its
// gradient over every j != i.
#pragma once
#include <cstddef>

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

}  // namespace siamese
