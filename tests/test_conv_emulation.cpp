// The tiled convolution kernels' own code (cuda/conv_phases.hpp, the phases cuda/conv.cu runs
// with a barrier between each) run on the CPU: every block, every phase, every thread of 256 in
// turn, shared memory poisoned with NaN first, against a double reference written out here.
// Also the recipes' fixed-shape instantiations against the run-time ones, bit for bit. So the
// tiled kernels' indexing is tested where no GPU exists ([cuda] tests run the kernels themselves).
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "colsum_emulation.hpp"
#include "conv_phases.hpp"
#include "pixels.hpp"
#include "siamese/augment.hpp"
#include "test_util.hpp"

using namespace siamese;
using namespace siamese::cuda;

namespace {

constexpr int kThreads = 256;
const float kNaN = std::numeric_limits<float>::quiet_NaN();

std::vector<float> to_float(const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); }

// The conv output at (f, oy, ox), bias included, in double.
double conv_at(const ConvShape& s, const std::vector<float>& x, const std::vector<float>& w,
               const std::vector<float>& b, int i, int f, int oy, int ox) {
    double acc = b[f];
    for (int c = 0; c < s.C; ++c)
        for (int ky = 0; ky < s.K; ++ky)
            for (int kx = 0; kx < s.K; ++kx)
                acc += double(w[((f * s.C + c) * s.K + ky) * s.K + kx]) *
                       x[size_t(i) * s.in_elems() + (c * s.H + oy + ky) * s.W + ox + kx];
    return acc;
}

// x: the images, a float pointer or a pixel type of pixels.hpp (the FP16 bank).
template <class S, class X>
void emulate_forward(const S& shape, const ConvShape& s, int n, X x, const std::vector<float>& w,
                     const std::vector<float>& b, float rate, std::vector<float>& out, std::vector<uint8_t>& arg,
                     uint32_t layer_id = 7) {
    const int groups = (s.out_elems() + 3) / 4, chunks = (groups + kThreads - 1) / kThreads;
    out.assign(size_t(n) * s.out_elems(), kNaN);
    arg.assign(out.size(), 0xFF);
    std::vector<float> sm(tiled_forward_smem_floats(shape));
    for (int blk = 0; blk < n * chunks; ++blk) {
        const int i = blk / chunks, chunk = blk % chunks;
        std::fill(sm.begin(), sm.end(), kNaN);
        for (int t = 0; t < kThreads; ++t)
            tiled_forward_stage(shape, x + size_t(i) * s.in_elems(), w.data(), b.data(), sm.data(), t, kThreads);
        for (int t = 0; t < kThreads; ++t)
            tiled_forward_compute(shape, i, chunk, sm.data(), out.data(), arg.data(), rate, 3, layer_id, 11, t, kThreads);
    }
}

template <class S>
std::vector<float> emulate_input_grad(const S& shape, const ConvShape& s, int n, const std::vector<float>& g,
                                      const std::vector<float>* y, float scale, const std::vector<uint8_t>& arg,
                                      const std::vector<float>& w) {
    const int per_chunk = 4 * kThreads, chunks = (s.in_elems() + per_chunk - 1) / per_chunk;
    std::vector<float> din(size_t(n) * s.in_elems(), kNaN);
    std::vector<float> sm(size_t(s.F) * s.Hp * s.P * s.Wp * s.P + size_t(s.F) * s.C * s.K * s.K);
    for (int blk = 0; blk < n * chunks; ++blk) {
        const int i = blk / chunks, chunk = blk % chunks;
        std::fill(sm.begin(), sm.end(), kNaN);
        for (int t = 0; t < kThreads; ++t) tiled_input_grad_clear(shape, w.data(), sm.data(), t, kThreads);
        for (int t = 0; t < kThreads; ++t)
            tiled_input_grad_scatter(shape, i, g.data(), y ? y->data() : nullptr, scale, arg.data(), sm.data(), t, kThreads);
        for (int t = 0; t < kThreads; ++t)
            tiled_input_grad_compute(shape, i, chunk, per_chunk, sm.data(), din.data(), t, kThreads);
    }
    return din;
}

