// The CPU engine's fast paths against the readable loops they replace: register-blocked
// convolution (forward and input gradient), the convolution and pool fused by bands of rows,
// the vectorized 2x2 pool, and the in-batch softmax loss's logit matrix give the SAME BITS as
// the plain loops (same chain of roundings per output), on shapes with and without a tail,
// filter counts of every blocking, in float (training) and double (the gradient checks).
#include <catch2/catch.hpp>

#include <array>
#include <cmath>
#include <cstring>
#include <limits>

#include "cpu/batch_loss.hpp"
#include "cpu/conv.hpp"
#include "cpu/dense.hpp"
#include "cpu/dropout.hpp"
#include "test_util.hpp"

using namespace siamese;

namespace {

template <class T>
std::vector<T> random_of(size_t n, std::mt19937_64& r, double lo = -1, double hi = 1) {
    const auto v = testutil::random_vector(n, r, lo, hi);
    return std::vector<T>(v.begin(), v.end());
}

template <class T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

// C, H, W, F: the recipe's two blocks, wider ones (F 16, 32), odd filter counts (blocking 1),
// and spans that are and are not multiples of a vector.
const std::vector<ConvShape> kShapes = {conv_shape(1, 56, 46, 6, 3, 2),  conv_shape(6, 27, 22, 12, 3, 2),
                                        conv_shape(1, 56, 46, 16, 3, 2), conv_shape(16, 27, 22, 32, 3, 2),
                                        conv_shape(3, 9, 11, 5, 3, 2),   conv_shape(4, 7, 7, 8, 2, 2),
                                        conv_shape(2, 6, 5, 3, 2, 1),    conv_shape(2, 11, 10, 3, 3, 3)};

template <class T>
void check_conv_shapes() {
    std::mt19937_64 r(sizeof(T) * 1000 + 7);
    for (const ConvShape& s : kShapes) {
        INFO("C" << s.C << " H" << s.H << " W" << s.W << " F" << s.F << " K" << s.K << " T" << sizeof(T));
        const auto in = random_of<T>(s.in_elems(), r), w = random_of<T>(size_t(s.F) * s.C * s.K * s.K, r),
                   b = random_of<T>(s.F, r);
        // Poisoned outputs: every position of the span is written by both.
        std::vector<T> plain(size_t(s.F) * s.Ho * s.W, T(-7)), fast(plain.size(), T(-7));
        conv_forward_plain(plain.data(), in.data(), w.data(), b.data(), s);
        conv_forward(fast.data(), in.data(), w.data(), b.data(), s);
        CHECK(same_bits(plain, fast));
        // Convolution and pool fused a band of rows at a time.
        std::vector<T> act_plain(s.out_elems(), T(-3)), act_fused(act_plain), band(conv_band_elems(s));
        std::vector<uint8_t> arg_plain(s.out_elems(), 99), arg_fused(arg_plain);
        relu_maxpool_forward_plain(act_plain.data(), arg_plain.data(), plain.data(), s);
        conv_relu_maxpool_forward(act_fused.data(), arg_fused.data(), in.data(), w.data(), b.data(), s, band.data());
        CHECK(same_bits(act_plain, act_fused));
        CHECK(arg_plain == arg_fused);

        std::vector<T> dconv(size_t(s.F) * conv_grad_elems(s), T(0));
        for (int f = 0; f < s.F; ++f)
            for (int y = 0; y < s.Ho; ++y)
                for (int x = 0; x < s.Wo; ++x)
                    if (r() % 4 == 0) dconv[f * conv_grad_elems(s) + conv_grad_pad(s) + y * s.W + x] = T(double(r() % 2001) / 1000.0 - 1.0);
        std::vector<T> din_plain(s.in_elems(), std::numeric_limits<T>::quiet_NaN()), din_fast(din_plain);
        conv_backward_input_plain(din_plain.data(), dconv.data(), w.data(), s);
        conv_backward_input(din_fast.data(), dconv.data(), w.data(), s);
        CHECK(same_bits(din_plain, din_fast));
        // The weight gradient (3x3 taps in one loop) accumulates onto the same starting values.
        auto dw_plain = random_of<T>(w.size(), r), db_plain = random_of<T>(b.size(), r);
        auto dw_fast = dw_plain, db_fast = db_plain;
        conv_backward_weights_plain(dw_plain.data(), db_plain.data(), dconv.data(), in.data(), s);
        conv_backward_weights(dw_fast.data(), db_fast.data(), dconv.data(), in.data(), s);
        CHECK(same_bits(dw_plain, dw_fast));
        CHECK(same_bits(db_plain, db_fast));
    }
}

}  // namespace

