// Finite-difference checks of every CPU layer in double precision. The functions checked are
// piecewise smooth; with random inputs no kink lies within h = 1e-6, so central differences
// agree with the analytic gradient to ~1e-9 relative (truncation O(h^2), rounding ~1e-16/h).
// Tolerance 1e-6 leaves room and still catches any indexing error (those give O(1) errors).
#include <catch2/catch.hpp>

#include "grad_check.hpp"
#include "cpu/conv.hpp"
#include "cpu/dense.hpp"
#include "cpu/loss.hpp"
#include "test_util.hpp"

using namespace siamese;
using testutil::numeric_gradient;
using testutil::rel_error;

TEST_CASE("conv forward equals a direct convolution", "[layers]") {
    std::mt19937_64 r(11);
    for (auto s : {conv_shape(1, 7, 5, 2, 3, 2), conv_shape(3, 6, 9, 4, 2, 2), conv_shape(2, 5, 5, 3, 1, 1)}) {
        auto in = testutil::random_vector(s.in_elems(), r), w = testutil::random_vector(size_t(s.F) * s.C * s.K * s.K, r),
             b = testutil::random_vector(s.F, r);
        std::vector<double> out(size_t(s.F) * s.Ho * s.W, std::nan(""));
        conv_forward(out.data(), in.data(), w.data(), b.data(), s);
        for (int f = 0; f < s.F; ++f)
            for (int y = 0; y < s.Ho; ++y)
                for (int x = 0; x < s.Wo; ++x) {
                    double ref = b[f];
                    for (int c = 0; c < s.C; ++c)
                        for (int ky = 0; ky < s.K; ++ky)
                            for (int kx = 0; kx < s.K; ++kx)
                                ref += w[((f * s.C + c) * s.K + ky) * s.K + kx] * in[(c * s.H + y + ky) * s.W + x + kx];
                    CHECK(out[(f * s.Ho + y) * s.W + x] == Approx(ref).epsilon(1e-12));
                }
    }
}

TEST_CASE("conv backward (weights, bias, input) matches finite differences", "[layers][gradcheck]") {
    std::mt19937_64 r(12);
    for (auto s : {conv_shape(1, 7, 6, 2, 3, 2), conv_shape(3, 8, 7, 4, 3, 2), conv_shape(2, 6, 5, 3, 2, 1)}) {
        auto in = testutil::random_vector(s.in_elems(), r), w = testutil::random_vector(size_t(s.F) * s.C * s.K * s.K, r),
             b = testutil::random_vector(s.F, r);
        const auto R = testutil::random_vector(size_t(s.F) * s.Ho * s.W, r);  // loss = sum over valid outputs of R*out
        std::vector<double> out(size_t(s.F) * s.Ho * s.W);
        auto loss = [&] {
            conv_forward(out.data(), in.data(), w.data(), b.data(), s);
            double L = 0;
            for (int f = 0; f < s.F; ++f)
                for (int y = 0; y < s.Ho; ++y)
                    for (int x = 0; x < s.Wo; ++x) L += R[(f * s.Ho + y) * s.W + x] * out[(f * s.Ho + y) * s.W + x];
            return L;
        };
        std::vector<double> dconv(size_t(s.F) * conv_grad_elems(s), 0.0);
        for (int f = 0; f < s.F; ++f)
            for (int y = 0; y < s.Ho; ++y)
                for (int x = 0; x < s.Wo; ++x)
                    dconv[f * conv_grad_elems(s) + conv_grad_pad(s) + y * s.W + x] = R[(f * s.Ho + y) * s.W + x];
        std::vector<double> dw(w.size(), 0.0), db(b.size(), 0.0), din(in.size(), std::nan(""));
        conv_backward_weights(dw.data(), db.data(), dconv.data(), in.data(), s);
        conv_backward_input(din.data(), dconv.data(), w.data(), s);
        CHECK(rel_error(dw, numeric_gradient(w, loss)) < 1e-6);
        CHECK(rel_error(db, numeric_gradient(b, loss)) < 1e-6);
        CHECK(rel_error(din, numeric_gradient(in, loss)) < 1e-6);
    }
}