// Blocks of `chunk` images; each block's sums into partial, then the blocks' sums added up as the
// last block (or column_sums) adds them.
template <class S, class X>
std::vector<float> emulate_wgrad(const S& shape, const ConvShape& s, int n, int chunk, X x,
                                 const std::vector<float>& g, const std::vector<float>* y, float scale,
                                 const std::vector<uint8_t>& arg) {
    const int nwb = wgrad_params(s), split = nwb < kThreads ? kThreads / nwb : 1, blocks = (n + chunk - 1) / chunk;
    const size_t pooled = size_t(s.out_elems());
    std::vector<float> sm(size_t(s.in_elems()) + pooled + (split > 1 ? size_t(split) * nwb : 0) + (pooled + 3) / 4);
    std::vector<float> partial(size_t(blocks) * nwb, kNaN);
    std::vector<float> acc(size_t(kThreads) * kWgradPerThread);
    for (int blk = 0; blk < blocks; ++blk) {
        std::fill(sm.begin(), sm.end(), kNaN);
        std::fill(acc.begin(), acc.end(), 0.0f);
        const WgradTiles tiles = wgrad_tiles(shape, sm.data(), split);
        for (int i = blk * chunk; i < std::min(n, (blk + 1) * chunk); ++i) {
            for (int t = 0; t < kThreads; ++t)
                tiled_wgrad_stage(shape, i, x + size_t(i) * s.in_elems(), g.data(), y ? y->data() : nullptr, scale,
                                  arg.data(), tiles, t, kThreads);
            for (int t = 0; t < kThreads; ++t)
                tiled_wgrad_accumulate(shape, tiles, split, acc.data() + size_t(t) * kWgradPerThread, t, kThreads);
        }
        float* dst = partial.data() + size_t(blk) * nwb;
        for (int t = 0; t < kThreads; ++t)
            tiled_wgrad_write(shape, tiles, split, acc.data() + size_t(t) * kWgradPerThread, dst, t, kThreads);
        if (split > 1)
            for (int t = 0; t < kThreads; ++t) tiled_wgrad_sum_slices(shape, tiles, split, dst, t, kThreads);
    }
    std::vector<float> wb(nwb, kNaN);
    colsumtest::emulate_block_column_sums(partial.data(), blocks, nwb, nwb, kThreads, [&](int j, float v) { wb[j] = v; });
    return wb;
}

// A forward pass's pooled values against the double max of each window, ReLU'd (the argmax may
// differ only in a near-tie: then the values still agree to rounding). No dropout.
void check_forward(const ConvShape& s, int n, const std::vector<float>& x, const std::vector<float>& w,
                   const std::vector<float>& b, const std::vector<float>& out, const std::vector<uint8_t>& arg) {
    double worst = 0;
    long bad_arg = 0;
    for (int i = 0; i < n; ++i)
        for (int f = 0; f < s.F; ++f)
            for (int py = 0; py < s.Hp; ++py)
                for (int px = 0; px < s.Wp; ++px) {
                    double best = -INFINITY, second = -INFINITY;
                    int at = 0;
                    for (int d = 0; d < s.P * s.P; ++d) {
                        const double v = conv_at(s, x, w, b, i, f, py * s.P + d / s.P, px * s.P + d % s.P);
                        if (v > best) second = best, best = v, at = d;
                        else if (v > second) second = v;
                    }
                    const size_t o = size_t(i) * s.out_elems() + (size_t(f) * s.Hp + py) * s.Wp + px;
                    worst = std::max(worst, std::abs(double(out[o]) - std::max(best, 0.0)));
                    bad_arg += arg[o] != at && best - second > 1e-5;
                }
    CHECK(worst < 1e-5);  // sums of up to C*K*K + 1 fp32 terms of size ~1
    CHECK(bad_arg == 0);
}

