// The P-K in-batch loss kernels' per-thread code (cuda/batch_loss.cu) as host-and-device
// functions (no CUDA header). A block works on one row i (anchor) of the batch; thread tid of nt
// runs a phase's loop `for (j = tid; j < n; j += nt)`, whose iterations do not depend on other
// threads; the kernels put their block reductions and barriers between the phases.
// tests/test_batch_loss_emulation.cpp runs the very same functions on the CPU, thread by thread,
// against the CPU reference (src/cpu/batch_loss.hpp) in double: the kernels' indexing is checked
// where no GPU exists.
#pragma once
#include <cmath>
#include <cstddef>

#include "siamese/rules.hpp"

namespace siamese::cuda {

// coef's length: n rounded up to a multiple of 4, plus 4, so that a vector load starting at any
// j < n stays inside the allocation.
SIAMESE_HD int coef_slots(int n) { return (n + 3) / 4 * 4 + 4; }

// Thread tid's count of the batch's genuine pairs a < b (equal ids), a = tid, tid + nt, ...
SIAMESE_HD long long genuine_pairs_part(const int* id, int n, int tid, int nt) {
    long long cnt = 0;
    for (int a = tid; a < n; a += nt)
        for (int b = a + 1; b < n; ++b) cnt += id[a] == id[b];
    return cnt;
}

// ---- the contrastive loss over every pair (batch_contrastive_loss)

// Row i, phase 1: coef[j] = the gradient coefficient of pair (i, j) (0 for j = i), and the
// return value: this thread's share of the row's loss (the terms j > i). It also zeroes coef's
// tail past n (coef_slots), which the gradient's vector loads may read.
SIAMESE_HD float contrastive_row_coefs(float* coef, const float* emb, const int* id, float w_genuine, float w_impostor,
                                       int n, int E, int i, float margin, int tid, int nt) {
    const float* a = emb + size_t(i) * E;
    float part = 0.0f;
    for (int j = tid; j < n; j += nt) {
        float c = 0.0f;
        if (j != i) {
            const float* b = emb + size_t(j) * E;
            float s = 0.0f;
            for (int k = 0; k < E; ++k) s += (a[k] - b[k]) * (a[k] - b[k]);
            const bool genuine = id[i] == id[j];
            const float y = genuine ? 1.0f : 0.0f;
            const float wt = genuine ? w_genuine : w_impostor;
            const float d = safe_distance(s);
            if (j > i) part += wt * contrastive_term(d, y, margin);
            c = wt * contrastive_grad_coef(d, y, margin, distance_clamped(s), 1);
        }
        coef[j] = c;
    }
    for (int j = n + tid; j < coef_slots(n); j += nt) coef[j] = 0.0f;
    return part;
}

// Row i, phase 2 (after a barrier): g_i[k] = sum over j in order of coef[j] (e_i[k] - e_j[k]).
SIAMESE_HD void contrastive_row_gradient(float* g, const float* coef, const float* emb, int n, int E, int i, int tid,
                                         int nt) {
    const float* a = emb + size_t(i) * E;
    for (int k = tid; k < E; k += nt) {
        float acc = 0.0f;
        for (int j = 0; j < n; ++j) acc += coef[j] * (a[k] - emb[size_t(j) * E + k]);
        g[size_t(i) * E + k] = acc;
    }
}

// ---- the normalised-softmax loss (batch_softmax_loss)

SIAMESE_HD float softmax_logit(const float* emb, int E, int i, int j, float temperature) {
    float d = 0.0f;
    for (int k = 0; k < E; ++k) d += emb[size_t(i) * E + k] * emb[size_t(j) * E + k];
    return d / temperature;
}

// A thread's share of row i's first pass: the max of its logits, their count and sum over i's
// partners (the same person).
struct SoftmaxRowPart {
    float mx, pos_sum;
    int pos;
};

// Row i, phase 1: logit[j] for the thread's j != i, and its share (reduced by the block: max,
// sum, sum).
SIAMESE_HD SoftmaxRowPart softmax_row_logits(float* logit, const float* emb, const int* id, int n, int E, int i,
                                             float temperature, int tid, int nt) {
    SoftmaxRowPart p{-INFINITY, 0.0f, 0};
    for (int j = tid; j < n; j += nt) {
        if (j == i) continue;
        const float s = softmax_logit(emb, E, i, j, temperature);
        logit[j] = s;
        p.mx = fmaxf(p.mx, s);
        if (id[j] == id[i]) ++p.pos, p.pos_sum += s;
    }
    return p;
}

// Row i, phase 2 (after the reductions: mx the row's max): the thread's share of sum exp(s - mx).
SIAMESE_HD float softmax_row_expsum(const float* logit, int n, int i, float mx, int tid, int nt) {
    float se = 0.0f;
    for (int j = tid; j < n; j += nt)
        if (j != i) se += expf(logit[j] - mx);
    return se;
}

// Row i, phase 3 (one thread): lse_i, |P(i)| and l_i (0 without a partner).
SIAMESE_HD void softmax_row_write(float* rows, float* lse, float* partners, int n, int i, float mx, float se,
                                  float pos_sum, int pos) {
    const float l = n > 1 ? mx + logf(se) : 0.0f;
    lse[i] = l;
    partners[i] = float(pos);
    rows[i] = pos ? l - pos_sum / float(pos) : 0.0f;
}

// Pass 2, phase 1: the thread's count of anchors (rows with a partner).
SIAMESE_HD int softmax_anchors_part(const float* partners, int n, int tid, int nt) {
    int a = 0;
    for (int j = tid; j < n; j += nt) a += partners[j] > 0.0f;
    return a;
}

// Pass 2, phase 2 (anchors: the block's count): coef[j] = (c_ij + c_ji) / (anchors T), and
// coef's tail past n zeroed.
SIAMESE_HD void softmax_row_coefs(float* coef, const float* emb, const int* id, const float* lse, const float* partners,
                                  int n, int E, int i, float temperature, int anchors, int tid, int nt) {
    const float scale = anchors ? 1.0f / (float(anchors) * temperature) : 0.0f;
    const float pi = partners[i];
    for (int j = tid; j < n; j += nt) {
        float c = 0.0f;
        if (j != i) {
            const float s = softmax_logit(emb, E, i, j, temperature), pj = partners[j];
            const bool same = id[j] == id[i];
            if (pi > 0.0f) c += expf(s - lse[i]) - (same ? 1.0f / pi : 0.0f);
            if (pj > 0.0f) c += expf(s - lse[j]) - (same ? 1.0f / pj : 0.0f);
        }
        coef[j] = c * scale;
    }
    for (int j = n + tid; j < coef_slots(n); j += nt) coef[j] = 0.0f;
}

// Pass 2, phase 3 (after a barrier): g_i[k] = sum over j in order of coef[j] e_j[k].
SIAMESE_HD void softmax_row_gradient(float* g, const float* coef, const float* emb, int n, int E, int i, int tid,
                                     int nt) {
    for (int k = tid; k < E; k += nt) {
        float acc = 0.0f;
        for (int j = 0; j < n; ++j) acc += coef[j] * emb[size_t(j) * E + k];
        g[size_t(i) * E + k] = acc;
    }
}

}  // namespace siamese::cuda