TEST_CASE("relu + maxpool forward and backward", "[layers][gradcheck]") {
    std::mt19937_64 r(13);
    for (auto s : {conv_shape(1, 9, 8, 3, 2, 2), conv_shape(1, 10, 11, 2, 3, 3)}) {
        auto conv = testutil::random_vector(size_t(s.F) * s.Ho * s.W, r);
        const auto R = testutil::random_vector(s.out_elems(), r);
        std::vector<double> act(s.out_elems());
        std::vector<uint8_t> arg(s.out_elems());
        auto loss = [&] {
            relu_maxpool_forward(act.data(), arg.data(), conv.data(), s);
            double L = 0;
            for (int i = 0; i < s.out_elems(); ++i) L += R[i] * act[i];
            return L;
        };
        loss();
        for (int f = 0; f < s.F; ++f)  // forward against a direct max
            for (int py = 0; py < s.Hp; ++py)
                for (int px = 0; px < s.Wp; ++px) {
                    double m = -1e300;
                    for (int dy = 0; dy < s.P; ++dy)
                        for (int dx = 0; dx < s.P; ++dx) m = std::max(m, conv[(f * s.Ho + py * s.P + dy) * s.W + px * s.P + dx]);
                    CHECK(act[(f * s.Hp + py) * s.Wp + px] == std::max(m, 0.0));
                }
        std::vector<double> dconv(size_t(s.F) * conv_grad_elems(s), std::nan(""));
        relu_maxpool_backward(dconv.data(), R.data(), act.data(), arg.data(), s);
        std::vector<double> analytic(conv.size());
        for (int f = 0; f < s.F; ++f)
            for (int p = 0; p < s.Ho * s.W; ++p) analytic[f * s.Ho * s.W + p] = dconv[f * conv_grad_elems(s) + conv_grad_pad(s) + p];
        CHECK(rel_error(analytic, numeric_gradient(conv, loss)) < 1e-6);
    }
}

TEST_CASE("dense forward and backward match finite differences", "[layers][gradcheck]") {
    std::mt19937_64 r(14);
    for (int N : {1, 5, 9})
        for (bool relu : {false, true}) {
            const int I = 13, O = 7;
            auto X = testutil::random_vector(size_t(N) * I, r), W = testutil::random_vector(size_t(O) * I, r),
                 b = testutil::random_vector(O, r);
            const auto R = testutil::random_vector(size_t(N) * O, r);
            std::vector<double> Y(size_t(N) * O);
            auto loss = [&] {
                dense_forward(Y.data(), X.data(), W.data(), b.data(), N, I, O, relu);
                double L = 0;
                for (size_t i = 0; i < Y.size(); ++i) L += R[i] * Y[i];
                return L;
            };
            loss();
            std::vector<double> dY(R);
            if (relu)
                for (size_t i = 0; i < Y.size(); ++i) dY[i] *= Y[i] > 0;
            std::vector<double> dX(X.size(), std::nan("")), dW(W.size(), std::nan("")), db(O, std::nan(""));
            dense_backward(dX.data(), dW.data(), db.data(), dY.data(), X.data(), W.data(), N, I, O);
            CHECK(rel_error(dX, numeric_gradient(X, loss)) < 1e-6);
            CHECK(rel_error(dW, numeric_gradient(W, loss)) < 1e-6);
            CHECK(rel_error(db, numeric_gradient(b, loss)) < 1e-6);
        }
}