// The backward pass in double from the pooled gradient g at the argmax arg, read raw or (y set)
// masked as the fused kernels read it: y > 0 ? g * scale : 0.
void reference_backward(const ConvShape& s, int n, const std::vector<float>& x, const std::vector<float>& w,
                        const std::vector<float>& g, const std::vector<float>* y, float scale,
                        const std::vector<uint8_t>& arg, std::vector<double>& din, std::vector<double>& dw,
                        std::vector<double>& db) {
    din.assign(x.size(), 0.0), dw.assign(w.size(), 0.0), db.assign(s.F, 0.0);
    for (int i = 0; i < n; ++i)
        for (int f = 0; f < s.F; ++f)
            for (int p = 0; p < s.Hp * s.Wp; ++p) {
                const size_t o = size_t(i) * s.out_elems() + size_t(f) * s.Hp * s.Wp + p;
                const double ge = y ? ((*y)[o] > 0 ? double(g[o] * scale) : 0.0) : g[o];
                const int oy = (p / s.Wp) * s.P + arg[o] / s.P, ox = (p % s.Wp) * s.P + arg[o] % s.P;
                db[f] += ge;
                for (int c = 0; c < s.C; ++c)
                    for (int ky = 0; ky < s.K; ++ky)
                        for (int kx = 0; kx < s.K; ++kx) {
                            const size_t wi = ((size_t(f) * s.C + c) * s.K + ky) * s.K + kx;
                            const size_t xi = size_t(i) * s.in_elems() + (size_t(c) * s.H + oy + ky) * s.W + ox + kx;
                            din[xi] += ge * w[wi];
                            dw[wi] += ge * x[xi];
                        }
            }
}

// Every check on one shape type (the run-time ConvShape, or a FixedShape equal to s).
template <class S>
void check_shape(const S& shape, const ConvShape& s, int n, std::mt19937_64& r) {
    const auto x = to_float(testutil::random_vector(size_t(n) * s.in_elems(), r, 0, 1));
    const auto w = to_float(testutil::random_vector(size_t(s.F) * s.C * s.K * s.K, r, -0.5, 0.5));
    const auto b = to_float(testutil::random_vector(s.F, r, -0.1, 0.1));
    // Forward, no dropout: every pooled value against the double max of its window (the argmax
    // may differ only in a near-tie: then the values still agree to rounding).
    std::vector<float> out;
    std::vector<uint8_t> arg;
    emulate_forward(shape, s, n, x.data(), w, b, 0.0f, out, arg);
    check_forward(s, n, x, w, b, out, arg);
    // Backward from a random pooled gradient, read raw and (fused) masked by an output y.
    auto g = to_float(testutil::random_vector(out.size(), r));
    auto y = to_float(testutil::random_vector(out.size(), r, -1, 1));
    for (float& v : y) v = v > 0 ? v : 0.0f;
    for (const bool masked : {false, true}) {
        INFO("masked " << masked);
        const float scale = masked ? 1.0f / 0.75f : 1.0f;
        std::vector<double> din, dw, db;
        reference_backward(s, n, x, w, g, masked ? &y : nullptr, scale, arg, din, dw, db);
        const auto gi = emulate_input_grad(shape, s, n, g, masked ? &y : nullptr, scale, arg, w);
        CHECK(testutil::rel_error(gi, din) < 1e-5);
        if (wgrad_params(s) <= kWgradPerThread * kThreads) {  // larger layers take the untiled kernel
            const auto wb = emulate_wgrad(shape, s, n, 2, x.data(), g, masked ? &y : nullptr, scale, arg);
            CHECK(testutil::rel_error(std::vector<float>(wb.begin(), wb.begin() + long(w.size())), dw) < 1e-4);
            CHECK(testutil::rel_error(std::vector<float>(wb.begin() + long(w.size()), wb.end()), db) < 1e-4);
        }
    }
}

}  // namespace

