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

#include "madd.hpp"
#include "siamese/rules.hpp"

namespace siamese {

// A pair's squared distance, unfused: each (a_k - b_k)^2 rounded, then added, k = 0..E-1 in
// order (as for softmax_logit below: left to the compiler, GCC summed the vectorised products
// rounded and fused the few terms its vector loop left over, so the bits depended on E and the
// target). (x - y)^2 == (y - x)^2 exactly: the same bits for (i, j) and (j, i).
#if defined(__clang__)
#define SIAMESE_UNFUSED
#define SIAMESE_UNFUSED_BODY _Pragma("clang fp contract(off)")
#elif defined(__GNUC__)
#define SIAMESE_UNFUSED __attribute__((optimize("fp-contract=off")))
#define SIAMESE_UNFUSED_BODY
#else
#define SIAMESE_UNFUSED
#define SIAMESE_UNFUSED_BODY
#endif
template <class T>
SIAMESE_UNFUSED T squared_distance(const T* a, const T* b, int E) {
    SIAMESE_UNFUSED_BODY
    T s = 0;
    for (int k = 0; k < E; ++k) s += (a[k] - b[k]) * (a[k] - b[k]);
    return s;
}

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
            const T s = squared_distance(a, b, E);
            const bool genuine = id[i] == id[j];
            const T y = genuine ? T(1) : T(0);
            const T wt = T(genuine ? w.genuine : w.impostor);
            const T d = safe_distance(s);
            if (j > i) row = madd(wt, contrastive_term(d, y, margin), row);
            if (gi) {
                // contrastive_grad_coef is for a mean over `count` pairs: count 1, then the weight.
                const T coef = wt * contrastive_grad_coef(d, y, margin, distance_clamped(s), 1);
                // madd: one rounding where the target has FMA, whatever the optimisation level.
                for (int k = 0; k < E; ++k) gi[k] = madd(coef, a[k] - b[k], gi[k]);
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
//
// A logit's sum is unfused: each product rounded, then added, k = 0..E-1 in order. Left to the
// compiler, GCC vectorized it as an in-order reduction of rounded products and fused only the
// few terms its vector loop left over (E mod the vector width), so the bits depended on E and on
// the target; unfused everywhere, they are those of every target for E a multiple of 16 (the
// strong recipe's 128).
template <class T>
SIAMESE_UNFUSED T softmax_logit(const T* emb, int E, int i, int j, T temperature) {
    SIAMESE_UNFUSED_BODY
    T d = 0;
    for (int k = 0; k < E; ++k) d += emb[size_t(i) * E + k] * emb[size_t(j) * E + k];
    return d / temperature;
}

// Row i of a pairwise matrix with the lanes across j (embt: emb transposed, (E, n)), for every j
// (i included), each entry summed k = 0..E-1 in order, unfused: the dot products <e_i, e_j>
// (softmax_logit's sums), or (Diff) the squared distances |e_i - e_j|^2 (squared_distance's).
template <bool Diff, class T>
SIAMESE_UNFUSED void pairwise_row(T* s, const T* emb, const T* embt, int n, int E, int i) {
    SIAMESE_UNFUSED_BODY
    std::fill(s, s + n, T(0));
    for (int k = 0; k < E; ++k) {
        const T a = emb[size_t(i) * E + k];
        const T* b = embt + size_t(k) * n;
#pragma omp simd
        for (int j = 0; j < n; ++j) s[j] += Diff ? (a - b[j]) * (a - b[j]) : a * b[j];
    }
}

// emb (n, E) transposed: (E, n), the layout pairwise_row reads.
template <class T>
std::vector<T> transposed(const T* emb, int n, int E) {
    std::vector<T> t(size_t(E) * size_t(n));
    for (int j = 0; j < n; ++j)
        for (int k = 0; k < E; ++k) t[size_t(k) * size_t(n) + j] = emb[size_t(j) * E + k];
    return t;
}

// Row i of the logit matrix, s[j] = softmax_logit(emb, E, i, j, T) for every j (i included).
template <class T>
void softmax_logit_row(T* s, const T* emb, const T* embt, int n, int E, int i, T temperature) {
    pairwise_row<false>(s, emb, embt, n, E, i);
    for (int j = 0; j < n; ++j) s[j] /= temperature;
}

// Row i of the loss from its logits s[j] (j != i; s[i] is not read): the log-sum-exp over
// j != i, and the count and the sum of the logits of its genuine partners, all in j order.
template <class T>
T softmax_row(const T* s, const int* id, int n, int i, int* partners, T* pos_sum) {
    T mx = -INFINITY;
    for (int j = 0; j < n; ++j) {
        if (j == i) continue;
        mx = std::max(mx, s[j]);
        if (id[j] == id[i]) ++*partners, *pos_sum += s[j];
    }
    T se = 0;
    for (int j = 0; j < n; ++j)
        if (j != i) se += std::exp(s[j] - mx);
    return mx + std::log(se);
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
        for (int j = 0; j < n; ++j)
            if (j != i) logits[j] = softmax_logit(emb, E, i, j, temperature);
        T pos_sum = 0;
        lse[i] = softmax_row(logits.data(), id, n, i, &partners[i], &pos_sum);
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
                // madd: one rounding where the target has FMA, whatever the optimisation level.
                for (int k = 0; k < E; ++k) g[size_t(i) * E + k] = madd(c, emb[size_t(j) * E + k], g[size_t(i) * E + k]);
            }
        }
    }
    return total / T(anchors);
}