TEST_CASE("blocked convolution gives the plain loops' bits, forward, input and weight gradients", "[layers][fast]") {
    check_conv_shapes<float>();
    check_conv_shapes<double>();
}

TEST_CASE("the vectorized 2x2 pool gives the plain loop's values and argmax, NaN and ties included, and its gradient buffer", "[layers][fast]") {
    std::mt19937_64 r(91);
    for (const ConvShape& s : {conv_shape(1, 56, 46, 6, 3, 2), conv_shape(6, 27, 22, 12, 3, 2), conv_shape(2, 9, 12, 3, 2, 2),
                              conv_shape(1, 8, 66, 2, 3, 2), conv_shape(1, 8, 36, 2, 3, 2)}) {  // Wp 32, 17
        INFO("H" << s.H << " W" << s.W << " F" << s.F);
        auto conv = random_of<float>(size_t(s.F) * s.Ho * s.W, r);
        // Ties (the first position in scan order wins), NaN (taken wherever it is) and
        // all-negative windows (ReLU gives 0).
        for (size_t k = 0; k < conv.size(); ++k) {
            const auto u = r() % 50;
            if (u == 0) conv[k] = std::numeric_limits<float>::quiet_NaN();
            else if (u < 10) conv[k] = 0.25f;
            else if (u < 15) conv[k] = -std::fabs(conv[k]);
        }
        std::vector<float> a_plain(s.out_elems(), -1.0f), a_fast(a_plain);
        std::vector<uint8_t> g_plain(s.out_elems(), 99), g_fast(g_plain);
        relu_maxpool_forward_plain(a_plain.data(), g_plain.data(), conv.data(), s);
        relu_maxpool_forward(a_fast.data(), g_fast.data(), conv.data(), s);
        CHECK(same_bits(a_plain, a_fast));
        CHECK(g_plain == g_fast);
        // The rows that read past their last window (the banded forward's): the portable loop
        // and the one the engine runs (AVX-512 where the target has it), over a buffer whose
        // padding is NaN, which no stored window may take.
        std::vector<float> padded(conv);
        padded.resize(conv.size() + kPoolOverread, std::numeric_limits<float>::quiet_NaN());
        for (int variant = 0; variant < 2; ++variant) {
            INFO((variant == 0 ? "relu_maxpool2_row_padded" : "relu_maxpool2_row_fast"));
            std::vector<float> a_row(s.out_elems(), -1.0f);
            std::vector<uint8_t> g_row(s.out_elems(), 99);
            for (int f = 0; f < s.F; ++f)
                for (int py = 0; py < s.Hp; ++py) {
                    const float* r0 = padded.data() + (size_t(f) * s.Ho + py * 2) * s.W;
                    const size_t i = (size_t(f) * s.Hp + py) * s.Wp;
                    if (variant == 0) relu_maxpool2_row_padded(a_row.data() + i, g_row.data() + i, r0, r0 + s.W, s.Wp);
                    else relu_maxpool2_row_fast(a_row.data() + i, g_row.data() + i, r0, r0 + s.W, s.Wp);
                }
            CHECK(same_bits(a_plain, a_row));
            CHECK(g_plain == g_row);
        }
        // Backward: the gradient buffer the engine writes (AVX-512 where the target has it)
        // against the portable fill and scatter, every float of it, from NaN-poisoned buffers.
        // The pool's own argmax, so each window has one; a third of the units inactive.
        auto d_act = random_of<float>(s.out_elems(), r);
        for (size_t k = 0; k < d_act.size(); k += 3) a_plain[k] = r() % 2 ? 0.0f : -0.5f;
        const size_t elems = size_t(s.F) * conv_grad_elems(s);
        std::vector<float> d_portable(elems, std::numeric_limits<float>::quiet_NaN()), d_fast(d_portable);
        relu_maxpool_backward_portable(d_portable.data(), d_act.data(), a_plain.data(), g_plain.data(), s);
        relu_maxpool_backward(d_fast.data(), d_act.data(), a_plain.data(), g_plain.data(), s);
        CHECK(same_bits(d_portable, d_fast));
    }
}