TEST_CASE("the tiled conv kernels' phases, run on the CPU, match a double reference", "[conv][tiled][emulation]") {
    std::mt19937_64 r(501);
    // The recipe's two blocks, a non-square odd one, other kernel/pool sizes, the strong
    // recipe's second block, and one too wide for the tiled weight gradient.
    for (const ConvShape& s : {conv_shape(1, 56, 46, 6, 3, 2), conv_shape(6, 27, 22, 12, 3, 2), conv_shape(3, 13, 9, 5, 2, 3),
                               conv_shape(2, 11, 17, 7, 5, 1), conv_shape(16, 27, 22, 32, 3, 2), conv_shape(64, 5, 5, 16, 3, 1)})
        for (int n : {1, 3}) {
            INFO("C" << s.C << " H" << s.H << " W" << s.W << " F" << s.F << " K" << s.K << " P" << s.P << " n" << n);
            check_shape(s, s, n, r);
        }
}

TEST_CASE("the fixed-shape instantiations compute what the run-time shape computes, bit for bit", "[conv][tiled][emulation]") {
    // FixedShape's constants (Ho, Hp, in_elems...) must equal conv_shape's: the same phases on
    // either type give the same bits.
    std::mt19937_64 r(502);
    auto same = [&](auto fixed) {
        using F = decltype(fixed);
        const ConvShape s = conv_shape(F::C, F::H, F::W, F::F, F::K, F::P);
        REQUIRE(F::matches(s));
        CHECK(F::Ho == s.Ho);
        CHECK(F::Wp == s.Wp);
        CHECK(F::out_elems() == s.out_elems());
        const int n = 2;
        const auto x = to_float(testutil::random_vector(size_t(n) * s.in_elems(), r, 0, 1));
        const auto w = to_float(testutil::random_vector(size_t(s.F) * s.C * s.K * s.K, r, -0.5, 0.5));
        const auto b = to_float(testutil::random_vector(s.F, r, -0.1, 0.1));
        std::vector<float> o1, o2;
        std::vector<uint8_t> a1, a2;
        emulate_forward(s, s, n, x.data(), w, b, 0.25f, o1, a1);
        emulate_forward(fixed, s, n, x.data(), w, b, 0.25f, o2, a2);
        CHECK(std::memcmp(o1.data(), o2.data(), o1.size() * sizeof(float)) == 0);
        CHECK(a1 == a2);
        const auto g = to_float(testutil::random_vector(o1.size(), r));
        const auto d1 = emulate_input_grad(s, s, n, g, nullptr, 1.0f, a1, w);
        const auto d2 = emulate_input_grad(fixed, s, n, g, nullptr, 1.0f, a1, w);
        CHECK(std::memcmp(d1.data(), d2.data(), d1.size() * sizeof(float)) == 0);
        const auto w1 = emulate_wgrad(s, s, n, 1, x.data(), g, nullptr, 1.0f, a1);
        const auto w2 = emulate_wgrad(fixed, s, n, 1, x.data(), g, nullptr, 1.0f, a1);
        CHECK(std::memcmp(w1.data(), w2.data(), w1.size() * sizeof(float)) == 0);
    };
    same(FixedShape<1, 56, 46, 6, 3, 2>{});
    same(FixedShape<6, 27, 22, 12, 3, 2>{});
    same(FixedShape<1, 56, 46, 16, 3, 2>{});
    same(FixedShape<16, 27, 22, 32, 3, 2>{});
}

