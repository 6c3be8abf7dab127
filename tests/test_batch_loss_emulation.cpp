// The P-K in-batch loss kernels' own code (cuda/batch_loss_phases.hpp, the phases
// cuda/batch_loss.cu runs with its block reductions between them) run on the CPU: every row's
// block, every phase, every thread of 128 in turn, shared memory poisoned with NaN first; the
// reductions added on the host. Checked against the CPU reference (src/cpu/batch_loss.hpp) in
// double, as the [cuda] tests check the kernels: their indexing is thereby tested where no GPU
// exists. The softmax loss (the strong recipe's) had not run on a GPU when this was written.
#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "batch_loss_phases.hpp"
#include "cpu/batch_loss.hpp"
#include "test_util.hpp"

namespace {

namespace cu = siamese::cuda;

constexpr int kThreads = 128;  // the kernels' block size (kRowThreads)
const float kNaN = std::numeric_limits<float>::quiet_NaN();

struct Emulated {
    float loss = kNaN;
    std::vector<float> g;
    bool coef_tail_zero = true;  // coef past n: zeros (a vector load may read them)
};

std::vector<double> to_double(const std::vector<float>& v) { return std::vector<double>(v.begin(), v.end()); }

// batch_softmax_loss's three kernels, block by block.
Emulated emulate_softmax(const std::vector<float>& emb, const std::vector<int>& id, int n, int E, float T) {
    std::vector<float> rows(n, kNaN), lse(n, kNaN), partners(n, kNaN);
    for (int i = 0; i < n; ++i) {  // softmax_rows_kernel
        std::vector<float> logit(n, kNaN);
        std::vector<cu::SoftmaxRowPart> part(kThreads);
        for (int t = 0; t < kThreads; ++t)
            part[t] = cu::softmax_row_logits(logit.data(), emb.data(), id.data(), n, E, i, T, t, kThreads);
        float mx = -INFINITY, pos_sum = 0.0f, se = 0.0f;
        int pos = 0;
        for (const auto& p : part) mx = std::fmax(mx, p.mx), pos_sum += p.pos_sum, pos += p.pos;
        for (int t = 0; t < kThreads; ++t) se += cu::softmax_row_expsum(logit.data(), n, i, mx, t, kThreads);
        cu::softmax_row_write(rows.data(), lse.data(), partners.data(), n, i, mx, se, pos_sum, pos);
    }
    Emulated o;
    float acc = 0.0f;  // softmax_sum_kernel
    int with_partner = 0;
    for (int i = 0; i < n; ++i) acc += rows[i], with_partner += partners[i] > 0.0f;
    o.loss = with_partner ? acc / float(with_partner) : 0.0f;
    o.g.assign(size_t(n) * E, kNaN);
    for (int i = 0; i < n; ++i) {  // softmax_grad_kernel
        int anchors = 0;
        for (int t = 0; t < kThreads; ++t) anchors += cu::softmax_anchors_part(partners.data(), n, t, kThreads);
        std::vector<float> coef(cu::coef_slots(n), kNaN);
        for (int t = 0; t < kThreads; ++t)
            cu::softmax_row_coefs(coef.data(), emb.data(), id.data(), lse.data(), partners.data(), n, E, i, T, anchors, t,
                                  kThreads);
        o.coef_tail_zero &= std::all_of(coef.begin() + n, coef.end(), [](float c) { return c == 0.0f; });
        for (int t = 0; t < kThreads; ++t) cu::softmax_row_gradient(o.g.data(), coef.data(), emb.data(), n, E, i, t, kThreads);
    }
    return o;
}

// batch_contrastive_loss's three kernels, block by block.
Emulated emulate_contrastive(const std::vector<float>& emb, const std::vector<int>& id, int n, int E, float margin,
                             siamese::Mining mining) {
    long long genuine = 0;  // pair_weights_kernel
    for (int t = 0; t < kThreads; ++t) genuine += cu::genuine_pairs_part(id.data(), n, t, kThreads);
    const siamese::PairWeights w = siamese::pair_weights(long(genuine), n, mining);
    Emulated o;
    o.g.assign(size_t(n) * E, kNaN);
    std::vector<float> rows(n, kNaN);
    for (int i = 0; i < n; ++i) {  // batch_loss_rows_kernel
        std::vector<float> coef(cu::coef_slots(n), kNaN);
        float part = 0.0f;
        for (int t = 0; t < kThreads; ++t)
            part += cu::contrastive_row_coefs(coef.data(), emb.data(), id.data(), float(w.genuine), float(w.impostor), n, E, i,
                                              margin, t, kThreads);
        rows[i] = part;
        o.coef_tail_zero &= std::all_of(coef.begin() + n, coef.end(), [](float c) { return c == 0.0f; });
        for (int t = 0; t < kThreads; ++t) cu::contrastive_row_gradient(o.g.data(), coef.data(), emb.data(), n, E, i, t, kThreads);
    }
    float acc = 0.0f;  // sum_rows_kernel
    for (int i = 0; i < n; ++i) acc += rows[i];
    o.loss = acc;
    return o;
}

// n embeddings of P-K-like batches (ids of `people` persons, some with a single image, so some
// anchors have no partner), L2-normalised as the strong recipe's head gives them.
void batch(int n, int E, int people, std::mt19937_64& r, std::vector<float>& emb, std::vector<int>& id) {
    const auto v = testutil::random_vector(size_t(n) * E, r);
    emb.assign(v.begin(), v.end());
    for (int i = 0; i < n; ++i) {
        double sq = 0;
        for (int k = 0; k < E; ++k) sq += double(emb[size_t(i) * E + k]) * emb[size_t(i) * E + k];
        for (int k = 0; k < E; ++k) emb[size_t(i) * E + k] = float(emb[size_t(i) * E + k] / std::sqrt(sq));
    }
    id.resize(n);
    for (int i = 0; i < n; ++i) id[i] = int(r() % unsigned(people));
}

}  // namespace