// batch_softmax_loss with the same bits, for the engine's steps (the reference above took 13% of
// the strong recipe's training: every logit twice, each a 128-long chain of dependent
// multiply-adds, one row at a time). The logits once, as an n x n matrix whose row i is built
// with the lanes across j (softmax_logit_row: each logit still sums k = 0..E-1 in order, the
// reference's chain); each row's exp(s_ij - lse_i) once; rows on OpenMP's threads, each row's
// values in the reference's order, and the sums over rows in row order. (The gradient's sums over
// j are fused in both, by madd.)
template <class T>
T batch_softmax_loss_fast(T* g, const T* emb, const int* id, int n, int E, T temperature) {
    if (g) std::fill(g, g + size_t(n) * E, T(0));
    if (n < 2) return T(0);
    const size_t nn = size_t(n);
    const std::vector<T> embt = transposed(emb, n, E);
    std::vector<T> logit(nn * nn), lse(nn, T(0)), row_loss(nn, T(0));
    std::vector<int> partners(nn, 0);
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; ++i) {
        T* s = logit.data() + size_t(i) * nn;
        softmax_logit_row(s, emb, embt.data(), n, E, i, temperature);
        T pos_sum = 0;
        lse[i] = softmax_row(s, id, n, i, &partners[i], &pos_sum);
        if (partners[i]) row_loss[i] = lse[i] - pos_sum / T(partners[i]);
    }
    int anchors = 0;
    T total = 0;
    for (int i = 0; i < n; ++i)
        if (partners[i]) ++anchors, total += row_loss[i];
    if (!anchors) return T(0);
    if (g) {
        // p_ij = exp(s_ij - lse_i) - [j in P(i)] / |P(i)|: the reference's coef(i, j, s_ij), and
        // as s is symmetric bit for bit, p_ji its coef(j, i, s_ij).
        std::vector<T> p(nn * nn, T(0));
#pragma omp parallel for schedule(static)
        for (int i = 0; i < n; ++i) {
            if (!partners[i]) continue;
            const T* s = logit.data() + size_t(i) * nn;
            T* pi = p.data() + size_t(i) * nn;
            for (int j = 0; j < n; ++j)
                if (j != i) pi[j] = std::exp(s[j] - lse[i]) - (id[j] == id[i] ? T(1) / T(partners[i]) : T(0));
        }
        const T scale = T(1) / (T(anchors) * temperature);
#pragma omp parallel for schedule(static)
        for (int i = 0; i < n; ++i) {
            T* gi = g + size_t(i) * E;
            for (int j = 0; j < n; ++j) {
                if (j == i) continue;
                const T c = (p[size_t(i) * nn + j] + p[size_t(j) * nn + i]) * scale;
                const T* ej = emb + size_t(j) * E;
#pragma omp simd
                for (int k = 0; k < E; ++k) gi[k] = madd(c, ej[k], gi[k]);
            }
        }
    }
    return total / T(anchors);
}

// batch_contrastive_loss with the same bits, for the engine's steps (the reference computes
// every squared distance twice, each a chain of E dependent adds, one row at a time). Each
// row's squared distances once with the lanes across j (pairwise_row: every (i, j) still summed
// k = 0..E-1 in order, unfused), the row's loss terms j > i and its gradient over j in the reference's order,
// rows on OpenMP's threads, the rows' losses added in row order.
template <class T>
T batch_contrastive_loss_fast(T* g, const T* emb, const int* id, int n, int E, T margin, Mining mining) {
    const PairWeights w = batch_pair_weights(id, n, mining);
    const size_t nn = size_t(n);
    const std::vector<T> embt = transposed(emb, n, E);
    std::vector<T> row_loss(nn, T(0));
#pragma omp parallel
    {
        std::vector<T> s(nn), coef(nn);
#pragma omp for schedule(static)
        for (int i = 0; i < n; ++i) {
            pairwise_row<true>(s.data(), emb, embt.data(), n, E, i);
            T row = 0;
            for (int j = 0; j < n; ++j) {
                if (j == i) continue;
                const bool genuine = id[i] == id[j];
                const T y = genuine ? T(1) : T(0);
                const T wt = T(genuine ? w.genuine : w.impostor);
                const T d = safe_distance(s[j]);
                if (j > i) row = madd(wt, contrastive_term(d, y, margin), row);
                coef[j] = wt * contrastive_grad_coef(d, y, margin, distance_clamped(s[j]), 1);
            }
            row_loss[i] = row;
            if (!g) continue;
            const T* a = emb + size_t(i) * E;
            T* gi = g + size_t(i) * E;
            std::fill(gi, gi + E, T(0));
            for (int j = 0; j < n; ++j) {
                if (j == i) continue;
                const T* b = emb + size_t(j) * E;
                const T c = coef[j];
#pragma omp simd
                for (int k = 0; k < E; ++k) gi[k] = madd(c, a[k] - b[k], gi[k]);
            }
        }
    }
    T total = 0;
    for (int i = 0; i < n; ++i) total += row_loss[i];
    return total;
}

}  // namespace siamese