namespace {

// conv_pair_forward_tiled's kernel, block by block: a block per image stages it, runs a's compute
// phase over all its chunks, then (after the kernel's barrier) stages b from a's output of that
// image and runs b's: shared memory poisoned first, as for the single-block kernels.
template <class A, class B>
void emulate_pair_forward(const A& sa, const B& sb, int n, const std::vector<float>& x, const std::vector<float>& wa,
                          const std::vector<float>& ba, const std::vector<float>& wb, const std::vector<float>& bb,
                          float rate, std::vector<float>& out_a, std::vector<uint8_t>& arg_a, std::vector<float>& out_b,
                          std::vector<uint8_t>& arg_b) {
    out_a.assign(size_t(n) * sa.out_elems(), kNaN), arg_a.assign(out_a.size(), 0xFF);
    out_b.assign(size_t(n) * sb.out_elems(), kNaN), arg_b.assign(out_b.size(), 0xFF);
    std::vector<float> sm(std::max(tiled_forward_smem_floats(sa), tiled_forward_smem_floats(sb)));
    for (int i = 0; i < n; ++i) {
        std::fill(sm.begin(), sm.end(), kNaN);
        for (int t = 0; t < kThreads; ++t)
            tiled_forward_stage(sa, x.data() + size_t(i) * sa.in_elems(), wa.data(), ba.data(), sm.data(), t, kThreads);
        for (int c = 0; c < tiled_forward_chunks(sa, kThreads); ++c)
            for (int t = 0; t < kThreads; ++t)
                tiled_forward_compute(sa, i, c, sm.data(), out_a.data(), arg_a.data(), rate, 3, 7, 11, t, kThreads);
        for (int t = 0; t < kThreads; ++t)
            tiled_forward_stage(sb, out_a.data() + size_t(i) * sa.out_elems(), wb.data(), bb.data(), sm.data(), t, kThreads);
        for (int c = 0; c < tiled_forward_chunks(sb, kThreads); ++c)
            for (int t = 0; t < kThreads; ++t)
                tiled_forward_compute(sb, i, c, sm.data(), out_b.data(), arg_b.data(), rate, 3, 8, 11, t, kThreads);
    }
}

}  // namespace

TEST_CASE("conv1 and conv2 forward in one block per image give the two launches' bits", "[conv][tiled][emulation]") {
    // conv_pair_forward_tiled (--conv tiled --fused) against the two single-layer tiled launches,
    // dropout on, the recipes' pairs (fixed and run-time shapes) and an odd one.
    std::mt19937_64 r(503);
    auto check_pair = [&](auto fa, auto fb, const ConvShape& a, const ConvShape& b) {
        REQUIRE(b.C == a.F);
        REQUIRE(b.H == a.Hp);
        REQUIRE(b.W == a.Wp);
        for (int n : {1, 3}) {
            INFO("a C" << a.C << " F" << a.F << ", b F" << b.F << ", n " << n);
            const auto x = to_float(testutil::random_vector(size_t(n) * a.in_elems(), r, 0, 1));
            const auto wa = to_float(testutil::random_vector(size_t(a.F) * a.C * a.K * a.K, r, -0.5, 0.5));
            const auto ba = to_float(testutil::random_vector(a.F, r, -0.1, 0.1));
            const auto wb = to_float(testutil::random_vector(size_t(b.F) * b.C * b.K * b.K, r, -0.5, 0.5));
            const auto bb = to_float(testutil::random_vector(b.F, r, -0.1, 0.1));
            std::vector<float> oa, ob, ra, rb;
            std::vector<uint8_t> aa, ab, qa, qb;
            emulate_pair_forward(fa, fb, n, x, wa, ba, wb, bb, 0.25f, oa, aa, ob, ab);
            // The two launches: layer ids 7 and 8, b reading a's output.
            emulate_forward(a, a, n, x.data(), wa, ba, 0.25f, ra, qa, 7);
            emulate_forward(b, b, n, ra.data(), wb, bb, 0.25f, rb, qb, 8);
            CHECK(std::memcmp(oa.data(), ra.data(), oa.size() * sizeof(float)) == 0);
            CHECK(aa == qa);
            CHECK(std::memcmp(ob.data(), rb.data(), ob.size() * sizeof(float)) == 0);
            CHECK(ab == qb);
            CHECK(std::count_if(ob.begin(), ob.end(), [](float v) { return v > 0.0f; }) > 0);  // not all dropped or dead
        }
    };
    const ConvShape r1 = conv_shape(1, 56, 46, 6, 3, 2), r2 = conv_shape(6, 27, 22, 12, 3, 2);
    check_pair(FixedShape<1, 56, 46, 6, 3, 2>{}, FixedShape<6, 27, 22, 12, 3, 2>{}, r1, r2);
    check_pair(r1, r2, r1, r2);
    const ConvShape s1 = conv_shape(1, 56, 46, 16, 3, 2), s2 = conv_shape(16, 27, 22, 32, 3, 2);
    check_pair(FixedShape<1, 56, 46, 16, 3, 2>{}, FixedShape<16, 27, 22, 32, 3, 2>{}, s1, s2);
    const ConvShape o1 = conv_shape(2, 13, 11, 3, 3, 2), o2 = conv_shape(3, 5, 4, 4, 2, 1);
    check_pair(o1, o2, o1, o2);
}