TEST_CASE("the in-batch loss kernels' phases run on the CPU match the CPU reference in double", "[emulation][pk]") {
    std::mt19937_64 r(505);
    // (n, E, people): one image, two of one person, odd sizes, the strong recipe's 16 x 8 batch
    // at its 128-wide embedding, more rows than a block has threads.
    for (auto [n, E, people] : std::vector<std::array<int, 3>>{{1, 8, 1}, {2, 5, 1}, {3, 7, 2}, {17, 50, 5}, {128, 128, 16},
                                                                  {131, 50, 40}}) {
        INFO("n " << n << " E " << E << " people " << people);
        std::vector<float> emb;
        std::vector<int> id;
        batch(n, E, people, r, emb, id);
        const auto embd = to_double(emb);
        {
            const float T = 0.05f;
            std::vector<double> g(size_t(n) * E);
            const double loss = siamese::batch_softmax_loss<double>(g.data(), embd.data(), id.data(), n, E, double(T));
            const Emulated o = emulate_softmax(emb, id, n, E, T);
            // Logits up to 1/T = 20 and their exponentials in float: a few ulp of 20 each.
            CHECK(std::abs(double(o.loss) - loss) <= 1e-4 * std::max(1.0, std::abs(loss)));
            CHECK(testutil::rel_error(o.g, g) < 1e-3);
            CHECK(o.coef_tail_zero);
        }
        for (const auto mining : {siamese::Mining::All, siamese::Mining::Balanced}) {
            const float margin = 1.0f;
            std::vector<double> g(size_t(n) * E);
            const double loss =
                siamese::batch_contrastive_loss<double>(g.data(), embd.data(), id.data(), n, E, double(margin), mining);
            const Emulated o = emulate_contrastive(emb, id, n, E, margin, mining);
            // Sums of up to n^2 / 2 weighted terms of size ~1 in float.
            CHECK(std::abs(double(o.loss) - loss) <= 1e-5 * std::max(1.0, std::abs(loss)));
            CHECK(testutil::rel_error(o.g, g) < 1e-4);
            CHECK(o.coef_tail_zero);
        }
    }
}