namespace {

template <class T>
void check_dense_shapes() {
    std::mt19937_64 r(sizeof(T) * 31 + 5);
    for (auto [N, I, O] : std::vector<std::array<int, 3>>{{256, 1440, 128}, {256, 128, 50}, {7, 37, 5}, {3, 1, 2}}) {
        INFO("N" << N << " I" << I << " O" << O << " T" << sizeof(T));
        const auto X = random_of<T>(size_t(N) * I, r), Wt = random_of<T>(size_t(O) * I, r);
        auto dY = random_of<T>(size_t(N) * O, r);
        for (auto& g : dY)
            if (r() % 2) g = T(0);  // a ReLU zeroes about half
        const T nan = std::numeric_limits<T>::quiet_NaN();
        std::vector<T> dx_p(size_t(N) * I, nan), dw_p(size_t(O) * I, nan), db_p(O, nan);
        std::vector<T> dx_f(dx_p), dw_f(dw_p), db_f(db_p);
        dense_backward_plain(dx_p.data(), dw_p.data(), db_p.data(), dY.data(), X.data(), Wt.data(), N, I, O);
        dense_backward(dx_f.data(), dw_f.data(), db_f.data(), dY.data(), X.data(), Wt.data(), N, I, O);
        CHECK(same_bits(dx_p, dx_f));
        CHECK(same_bits(dw_p, dw_f));
        CHECK(same_bits(db_p, db_f));
        std::fill(dw_f.begin(), dw_f.end(), nan);
        dense_backward<T>(nullptr, dw_f.data(), db_f.data(), dY.data(), X.data(), Wt.data(), N, I, O);
        CHECK(same_bits(dw_p, dw_f));
        // Forward: four outputs of four rows in one loop (two where fewer are left).
        const auto bias = random_of<T>(size_t(O), r);
        for (bool relu : {false, true}) {
            std::vector<T> y_p(size_t(N) * O, nan), y_f(y_p);
            dense_forward_plain(y_p.data(), X.data(), Wt.data(), bias.data(), N, I, O, relu);
            dense_forward(y_f.data(), X.data(), Wt.data(), bias.data(), N, I, O, relu);
            CHECK(same_bits(y_p, y_f));
        }
    }
}

}  // namespace

TEST_CASE("blocked dense forward and backward give the plain loops' bits", "[layers][fast]") {
    check_dense_shapes<float>();
    check_dense_shapes<double>();
}

TEST_CASE("vectorized dropout draws each unit's own keep bit, across chunks and odd counts", "[layers][fast][dropout]") {
    std::mt19937_64 r(77);
    for (int count : {1, 7, 50, 64, 127, 1024, 1025, 1440, 3564}) {
        for (float rate : {0.0f, 0.1f, 0.25f, 0.9f}) {
            INFO("count " << count << " rate " << rate);
            const uint64_t seed = r(), step = (uint64_t(1) << 33) + r() % 1000;  // a step past 2^32 uses the key's high half
            const uint32_t layer = uint32_t(r() % 20);
            const int image = int(r() % 512);
            const auto x = random_of<float>(size_t(count), r);
            const float scale = dropout_keep_scale<float>(rate);
            // The portable loop, and the engine's (AVX-512 where the target has it).
            for (int variant = 0; variant < 2; ++variant) {
                INFO((variant == 0 ? "dropout_forward_portable" : "dropout_forward"));
                std::vector<float> y(count, -9.0f), mask(count, -9.0f);
                if (variant == 0) dropout_forward_portable(y.data(), mask.data(), x.data(), count, rate, seed, step, layer, image);
                else dropout_forward(y.data(), mask.data(), x.data(), count, rate, seed, step, layer, image);
                int wrong = 0;
                for (int k = 0; k < count; ++k) {
                    const bool kept = rate <= 0.0f || dropout_keep(seed, step, layer, uint32_t(image), uint32_t(k), rate);
                    const float m = kept ? scale : 0.0f;
                    wrong += mask[k] != m || y[k] != x[k] * m;
                }
                CHECK(wrong == 0);
            }
        }
    }
}