TEST_CASE("an FP16 bank read through HalfPixels gives the bits of FP32 images holding its values", "[conv][tiled][emulation][half]") {
    // --half-bank: the conv kernels, the augment and the mirror read the bank through
    // HalfPixels (pixels.hpp), widening each pixel as it loads it. Widening is exact, so every
    // phase must give the bits it gives on FP32 images that hold the rounded values: the tiled
    // forward and weight gradient (run-time and fixed shape), the custom kernels' conv values and
    // weight-gradient terms, and the augmentation's bilinear views.
    std::mt19937_64 r(77);
    const ConvShape s = conv_shape(1, 56, 46, 6, 3, 2);
    const int n = 3;
    const auto raw = to_float(testutil::random_vector(size_t(n) * s.in_elems(), r, 0, 1));
    std::vector<uint16_t> h(raw.size());
    std::vector<float> rounded(raw.size());
    for (size_t k = 0; k < raw.size(); ++k) {
        h[k] = half_from_float(raw[k]);
        rounded[k] = half_round(raw[k]);
    }
    REQUIRE(rounded != raw);  // the rounding changes the images: the comparison below means something
    const HalfPixels hp{h.data()};
    const auto w = to_float(testutil::random_vector(size_t(s.F) * s.C * s.K * s.K, r, -0.5, 0.5));
    const auto b = to_float(testutil::random_vector(s.F, r, -0.1, 0.1));
    auto bits_equal = [](const std::vector<float>& a, const std::vector<float>& c) {
        return a.size() == c.size() && std::memcmp(a.data(), c.data(), a.size() * sizeof(float)) == 0;
    };
    auto both = [&](auto shape) {
        std::vector<float> o1, o2;
        std::vector<uint8_t> a1, a2;
        emulate_forward(shape, s, n, rounded.data(), w, b, 0.25f, o1, a1);
        emulate_forward(shape, s, n, hp, w, b, 0.25f, o2, a2);
        CHECK(bits_equal(o1, o2));
        CHECK(a1 == a2);
        const auto g = to_float(testutil::random_vector(o1.size(), r));
        CHECK(bits_equal(emulate_wgrad(shape, s, n, 2, rounded.data(), g, nullptr, 1.0f, a1),
                         emulate_wgrad(shape, s, n, 2, hp, g, nullptr, 1.0f, a1)));
        // The custom kernels' per-thread code: conv values and weight-gradient terms.
        long differ = 0;
        for (int i = 0; i < n; ++i)
            for (int f = 0; f < s.F; ++f)
                for (int oy = 0; oy < s.Ho; oy += 5)
                    for (int ox = 0; ox < s.Wo; ox += 3) {
                        const float u = conv_value(shape, rounded.data() + size_t(i) * s.in_elems(), w.data(), b.data(), f, oy, ox, s.W);
                        const float v = conv_value(shape, hp + size_t(i) * s.in_elems(), w.data(), b.data(), f, oy, ox, s.W);
                        differ += std::memcmp(&u, &v, sizeof u) != 0;
                    }
        for (int j = 0; j < wgrad_params(s); ++j) {
            const float u = wgrad_terms(shape, j, g.data(), nullptr, 1.0f, a1.data(), rounded.data(), 0, 1, 0.0f);
            const float v = wgrad_terms(shape, j, g.data(), nullptr, 1.0f, a1.data(), hp, 0, 1, 0.0f);
            differ += std::memcmp(&u, &v, sizeof u) != 0;
        }
        CHECK(differ == 0);
    };
    both(s);
    both(FixedShape<1, 56, 46, 6, 3, 2>{});
    // The augmentation's views (bilinear reads of four pixels) from either bank.
    AugmentConfig c;
    c.enabled = true;
    long differ = 0;
    for (uint32_t i = 0; i < 4; ++i) {
        const Warp wp = augment_draw(c, 5, 9, i, s.H, s.W);
        for (int y = 0; y < s.H; ++y)
            for (int x = 0; x < s.W; ++x) {
                const float u = augment_pixel(rounded.data(), s.H, s.W, wp, y, x), v = augment_pixel(hp, s.H, s.W, wp, y, x);
                differ += std::memcmp(&u, &v, sizeof u) != 0;
            }
    }
    CHECK(differ == 0);
}

