// A random problem for the fused tail (cuda/tail.cu) and its answer in double: shared by the
// [cuda] test of the kernel and the CPU test that runs the kernel's phases (tail_phases.hpp).
#pragma once
#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "cpu/dense.hpp"
#include "cpu/loss.hpp"
#include "siamese/philox.hpp"
#include "test_util.hpp"

namespace tailtest {

struct Problem {
    int count, I, O, first = 2;
    bool relu;
    float rate;
    uint64_t seed = 5, step = 9;
    uint32_t layer = 17;
    std::vector<double> v, hb, w, b;  // inputs (float values, held in double)
    std::vector<float> labels;        // first + count
    // The answer: the last layer's gradients, the penultimate's masked gradient and bias sums.
    std::vector<double> gw, gb, dh, ghb;
    double loss = 0;
    // The size gb would have if its terms did not cancel: || sum over rows of |g| ||. Without
    // the embedding ReLU a pair's two rows of g are exact opposites, so gb is 0 in exact
    // arithmetic and any fp32 sum is rounding noise of about 1e-7 of this.
    double gb_scale = 0;
};

// ||got - ref|| / max(||ref||, floor): the relative error, or (where ref cancels to nothing)
// the error against the size of what was summed.
template <class A>
double error_against(const A& got, const std::vector<double>& ref, double floor) {
    double num = 0, den = 0;
    for (size_t i = 0; i < ref.size(); ++i) {
        const double d = double(got[i]) - ref[i];
        num += d * d;
        den += ref[i] * ref[i];
    }
    return std::sqrt(num) / std::max({std::sqrt(den), floor, 1e-300});
}

// v: the penultimate GEMM's output; h = relu(v + hb) * dropout (the epilogue the tail applies),
// formed from the float values as the kernel does, then widened; the rest in double.
inline Problem make_problem(std::mt19937_64& r, int count, int I, int O, bool relu, float rate) {
    Problem p;
    p.count = count, p.I = I, p.O = O, p.relu = relu, p.rate = rate;
    const int n = 2 * count;
    p.v = testutil::random_vector(size_t(n) * I, r, -0.5, 1.0);
    p.hb = testutil::random_vector(I, r, -0.1, 0.1);
    for (double& x : p.v) x = double(float(x));
    for (double& x : p.hb) x = double(float(x));
    std::vector<double> h(p.v.size());
    const double keep_scale = rate > 0 ? 1.0 / (1.0 - double(float(rate))) : 1.0;
    for (int i = 0; i < n; ++i)
        for (int k = 0; k < I; ++k) {
            const float x = float(p.v[size_t(i) * I + k]) + float(p.hb[k]);
            const bool keep = rate <= 0 || siamese::dropout_keep(p.seed, p.step, p.layer, uint32_t(i), uint32_t(k), rate);
            h[size_t(i) * I + k] = x > 0 && keep ? double(x) * keep_scale : 0.0;
        }
    p.w = testutil::random_vector(size_t(O) * I, r, -0.2, 0.2);
    for (double& x : p.w) x = double(float(x));
    // Each output's bias redrawn until none of its pre-activations lies within 1e-5 of zero: fp32
    // and double must agree on which units the embedding ReLU passes (an indexing fault still
    // changes thousands). Column by column: at 8,193 pairs a whole-layer redraw took thousands of
    // tries (each of the 819,300 values near zero with probability ~1e-5), a minute of the test.
    std::vector<double> pre(size_t(n) * O);
    const std::vector<double> no_bias(O, 0.0);
    siamese::dense_forward(pre.data(), h.data(), p.w.data(), no_bias.data(), n, I, O, false);
    p.b.resize(O);
    for (int o = 0; o < O; ++o)
        for (double gap = 0; gap < 1e-5;) {
            p.b[o] = double(float(testutil::random_vector(1, r, -0.1, 0.1)[0]));
            gap = INFINITY;
            for (int i = 0; i < n; ++i) gap = std::min(gap, std::abs(pre[size_t(i) * O + o] + p.b[o]));
        }
    p.labels.resize(size_t(p.first + count));
    for (auto& y : p.labels) y = float(r() % 2);
    // e = relu?(h W^T + b); the loss and dL/de; through the ReLU; dense_backward; dh through h's
    // ReLU and dropout (h > 0: kept and active); its column sums.
    std::vector<double> e(size_t(n) * O), g(e.size());
    siamese::dense_forward(e.data(), h.data(), p.w.data(), p.b.data(), n, I, O, relu);
    p.loss = siamese::contrastive_loss<double>(g.data(), g.data() + size_t(count) * O, nullptr, e.data(),
                                               e.data() + size_t(count) * O, p.labels.data() + p.first, count, O, 1.0);
    if (relu)
        for (size_t k = 0; k < g.size(); ++k) g[k] = e[k] > 0 ? g[k] : 0.0;
    for (int o = 0; o < O; ++o) {
        double s = 0;
        for (int i = 0; i < n; ++i) s += std::abs(g[size_t(i) * O + o]);
        p.gb_scale += s * s;
    }
    p.gb_scale = std::sqrt(p.gb_scale);
    p.dh.assign(h.size(), 0), p.gw.assign(p.w.size(), 0), p.gb.assign(O, 0), p.ghb.assign(I, 0.0);
    siamese::dense_backward(p.dh.data(), p.gw.data(), p.gb.data(), g.data(), h.data(), p.w.data(), n, I, O);
    for (int i = 0; i < n; ++i)
        for (int k = 0; k < I; ++k) {
            double& x = p.dh[size_t(i) * I + k];
            x = h[size_t(i) * I + k] > 0 ? x * keep_scale : 0.0;
            p.ghb[k] += x;
        }
    return p;
}

// The shapes both tests run: (count, I, O): the recipe's 128 -> 50 at batch 1, 3, 128 and 257
// pairs (a short last block), odd small sizes, and a wide layer that fits only 1 or 2 pairs a block.
inline std::vector<std::tuple<int, int, int>> shapes() {
    return {{1, 128, 50}, {3, 128, 50}, {128, 128, 50}, {257, 128, 50}, {5, 17, 3}, {9, 600, 12}};
}

}  // namespace tailtest