// The in-batch softmax loss: the logit matrix built with lanes across j, rows on threads, against
// the reference's row-by-row loops. Batches of 1 to 131 (odd sizes: a short last P-K batch),
// anchors without any partner among them, unit-length embeddings (logits up to 1/T = 20) and
// unnormalised ones; the gradient poisoned first (both fill it).
template <class T>
void check_softmax_loss() {
    std::mt19937_64 r(sizeof(T) * 77 + 5);
    for (const int n : {1, 2, 3, 17, 128, 131})
        for (const int E : {7, 50, 128})
            for (const bool unit : {true, false}) {
                INFO("n " << n << " E " << E << " unit " << unit << " T" << sizeof(T));
                std::vector<T> emb = random_of<T>(size_t(n) * E, r);
                if (unit)
                    for (int i = 0; i < n; ++i) {
                        T sq = 0;
                        for (int k = 0; k < E; ++k) sq += emb[size_t(i) * E + k] * emb[size_t(i) * E + k];
                        for (int k = 0; k < E; ++k) emb[size_t(i) * E + k] /= std::sqrt(sq);
                    }
                std::vector<int> id(static_cast<size_t>(n));
                for (int i = 0; i < n; ++i) id[i] = i % 5 == 4 ? 1000 + i : i / 8;  // every fifth alone
                const T t = T(0.05);
                std::vector<T> g_ref(size_t(n) * E, T(-9)), g_fast(g_ref);
                const T l_ref = batch_softmax_loss<T>(g_ref.data(), emb.data(), id.data(), n, E, t);
                const T l_fast = batch_softmax_loss_fast<T>(g_fast.data(), emb.data(), id.data(), n, E, t);
                CHECK(std::memcmp(&l_ref, &l_fast, sizeof(T)) == 0);
                CHECK(same_bits(g_ref, g_fast));
                CHECK(batch_softmax_loss_fast<T>(nullptr, emb.data(), id.data(), n, E, t) == l_ref);
                if (n > 3) CHECK(l_ref > T(0));  // the loss is not trivially zero here
            }
}

TEST_CASE("the in-batch softmax loss's fast form gives the reference's bits, loss and gradient", "[fast][pk]") {
    check_softmax_loss<float>();
    check_softmax_loss<double>();
}

// The in-batch contrastive loss: each row's squared distances with lanes across j, rows on
// threads, against the reference's row-by-row loops; both pair weightings, pairs closer than
// the margin and farther (unit embeddings: d up to 2; margin 0.5 and 1.5), an identical pair
// (the distance's clamp), batches of 1 to 131 and widths with and without a vector tail.
template <class T>
void check_contrastive_loss() {
    std::mt19937_64 r(sizeof(T) * 91 + 3);
    for (const int n : {1, 2, 3, 17, 128, 131})
        for (const int E : {7, 50, 128})
            for (const Mining m : {Mining::All, Mining::Balanced})
                for (const T margin : {T(0.5), T(1.5)}) {
                    INFO("n " << n << " E " << E << " balanced " << (m == Mining::Balanced) << " margin " << margin
                              << " T" << sizeof(T));
                    std::vector<T> emb = random_of<T>(size_t(n) * E, r);
                    for (int i = 0; i < n; ++i) {
                        T sq = 0;
                        for (int k = 0; k < E; ++k) sq += emb[size_t(i) * E + k] * emb[size_t(i) * E + k];
                        for (int k = 0; k < E; ++k) emb[size_t(i) * E + k] /= std::sqrt(sq);
                    }
                    if (n > 2) std::copy(emb.begin(), emb.begin() + E, emb.begin() + 2 * size_t(E));  // 0 == 2
                    std::vector<int> id(static_cast<size_t>(n));
                    for (int i = 0; i < n; ++i) id[i] = i % 5 == 4 ? 1000 + i : i / 8;
                    std::vector<T> g_ref(size_t(n) * E, T(-9)), g_fast(g_ref);
                    const T l_ref = batch_contrastive_loss<T>(g_ref.data(), emb.data(), id.data(), n, E, margin, m);
                    const T l_fast = batch_contrastive_loss_fast<T>(g_fast.data(), emb.data(), id.data(), n, E, margin, m);
                    CHECK(std::memcmp(&l_ref, &l_fast, sizeof(T)) == 0);
                    CHECK(same_bits(g_ref, g_fast));
                    CHECK(batch_contrastive_loss_fast<T>(nullptr, emb.data(), id.data(), n, E, margin, m) == l_ref);
                    if (n > 3) CHECK(l_ref > T(0));
                }
}

TEST_CASE("the in-batch contrastive loss's fast form gives the reference's bits, loss and gradient", "[fast][pk]") {
    check_contrastive_loss<float>();
    check_contrastive_loss<double>();
}