namespace {

// The custom (default) kernels of cuda/conv.cu, thread by thread: conv_pool_forward_kernel's
// conv_pool_group over every (image, group of four outputs), the images read in place (rows W
// apart); conv_wgrad_partial_kernel's wgrad_terms over every weight and bias, a chunk of images
// a block as the launcher splits them (wgrad_chunk), the chunks' sums added as the last block
// adds them; conv_input_grad_kernel's conv_input_grad_at over every input element.
struct CustomPass {
    std::vector<float> out, din, wb;
    std::vector<uint8_t> arg;
};

template <class S>
CustomPass emulate_custom(const S& shape, const ConvShape& s, int n, const std::vector<float>& x,
                          const std::vector<float>& w, const std::vector<float>& b, float rate,
                          const std::vector<float>& g, const std::vector<float>* y, float scale) {
    CustomPass o;
    o.out.assign(size_t(n) * s.out_elems(), kNaN);
    o.arg.assign(o.out.size(), 0xFF);
    const int groups = (s.out_elems() + 3) / 4;
    for (int i = 0; i < n; ++i)
        for (int grp = 0; grp < groups; ++grp)
            conv_pool_group(shape, i, grp, x.data() + size_t(i) * s.in_elems(), s.W, w.data(), b.data(), o.out.data(),
                            o.arg.data(), rate, 3, 7, 11);
    if (g.empty()) return o;
    const int nwb = wgrad_params(s), chunk = wgrad_chunk(s, n), chunks = (n + chunk - 1) / chunk;
    const size_t pooled = size_t(s.out_elems());
    std::vector<float> partial(size_t(chunks) * nwb, kNaN);
    for (int c = 0; c < chunks; ++c)
        for (int j = 0; j < nwb; ++j) {
            float acc = 0.0f;
            for (int i = c * chunk; i < std::min(n, (c + 1) * chunk); ++i)
                acc = wgrad_terms(shape, j, g.data() + i * pooled, y ? y->data() + i * pooled : nullptr, scale,
                                  o.arg.data() + i * pooled, x.data() + size_t(i) * s.in_elems(), 0, 1, acc);
            partial[size_t(c) * nwb + j] = acc;
        }
    o.wb.assign(nwb, kNaN);
    colsumtest::emulate_block_column_sums(partial.data(), chunks, nwb, nwb, kThreads, [&](int j, float v) { o.wb[j] = v; });
    o.din.assign(x.size(), kNaN);
    for (long idx = 0; idx < long(x.size()); ++idx)
        o.din[idx] = conv_input_grad_at(shape, idx, g.data(), y ? y->data() : nullptr, scale, o.arg.data(), w.data());
    return o;
}

}  // namespace