TEST_CASE("distance + contrastive loss: value and gradients", "[layers][loss][gradcheck]") {
    std::mt19937_64 r(15);
    const int B = 6, E = 5;
    auto ea = testutil::random_vector(B * E, r, 0, 0.5), eb = testutil::random_vector(B * E, r, 0, 0.5);
    const std::vector<float> y = {1, 0, 1, 0, 0, 1};
    const double margin = 1.0;
    auto loss = [&] { return contrastive_loss<double>(nullptr, nullptr, nullptr, ea.data(), eb.data(), y.data(), B, E, margin); };
    double ref = 0;  // the formula written out
    for (int i = 0; i < B; ++i) {
        double s = 0;
        for (int k = 0; k < E; ++k) s += (ea[i * E + k] - eb[i * E + k]) * (ea[i * E + k] - eb[i * E + k]);
        const double d = std::sqrt(s);
        ref += y[i] * d * d + (1 - y[i]) * std::pow(std::max(margin - d, 0.0), 2);
    }
    CHECK(loss() == Approx(ref / B).epsilon(1e-12));
    std::vector<double> ga(B * E), gb(B * E), dist(B);
    contrastive_loss<double>(ga.data(), gb.data(), dist.data(), ea.data(), eb.data(), y.data(), B, E, margin);
    CHECK(rel_error(ga, numeric_gradient(ea, loss)) < 1e-6);
    CHECK(rel_error(gb, numeric_gradient(eb, loss)) < 1e-6);

    // d = 0 (identical embeddings): finite loss and zero gradient, not NaN.
    std::vector<double> same(E, 0.3);
    const float one = 1.0f, zero = 0.0f;
    std::vector<double> g1(E), g2(E);
    const double l1 = contrastive_loss<double>(g1.data(), g2.data(), nullptr, same.data(), same.data(), &one, 1, E, margin);
    CHECK(l1 == Approx(kDistanceEps));
    for (double g : g1) CHECK(g == 0.0);
    const double l0 = contrastive_loss<double>(g1.data(), g2.data(), nullptr, same.data(), same.data(), &zero, 1, E, margin);
    CHECK(std::isfinite(l0));
    for (double g : g1) CHECK(std::isfinite(g));
}

TEST_CASE("ReLU and max-pool keep NaN, so a diverged network stays non-finite", "[layers]") {
    // The rules of include/siamese/rules.hpp, used by the CPU layers and the CUDA kernels alike.
    const double nan = std::nan("");
    CHECK(std::isnan(relu(nan)));
    CHECK(relu(-2.0) == 0.0);
    CHECK(relu(3.0) == 3.0);
    CHECK(pool_takes(nan, 1.0));
    CHECK_FALSE(pool_takes(1.0, nan));  // once NaN, the window stays NaN
    CHECK_FALSE(pool_takes(1.0, 1.0));  // ties keep the first position
    const ConvShape s = conv_shape(1, 4, 4, 1, 1, 2);
    std::vector<double> conv(size_t(s.Ho) * s.W, -1.0);
    conv[1] = nan;  // window (0,0), second position
    std::vector<double> act(s.out_elems());
    std::vector<uint8_t> arg(s.out_elems());
    relu_maxpool_forward(act.data(), arg.data(), conv.data(), s);
    CHECK(std::isnan(act[0]));
    CHECK(act[1] == 0.0);  // all -1: ReLU gives 0
    std::vector<double> x{nan, 1.0}, w{1.0, 1.0}, b{0.0}, y(1);
    dense_forward(y.data(), x.data(), w.data(), b.data(), 1, 2, 1, true);
    CHECK(std::isnan(y[0]));
}

TEST_CASE("dropout: one Philox call per four units gives each unit's own draw", "[layers][dropout]") {
    // dropout_keep_mask4 (used by the CPU twin and every CUDA kernel) must equal the unit-wise
    // dropout_keep for each of its four units: the two engines then drop the same units.
    std::mt19937_64 r(12);
    for (int t = 0; t < 2000; ++t) {
        const uint64_t seed = r(), step = r() % 100000;
        const uint32_t layer = uint32_t(r() % 20), image = uint32_t(r() % 512), group = uint32_t(r() % 1000);
        const float rate = float(r() % 100) / 100.0f;
        const unsigned m = dropout_keep_mask4(seed, step, layer, image, group, rate);
        for (unsigned j = 0; j < 4; ++j)
            REQUIRE(bool((m >> j) & 1u) == (rate <= 0.0f || dropout_keep(seed, step, layer, image, 4 * group + j, rate)));
    }
}