TEST_CASE("the custom conv kernels' per-thread code run on the CPU matches a double reference", "[conv][emulation]") {
    // The default engine's kernels (--conv custom): forward, weight and input gradients, for the
    // run-time shapes of the tiled test (batch 1 and 3, and one where chunks hold several images)
    // and, bit for bit against them, the recipes' fixed-shape instantiations.
    std::mt19937_64 r(504);
    auto run = [&](auto shape, const ConvShape& s, int n) {
        INFO("C" << s.C << " H" << s.H << " W" << s.W << " F" << s.F << " K" << s.K << " P" << s.P << " n" << n);
        const auto x = to_float(testutil::random_vector(size_t(n) * s.in_elems(), r, 0, 1));
        const auto w = to_float(testutil::random_vector(size_t(s.F) * s.C * s.K * s.K, r, -0.5, 0.5));
        const auto b = to_float(testutil::random_vector(s.F, r, -0.1, 0.1));
        const CustomPass f = emulate_custom(s, s, n, x, w, b, 0.0f, {}, nullptr, 1.0f);
        check_forward(s, n, x, w, b, f.out, f.arg);
        const auto g = to_float(testutil::random_vector(f.out.size(), r));
        auto y = to_float(testutil::random_vector(f.out.size(), r, -1, 1));
        for (float& v : y) v = v > 0 ? v : 0.0f;
        for (const bool masked : {false, true}) {
            INFO("masked " << masked);
            const float scale = masked ? 1.0f / 0.75f : 1.0f;
            const CustomPass p = emulate_custom(s, s, n, x, w, b, 0.0f, g, masked ? &y : nullptr, scale);
            std::vector<double> din, dw, db;
            reference_backward(s, n, x, w, g, masked ? &y : nullptr, scale, f.arg, din, dw, db);
            CHECK(testutil::rel_error(p.din, din) < 1e-5);
            CHECK(testutil::rel_error(std::vector<float>(p.wb.begin(), p.wb.begin() + long(w.size())), dw) < 1e-4);
            CHECK(testutil::rel_error(std::vector<float>(p.wb.begin() + long(w.size()), p.wb.end()), db) < 1e-4);
            if constexpr (IsFixedShape<decltype(shape)>::value) {  // the same code on the constants: the same bits
                const CustomPass q = emulate_custom(shape, s, n, x, w, b, 0.25f, g, masked ? &y : nullptr, scale);
                const CustomPass u = emulate_custom(s, s, n, x, w, b, 0.25f, g, masked ? &y : nullptr, scale);
                CHECK(std::memcmp(q.out.data(), u.out.data(), q.out.size() * sizeof(float)) == 0);
                CHECK(q.arg == u.arg);
                CHECK(std::memcmp(q.din.data(), u.din.data(), q.din.size() * sizeof(float)) == 0);
                CHECK(std::memcmp(q.wb.data(), u.wb.data(), q.wb.size() * sizeof(float)) == 0);
            }
        }
    };
    for (const ConvShape& s : {conv_shape(3, 13, 9, 5, 2, 3), conv_shape(2, 11, 17, 7, 5, 1), conv_shape(64, 5, 5, 16, 3, 1)})
        for (int n : {1, 3}) run(s, s, n);
    // 9,232 weights: at most 7 chunks (wgrad_max_chunks), so 9 images put two in some chunks.
    REQUIRE(wgrad_chunk(conv_shape(64, 5, 5, 16, 3, 1), 9) == 2);
    run(conv_shape(64, 5, 5, 16, 3, 1), conv_shape(64, 5, 5, 16, 3, 1), 9);
    run(FixedShape<1, 56, 46, 6, 3, 2>{}, conv_shape(1, 56, 46, 6, 3, 2), 3);
    run(FixedShape<6, 27, 22, 12, 3, 2>{}, conv_shape(6, 27, 22, 12, 3, 2), 3);
    run(FixedShape<1, 56, 46, 16, 3, 2>{}, conv_shape(1, 56, 46, 16, 3, 2), 1);
    run(FixedShape<16, 27, 22, 32, 3, 2>{}, conv_shape(16, 27, 22, 32, 3, 2), 1);
}
