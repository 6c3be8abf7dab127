// Every CUDA kernel against the CPU reference in double precision, on fresh random inputs, with
// outputs poisoned first. fp32 kernels summing up to a few hundred products land near 1e-7
// relative error; the bounds (1e-5, 1e-4 where thousands of terms are summed) leave room for
// summation order and still catch any indexing fault.
#include <algorithm>
#include <cstring>
#include <numeric>
#include <random>

#include "colsum_emulation.hpp"
#include "cuda_test_util.hpp"
#include "gemm_reference.hpp"
#if SIAMESE_HAVE_CUDNN
#include "cudnn_conv.hpp"
#endif
#include "kernels.hpp"
#include "cpu/conv.hpp"
#include "cpu/dense.hpp"
#include "cpu/loss.hpp"
#include "cpu/optimizer.hpp"
#include "siamese/metrics.hpp"
#include "siamese/pairs.hpp"
#include "siamese/philox.hpp"
#include "test_util.hpp"

using namespace siamese;
using namespace siamese::cuda;
using cudatest::poisoned;
using cudatest::device_state;
using cudatest::to_device;

namespace {


// Shapes: the recipe's two blocks, a non-square odd one, another kernel/pool size, the strong
// recipe's second block (its tiled tiles need more than the default 48 KB of shared memory), and
// one with more weights than the tiled weight gradient holds (it takes the untiled kernel).
std::vector<ConvShape> conv_shapes() {
    return {conv_shape(1, 56, 46, 6, 3, 2), conv_shape(6, 27, 22, 12, 3, 2), conv_shape(3, 13, 9, 5, 2, 3),
            conv_shape(2, 11, 17, 7, 5, 1), conv_shape(16, 27, 22, 32, 3, 2), conv_shape(64, 5, 5, 16, 3, 1)};
}

// Pool windows whose argmax differs, among those whose two largest conv values (in the double
// reference) are at least `min_gap` apart. A float sum and a double sum differ by rounding
// (~1e-7 relative), so windows nearer a tie than that may legitimately flip; every other window
// must agree exactly, and an indexing fault flips most of them.
long argmax_mismatches(const std::vector<uint8_t>& got, const std::vector<uint8_t>& ref, const std::vector<double>& gap,
                       double min_gap = 1e-5) {
    long diff = 0;
    for (size_t i = 0; i < ref.size(); ++i) diff += got[i] != ref[i] && gap[i] >= min_gap;
    return diff;
}


// CPU forward of one conv block in double: pooled, dropped output and argmax per image, and each
// window's gap between its two largest conv values (for the near-tie rule above).
void cpu_conv_block(const ConvShape& s, int n, const std::vector<double>& bank, const std::vector<int>& gather,
                    const std::vector<double>& w, const std::vector<double>& b, float rate, uint64_t seed, uint64_t step,
                    uint32_t layer, std::vector<double>& out, std::vector<uint8_t>& arg, std::vector<double>& act,
                    std::vector<double>* gap = nullptr) {
    out.assign(size_t(n) * s.out_elems(), 0);
    act.assign(out.size(), 0);
    arg.assign(out.size(), 0);
    if (gap) gap->assign(out.size(), 0);
    std::vector<double> conv(size_t(s.F) * s.Ho * s.W);
    for (int i = 0; i < n; ++i) {
        conv_forward(conv.data(), bank.data() + size_t(gather[i]) * s.in_elems(), w.data(), b.data(), s);
        relu_maxpool_forward(act.data() + size_t(i) * s.out_elems(), arg.data() + size_t(i) * s.out_elems(), conv.data(), s);
        if (gap)
            for (int f = 0; f < s.F; ++f)
                for (int py = 0; py < s.Hp; ++py)
                    for (int px = 0; px < s.Wp; ++px) {
                        double top = -INFINITY, second = -INFINITY;
                        for (int dy = 0; dy < s.P; ++dy)
                            for (int dx = 0; dx < s.P; ++dx) {
                                const double v = conv[(size_t(f) * s.Ho + py * s.P + dy) * s.W + px * s.P + dx];
                                if (v > top) { second = top; top = v; } else if (v > second) second = v;
                            }
                        (*gap)[size_t(i) * s.out_elems() + (size_t(f) * s.Hp + py) * s.Wp + px] =
                            s.P == 1 ? INFINITY : top - second;
                    }
        for (int k = 0; k < s.out_elems(); ++k) {
            const bool keep = rate <= 0 || dropout_keep(seed, step, layer, uint32_t(i), uint32_t(k), rate);
            out[size_t(i) * s.out_elems() + k] = act[size_t(i) * s.out_elems() + k] * (keep ? 1.0 / (1.0 - double(float(rate))) : 0.0);
        }
    }
}

}  // namespace

TEST_CASE("conv_pool_forward matches the CPU reference", "[cuda][conv]") {
    SKIP_WITHOUT_CUDA();
    std::mt19937_64 r(101);
    for (const ConvShape& s : conv_shapes())
        for (int n : {1, 3, 257}) {
            INFO("C" << s.C << " H" << s.H << " W" << s.W << " F" << s.F << " K" << s.K << " P" << s.P << " n" << n);
            const int bank_n = n + 5;
            const auto bank = testutil::random_vector(size_t(bank_n) * s.in_elems(), r, 0, 1);
            const auto w = testutil::random_vector(size_t(s.F) * s.C * s.K * s.K, r, -0.5, 0.5);
            const auto b = testutil::random_vector(s.F, r, -0.1, 0.1);
            std::vector<int> gather(n);
            for (auto& g : gather) g = int(r() % bank_n);
            for (float rate : {0.0f, 0.25f}) {
                std::vector<double> ref, act, gap;
                std::vector<uint8_t> ref_arg;
                cpu_conv_block(s, n, bank, gather, w, b, rate, 77, 5, 1, ref, ref_arg, act, &gap);
                auto d_bank = to_device<float>(bank), d_w = to_device<float>(w), d_b = to_device<float>(b);
                auto d_gather = to_device<int>(gather);
                auto d_out = poisoned<float>(ref.size());
                auto d_arg = poisoned<uint8_t>(ref.size());
                DeviceBuffer<StepState> st;
                conv_pool_forward(d_out.get(), d_arg.get(), d_bank.get(), d_w.get(), d_b.get(), s, n, d_gather.get(), rate,
                                  77, 1, device_state(st, 0, 0, 5), nullptr);
                CUDA_CHECK(cudaDeviceSynchronize());
                const auto out = d_out.download();
                const auto arg = d_arg.download();
                REQUIRE(cudatest::all_finite(out));
                CHECK(testutil::rel_error(out, ref) < 1e-5);
                CHECK(argmax_mismatches(arg, ref_arg, gap) == 0);
                // The tiled kernel computes every output as the kernel above does: the same bits.
                auto t_out = poisoned<float>(ref.size());
                auto t_arg = poisoned<uint8_t>(ref.size());
                conv_pool_forward_tiled(t_out.get(), t_arg.get(), d_bank.get(), d_w.get(), d_b.get(), s, n,
                                        d_gather.get(), rate, 77, 1, device_state(st, 0, 0, 5), nullptr);
                CUDA_CHECK(cudaDeviceSynchronize());
                const auto tout = t_out.download();
                CHECK(std::memcmp(tout.data(), out.data(), out.size() * sizeof(float)) == 0);
                CHECK(t_arg.download() == arg);
            }
        }
}

TEST_CASE("conv backward (weights, bias, input) matches the CPU reference", "[cuda][conv]") {
    SKIP_WITHOUT_CUDA();
    std::mt19937_64 r(102);
    for (const ConvShape& s : conv_shapes())
        for (int n : {1, 3, 130}) {
            INFO("C" << s.C << " H" << s.H << " W" << s.W << " F" << s.F << " K" << s.K << " P" << s.P << " n" << n);
            const auto bank = testutil::random_vector(size_t(n) * s.in_elems(), r, 0, 1);
            const auto w = testutil::random_vector(size_t(s.F) * s.C * s.K * s.K, r, -0.5, 0.5);
            const auto b = testutil::random_vector(s.F, r, -0.1, 0.1);
            std::vector<int> gather(n);
            std::iota(gather.begin(), gather.end(), 0);
            std::vector<double> out, act;
            std::vector<uint8_t> arg;
            cpu_conv_block(s, n, bank, gather, w, b, 0.0f, 1, 1, 0, out, arg, act);
            // geff: random where the unit is active, zero elsewhere (as after relu_dropout_backward).
            auto geff = testutil::random_vector(out.size(), r);
            for (size_t k = 0; k < geff.size(); ++k)
                if (out[k] <= 0) geff[k] = 0;
            std::vector<double> dw(w.size(), 0), db(b.size(), 0), din(bank.size(), 0);
            std::vector<double> dconv(size_t(s.F) * conv_grad_elems(s));
            for (int i = 0; i < n; ++i) {
                relu_maxpool_backward(dconv.data(), geff.data() + size_t(i) * s.out_elems(), act.data() + size_t(i) * s.out_elems(),
                                      arg.data() + size_t(i) * s.out_elems(), s);
                conv_backward_weights(dw.data(), db.data(), dconv.data(), bank.data() + size_t(i) * s.in_elems(), s);
                conv_backward_input(din.data() + size_t(i) * s.in_elems(), dconv.data(), w.data(), s);
            }
            auto d_bank = to_device<float>(bank), d_w = to_device<float>(w), d_geff = to_device<float>(geff);
            auto d_arg = to_device<uint8_t>(arg);
            DeviceBuffer<float> partial(conv_partial_elems(s));
            auto d_wb = poisoned<float>(w.size() + b.size());
            auto d_din = poisoned<float>(bank.size());
            conv_backward_weights(d_wb.get(), d_geff.get(), d_arg.get(), d_bank.get(), s, n, nullptr, partial.get(),
                                  partial.size(), nullptr);
            conv_backward_input(d_din.get(), d_geff.get(), d_arg.get(), d_w.get(), s, n, nullptr);
            CUDA_CHECK(cudaDeviceSynchronize());
            const auto wb = d_wb.download();
            const std::vector<float> gw(wb.begin(), wb.begin() + long(w.size())), gb(wb.begin() + long(w.size()), wb.end());
            REQUIRE(cudatest::all_finite(wb));
            CHECK(testutil::rel_error(gw, dw) < 1e-4);  // sums over n * Hp * Wp terms
            CHECK(testutil::rel_error(gb, db) < 1e-4);
            const auto gi = d_din.download();
            REQUIRE(cudatest::all_finite(gi));
            CHECK(testutil::rel_error(gi, din) < 1e-5);
            // Tiled: the weight gradient in another fixed order (same tolerance), the input
            // gradient the same bits as the kernel above (it only adds exact zeros besides).
            auto t_wb = poisoned<float>(w.size() + b.size());
            auto t_din = poisoned<float>(bank.size());
            conv_backward_weights_tiled(t_wb.get(), d_geff.get(), d_arg.get(), d_bank.get(), s, n, nullptr, partial.get(),
                                        partial.size(), nullptr);
            conv_backward_input_tiled(t_din.get(), d_geff.get(), d_arg.get(), d_w.get(), s, n, nullptr);
            CUDA_CHECK(cudaDeviceSynchronize());
            const auto twb = t_wb.download();
            REQUIRE(cudatest::all_finite(twb));
            CHECK(testutil::rel_error(std::vector<float>(twb.begin(), twb.begin() + long(w.size())), dw) < 1e-4);
            CHECK(testutil::rel_error(std::vector<float>(twb.begin() + long(w.size()), twb.end()), db) < 1e-4);
            const auto tgi = t_din.download();
            CHECK(std::memcmp(tgi.data(), gi.data(), gi.size() * sizeof(float)) == 0);
        }
}

TEST_CASE("the custom GEMM gives its documented order's bits on every shape and direction, counters left zero",
          "[cuda][gemm]") {
    SKIP_WITHOUT_CUDA();
    std::mt19937_64 r(911);
    DeviceBuffer<float> partial(kGemmPartialFloats);
    DeviceBuffer<unsigned> counters(kGemmCounters);
    counters.fill_bytes(0);
    struct Case {
        int M, N, K;
        bool a_kc, b_kc;
    };
    // The reference step's dense1 products (forward, dW, dx), dense2's forward, batch 1, odd
    // shapes every way round, K = 0, and the forward of a batch large enough not to be split
    // (1,056 pairs: 132 tiles).
    const std::vector<Case> cases = {{256, 128, 1440, true, true}, {128, 1440, 256, false, false}, {256, 1440, 128, true, false},
                                     {256, 50, 128, true, true},   {2, 128, 1440, true, true},     {1, 1, 1, true, true},
                                     {3, 5, 17, false, true},      {70, 33, 257, true, false},     {65, 31, 1000, false, false},
                                     {129, 97, 64, true, true},    {4, 3, 0, true, true},          {2112, 128, 1440, true, true}};
    for (const Case& cs : cases) {
        INFO("M " << cs.M << " N " << cs.N << " K " << cs.K << " a_kc " << cs.a_kc << " b_kc " << cs.b_kc);
        const auto ad = testutil::random_vector(size_t(cs.M) * cs.K, r, -1, 1),
                   bd = testutil::random_vector(size_t(cs.K) * cs.N, r, -1, 1);
        const std::vector<float> a(ad.begin(), ad.end()), b(bd.begin(), bd.end());
        const int ldc = cs.N + 3;  // the columns past N must stay poisoned
        std::vector<float> want(size_t(cs.M) * ldc, 0.0f), host_partial(kGemmPartialFloats);
        std::memset(want.data(), 0xFF, want.size() * sizeof(float));
        GemmArgs g = gemmtest::args(want.data(), ldc, a.data(), cs.a_kc, b.data(), cs.b_kc, cs.M, cs.N, cs.K,
                                    host_partial.data());
        gemmtest::documented_product(g, want.data());
        auto d_a = to_device<float>(a), d_b = to_device<float>(b);
        for (int run = 0; run < 2; ++run) {  // twice: the same bits (and the counters reset)
            auto d_c = poisoned<float>(want.size());
            partial.fill_bytes(0xFF);
            gemm_custom(d_c.get(), ldc, d_a.get(), g.lda, cs.a_kc, d_b.get(), g.ldb, cs.b_kc, cs.M, cs.N, cs.K, partial.get(),
                        counters.get(), nullptr);
            CUDA_CHECK(cudaDeviceSynchronize());
            cudatest::check_same_bits(d_c.download(), want);
            const auto cnt = counters.download();
            CHECK(std::all_of(cnt.begin(), cnt.end(), [](unsigned v) { return v == 0; }));
        }
    }
}

TEST_CASE("dense forward, relu/dropout backward and dense backward match the CPU reference", "[cuda][dense]") {
    SKIP_WITHOUT_CUDA();
    std::mt19937_64 r(103);
    cublasHandle_t h;
    CUBLAS_CHECK(cublasCreate(&h));
    CUBLAS_CHECK(cublasSetMathMode(h, CUBLAS_PEDANTIC_MATH));
    DeviceBuffer<float> partial(kGemmPartialFloats);
    DeviceBuffer<unsigned> counters(kGemmCounters);
    counters.fill_bytes(0);
    for (const bool custom : {false, true})  // cuBLAS, then the custom GEMM (--gemm custom)
    for (auto [n, I, O] : std::vector<std::tuple<int, int, int>>{{1, 1440, 128}, {256, 1440, 128}, {257, 128, 50}, {3, 17, 5}})
        for (float rate : {0.0f, 0.1f}) {
            INFO((custom ? "custom" : "cublas") << " n" << n << " I" << I << " O" << O << " rate " << rate);
            const DenseGemm gm = custom ? DenseGemm::custom(partial.get(), counters.get()) : DenseGemm(h);
            const auto x = testutil::random_vector(size_t(n) * I, r, 0, 1), w = testutil::random_vector(size_t(O) * I, r, -0.1, 0.1),
                       b = testutil::random_vector(O, r, -0.1, 0.1);
            std::vector<double> y(size_t(n) * O);
            dense_forward(y.data(), x.data(), w.data(), b.data(), n, I, O, true);
            for (int i = 0; i < n; ++i)
                for (int o = 0; o < O; ++o)
                    if (rate > 0 && !dropout_keep(5, 9, 16, uint32_t(i), uint32_t(o), rate)) y[size_t(i) * O + o] = 0;
                    else if (rate > 0) y[size_t(i) * O + o] *= 1.0 / (1.0 - double(float(rate)));
            auto d_x = to_device<float>(x), d_w = to_device<float>(w), d_b = to_device<float>(b);
            auto d_y = poisoned<float>(y.size());
            DeviceBuffer<StepState> st;
            StepState* sp = device_state(st, 0, 0, 9);
            siamese::cuda::dense_forward(d_y.get(), d_x.get(), d_w.get(), d_b.get(), n, I, O, true, rate, 5, 16, sp, gm, nullptr);
            CUDA_CHECK(cudaDeviceSynchronize());
            const auto gy = d_y.download();
            REQUIRE(cudatest::all_finite(gy));
            CHECK(testutil::rel_error(gy, y) < 1e-5);

            // Backward from a random upstream gradient, through the same mask.
            auto dy = testutil::random_vector(y.size(), r);
            std::vector<double> geff(dy);
            for (size_t k = 0; k < geff.size(); ++k) geff[k] = y[k] > 0 ? dy[k] * (rate > 0 ? 1.0 / (1.0 - double(float(rate))) : 1.0) : 0.0;
            std::vector<double> dx(x.size()), dw(w.size()), db(O);
            siamese::dense_backward(dx.data(), dw.data(), db.data(), geff.data(), x.data(), w.data(), n, I, O);
            auto d_d = to_device<float>(dy);
            auto d_yref = to_device<float>(gy);
            auto d_dx = poisoned<float>(dx.size()), d_dw = poisoned<float>(dw.size()), d_db = poisoned<float>(db.size());
            relu_dropout_backward(d_d.get(), d_yref.get(), n, O, rate, nullptr);
            siamese::cuda::dense_backward(d_dx.get(), d_dw.get(), d_db.get(), d_d.get(), d_x.get(), d_w.get(), n, I, O, gm, nullptr);
            CUDA_CHECK(cudaDeviceSynchronize());
            CHECK(testutil::rel_error(d_d.download(), geff) < 1e-6);
            CHECK(testutil::rel_error(d_dx.download(), dx) < 1e-5);
            CHECK(testutil::rel_error(d_dw.download(), dw) < 1e-4);
            CHECK(testutil::rel_error(d_db.download(), db) < 1e-4);
        }
    cublasDestroy(h);
}

TEST_CASE("fused distance + contrastive loss matches the CPU reference", "[cuda][loss]") {
    SKIP_WITHOUT_CUDA();
    std::mt19937_64 r(104);
    for (int count : {1, 7, 128, 300}) {
        INFO("count " << count);
        const int E = 50, first = 3;
        auto emb = testutil::random_vector(size_t(2) * count * E, r, 0, 0.3);
        for (int k = 0; k < E; ++k) emb[size_t(count) * E + k] = emb[k];  // pair 0 identical: d clamps
        std::vector<float> labels(first + count);
        for (auto& y : labels) y = float(r() % 2);
        std::vector<double> g(emb.size()), dist(count);
        const double loss = contrastive_loss<double>(g.data(), g.data() + size_t(count) * E, dist.data(), emb.data(),
                                                     emb.data() + size_t(count) * E, labels.data() + first, count, E, 1.0);
        auto d_emb = to_device<float>(emb), d_lab = to_device<float>(labels);
        auto d_g = poisoned<float>(g.size()), d_loss = poisoned<float>(4), d_dist = poisoned<float>(count);
        DeviceBuffer<StepState> st;
        siamese::cuda::contrastive_loss(d_g.get(), d_loss.get(), d_dist.get(), d_emb.get(), d_lab.get(), count, E, 1.0f,
                                        device_state(st, first, 2, 0), nullptr);
        CUDA_CHECK(cudaDeviceSynchronize());
        CHECK(d_loss.download()[2] == Approx(loss).epsilon(1e-5));
        CHECK(testutil::rel_error(d_g.download(), g) < 1e-5);
        CHECK(testutil::rel_error(d_dist.download(), dist) < 1e-5);
    }
}

TEST_CASE("optimizer kernel matches the CPU loop for rmsprop, adam and sgd", "[cuda][optimizer]") {
    SKIP_WITHOUT_CUDA();
    std::mt19937_64 r(105);
    for (int variant = 0; variant < 4; ++variant) {
        const OptKind kind = variant == 3 ? OptKind::Adam : OptKind(variant);
        OptimizerConfig c;
        c.kind = kind;
        c.weight_decay = variant == 3 ? 0.05f : 0.0f;  // the AdamW form
        INFO("weight decay " << c.weight_decay);
        const size_t n = 100003;
        const auto p0 = testutil::random_vector(n, r);
        std::vector<float> p(p0.begin(), p0.end()), s(2 * n, 0.0f);
        auto d_p = to_device<float>(p0);
        DeviceBuffer<float> d_s(2 * n);
        d_s.fill_bytes(0);
        DeviceBuffer<StepState> st;
        for (uint64_t step = 0; step < 3; ++step) {
            const auto g64 = testutil::random_vector(n, r);
            std::vector<float> g(g64.begin(), g64.end());
            optimizer_step(c, p.data(), g.data(), s.data(), n, step + 1);
            auto d_g = to_device<float>(g);
            optimizer_step(c, d_p.get(), d_g.get(), d_s.get(), n, device_state(st, 0, 0, step), nullptr);
        }
        CUDA_CHECK(cudaDeviceSynchronize());
        INFO(optimizer_name(kind));
        CHECK(testutil::rel_error(d_p.download(), p) < 1e-6);
        CHECK(testutil::rel_error(d_s.download(), s) < 1e-6);
    }
}

TEST_CASE("column_sums adds in the documented order (the CPU emulation's bits) and to the double sums", "[cuda][colsum]") {
    // The one reduction behind every bias gradient and conv weight gradient (column_sums, and
    // the fused kernels' last blocks): pure fp32 additions in a fixed order, so the device must
    // give the bits of colsum_phases.hpp run on the CPU, aligned (16-byte loads) or not.
    SKIP_WITHOUT_CUDA();
    std::mt19937_64 r(109);
    for (int rows : {1, 3, 86, 256, 257})
        for (int cols : {1, 5, 60, 128, 660, 6579})
            for (int offset : {0, 1}) {  // 1: the matrix one float past an aligned address
                INFO("rows " << rows << " cols " << cols << " offset " << offset);
                const auto m64 = testutil::random_vector(size_t(rows) * cols + offset, r, -1, 1);
                const std::vector<float> m(m64.begin(), m64.end());
                auto d_m = to_device<float>(m);
                auto d_out = poisoned<float>(cols);
                column_sums(d_out.get(), d_m.get() + offset, rows, cols, nullptr);
                CUDA_CHECK(cudaDeviceSynchronize());
                const auto got = d_out.download();
                std::vector<float> want(cols, std::nanf(""));
                colsumtest::emulate_block_column_sums(m.data() + offset, rows, cols, cols, 256,
                                                      [&](int c, float v) { want[c] = v; });
                cudatest::check_same_bits(got, want, true);
                std::vector<double> exact(cols, 0.0);
                for (int row = 0; row < rows; ++row)
                    for (int c = 0; c < cols; ++c) exact[c] += m[offset + size_t(row) * cols + c];
                CHECK(testutil::rel_error(got, exact) < 1e-5);  // up to 257 fp32 terms of size ~1
            }
    auto d_out = poisoned<float>(7);  // no rows: zeros
    column_sums(d_out.get(), nullptr, 0, 7, nullptr);
    CUDA_CHECK(cudaDeviceSynchronize());
    CHECK(d_out.download() == std::vector<float>(7, 0.0f));
}

TEST_CASE("pair distances and the device ROC AUC match the CPU metrics", "[cuda][eval]") {
    SKIP_WITHOUT_CUDA();
    std::mt19937_64 r(106);
    const int n_img = 97, E = 50, n = 1001;
    const auto emb = testutil::random_vector(size_t(n_img) * E, r, 0, 1);
    PairSet pairs;
    for (int i = 0; i < n; ++i) pairs.push(int(r() % n_img), int(r() % n_img), float(r() % 2));
    const std::vector<float> embf(emb.begin(), emb.end());
    const auto ref = pair_distances(embf, E, pairs);
    auto d_emb = to_device<float>(emb);
    auto d_a = to_device<int>(pairs.a), d_b = to_device<int>(pairs.b);
    auto d_y = to_device<float>(pairs.label);
    auto d_d = poisoned<float>(n);
    siamese::cuda::pair_distances(d_d.get(), d_emb.get(), E, d_a.get(), d_b.get(), n, nullptr);
    CUDA_CHECK(cudaDeviceSynchronize());
    const auto d = d_d.download();
    CHECK(testutil::rel_error(d, ref) < 1e-6);
    CHECK(roc_auc_device(d_d.get(), d_y.get(), n, nullptr) == Approx(roc_auc(d, pairs.label)).epsilon(1e-12));
}

TEST_CASE("cuDNN and custom convolution blocks agree", "[cuda][conv][cudnn]") {
#if !SIAMESE_HAVE_CUDNN
    std::printf("SKIPPED: this build has no cuDNN\n");
#else
    SKIP_WITHOUT_CUDA();
    std::mt19937_64 r(107);
    cudnnHandle_t h;
    REQUIRE(cudnnCreate(&h) == CUDNN_STATUS_SUCCESS);
    for (const ConvShape& s : conv_shapes()) {
        const int n = 37;
        INFO("C" << s.C << " H" << s.H << " W" << s.W << " F" << s.F);
        const auto bank = testutil::random_vector(size_t(n) * s.in_elems(), r, 0, 1);
        const auto w = testutil::random_vector(size_t(s.F) * s.C * s.K * s.K, r, -0.5, 0.5);
        const auto b = testutil::random_vector(s.F, r, -0.1, 0.1);
        std::vector<int> gather(n);
        for (auto& g : gather) g = int(r() % n);
        std::vector<double> ref, act, gap;
        std::vector<uint8_t> ref_arg;
        cpu_conv_block(s, n, bank, gather, w, b, 0.25f, 4, 3, 0, ref, ref_arg, act, &gap);
        auto d_bank = to_device<float>(bank), d_w = to_device<float>(w), d_b = to_device<float>(b);
        auto d_gather = to_device<int>(gather);
        DeviceBuffer<StepState> st;
        StepState* sp = device_state(st, 0, 0, 3);
        const size_t out_n = size_t(n) * s.out_elems();
        auto o1 = poisoned<float>(out_n), o2 = poisoned<float>(out_n);
        auto a1 = poisoned<uint8_t>(out_n), a2 = poisoned<uint8_t>(out_n);
        conv_pool_forward(o1.get(), a1.get(), d_bank.get(), d_w.get(), d_b.get(), s, n, d_gather.get(), 0.25f, 4, 0, sp, nullptr);
        CudnnConvBlock block(h, s, n);
        block.forward(o2.get(), a2.get(), d_bank.get(), d_w.get(), d_b.get(), n, d_gather.get(), 0.25f, 4, 0, sp, nullptr);
        CUDA_CHECK(cudaDeviceSynchronize());
        const auto out1 = o1.download();
        CHECK(testutil::rel_error(o2.download(), out1) < 1e-5);
        CHECK(argmax_mismatches(a2.download(), ref_arg, gap) == 0);
        INFO("cuDNN algorithms: " << block.describe());
        auto geff = testutil::random_vector(out_n, r);
        for (size_t k = 0; k < out_n; ++k)
            if (out1[k] <= 0) geff[k] = 0;
        auto d_geff = to_device<float>(geff);
        DeviceBuffer<float> partial(conv_partial_elems(s));
        auto g1 = poisoned<float>(w.size() + b.size()), g2 = poisoned<float>(w.size() + b.size());
        auto i1 = poisoned<float>(size_t(n) * s.in_elems()), i2 = poisoned<float>(size_t(n) * s.in_elems());
        conv_backward_weights(g1.get(), d_geff.get(), a1.get(), d_bank.get(), s, n, d_gather.get(), partial.get(),
                              partial.size(), nullptr);
        // The input gradient is per image slot; compare with the gathered layout cuDNN sees.
        conv_backward_input(i1.get(), d_geff.get(), a1.get(), d_w.get(), s, n, nullptr);
        block.backward(g2.get(), i2.get(), d_geff.get(), a1.get(), d_bank.get(), d_w.get(), n, d_gather.get(), nullptr);
        CUDA_CHECK(cudaDeviceSynchronize());
        CHECK(testutil::rel_error(g2.download(), g1.download()) < 1e-4);
        CHECK(testutil::rel_error(i2.download(), i1.download()) < 1e-5);
    }
    cudnnDestroy(h);
#endif
}

TEST_CASE("a cuDNN block made for a large bank gives a batch the bits of a block made for that batch", "[cuda][conv][cudnn]") {
    // cuDNN's heuristics may answer differently for different batch sizes, and its algorithms sum
    // in different orders: a block made for the validation bank must compute a training batch with
    // the algorithms chosen for the batch's size (its workspace grown when they need more), or runs
    // that embed the bank between epochs stop being bit-identical to runs that do not. The
    // emulated cuDNN does both: for 1,000 images its GEMM forward needs over the engine's 64 MiB
    // cap, for 37 it is the first acceptable choice.
#if !SIAMESE_HAVE_CUDNN
    std::printf("SKIPPED: this build has no cuDNN\n");
#else
    SKIP_WITHOUT_CUDA();
    std::mt19937_64 r(109);
    cudnnHandle_t h;
    REQUIRE(cudnnCreate(&h) == CUDNN_STATUS_SUCCESS);
    const ConvShape s = conv_shape(1, 56, 46, 6, 3, 2);
    const int bank_n = 40, big = 1000, n = 37;
    const auto bank = testutil::random_vector(size_t(bank_n) * s.in_elems(), r, 0, 1);
    const auto w = testutil::random_vector(size_t(s.F) * s.C * s.K * s.K, r, -0.5, 0.5);
    const auto b = testutil::random_vector(s.F, r, -0.1, 0.1);
    const auto geff = testutil::random_vector(size_t(n) * s.out_elems(), r);
    std::vector<int> gather_big(big), gather(n);
    for (auto& g : gather_big) g = int(r() % bank_n);
    for (auto& g : gather) g = int(r() % bank_n);
    auto d_bank = to_device<float>(bank), d_w = to_device<float>(w), d_b = to_device<float>(b), d_geff = to_device<float>(geff);
    auto d_gather_big = to_device<int>(gather_big), d_gather = to_device<int>(gather);
    DeviceBuffer<StepState> st;
    StepState* sp = device_state(st, 0, 0, 3);
    std::vector<float> out[2], grad[2], din[2];
    std::vector<uint8_t> arg[2];
    std::string chosen[2];
    for (int k = 0; k < 2; ++k) {
        CudnnConvBlock block(h, s, k ? big : n);
        if (k) {  // the bank first, as validation embeds it
            auto o = poisoned<float>(size_t(big) * s.out_elems());
            auto a = poisoned<uint8_t>(size_t(big) * s.out_elems());
            block.forward(o.get(), a.get(), d_bank.get(), d_w.get(), d_b.get(), big, d_gather_big.get(), 0.0f, 4, 0, sp, nullptr);
            CUDA_CHECK(cudaDeviceSynchronize());
        }
        auto o = poisoned<float>(size_t(n) * s.out_elems());
        auto a = poisoned<uint8_t>(size_t(n) * s.out_elems());
        auto g = poisoned<float>(w.size() + b.size()), d = poisoned<float>(size_t(n) * s.in_elems());
        block.forward(o.get(), a.get(), d_bank.get(), d_w.get(), d_b.get(), n, d_gather.get(), 0.25f, 4, 0, sp, nullptr);
        block.backward(g.get(), d.get(), d_geff.get(), a.get(), d_bank.get(), d_w.get(), n, d_gather.get(), nullptr);
        CUDA_CHECK(cudaDeviceSynchronize());
        out[k] = o.download(), arg[k] = a.download(), grad[k] = g.download(), din[k] = d.download();
        chosen[k] = block.describe();
    }
    INFO("made for " << n << ": " << chosen[0] << "; made for " << big << ": " << chosen[1]);
    REQUIRE(cudatest::all_finite(out[1]));
    REQUIRE(cudatest::all_finite(grad[1]));
    REQUIRE(cudatest::all_finite(din[1]));
    CHECK(std::memcmp(out[0].data(), out[1].data(), out[0].size() * sizeof(float)) == 0);
    CHECK(arg[0] == arg[1]);
    CHECK(std::memcmp(grad[0].data(), grad[1].data(), grad[0].size() * sizeof(float)) == 0);
    CHECK(std::memcmp(din[0].data(), din[1].data(), din[0].size() * sizeof(float)) == 0);
    cudnnDestroy(h);
#endif
}

TEST_CASE("the weight-gradient scratch size holds every batch size, and launchers refuse a short buffer", "[cuda][conv][sizes]") {
    // Host-side logic only: runs without a device. An inference pass once grew the engine's
    // capacity to the bank (400 images) and the scratch was reallocated SMALLER than a 256-image
    // training batch needs; the size is now a function of the shape alone.
    for (const ConvShape& s : conv_shapes()) {
        INFO("C" << s.C << " H" << s.H << " W" << s.W << " F" << s.F);
        for (int n = 1; n <= 4096; ++n) REQUIRE(conv_partial_needed(s, n) <= conv_partial_elems(s));
        // The check comes before any launch, so it fires without a GPU too.
        CHECK_THROWS_AS(conv_backward_weights(nullptr, nullptr, nullptr, nullptr, s, 256, nullptr, nullptr,
                                              conv_partial_needed(s, 256) - 1, nullptr),
                        std::logic_error);
    }
}

TEST_CASE("a CUDA failure is a device error, not a data error", "[cuda][device]") {
    // fail() is the reporter behind every CUDA_CHECK: host code, no device needed.
    try {
        CUDA_CHECK(cudaErrorMemoryAllocation);
        FAIL("no throw");
    } catch (const DeviceError& e) {
        CHECK(std::string(e.what()).find("CUDA error") != std::string::npos);
    }
}

TEST_CASE("the epoch order built on the device is the CPU's epoch_order, as is an epoch graph's start, and set_step_state writes the state", "[cuda][shuffle]") {
    SKIP_WITHOUT_CUDA();
    std::mt19937_64 r(17);
    // Integers and labels copied, not computed: equality is exact. Sizes around the Feistel
    // domains' edges (4^h) and the reference recipe's 11,250.
    for (int n : {1, 3, 16, 17, 257, 11250}) {
        INFO("n " << n);
        PairSet train;
        for (int i = 0; i < n; ++i) train.push(int(r() % 400), int(r() % 400), float(r() % 2));
        auto a = to_device<int>(train.a), b = to_device<int>(train.b);
        auto y = to_device<float>(train.label);
        auto oa = poisoned<int>(n), ob = poisoned<int>(n);
        auto oy = poisoned<float>(n);
        for (int epoch : {1, 2}) {
            epoch_order(oa.get(), ob.get(), oy.get(), a.get(), b.get(), y.get(), shuffle_key(5, epoch, uint32_t(n)), nullptr);
            CUDA_CHECK(cudaDeviceSynchronize());
            const PairSet ref = epoch_order(train, 5, epoch);
            CHECK(oa.download() == ref.a);
            CHECK(ob.download() == ref.b);
            CHECK(oy.download() == ref.label);
        }
    }
    DeviceBuffer<StepState> st(1);
    st.fill_bytes(0xFF);
    set_step_state(st.get(), StepState{42, 3, 1ull << 40}, nullptr);
    const StepState s = st.download()[0];
    CHECK((s.first == 42 && s.batch == 3 && s.step == (1ull << 40)));
    // epoch_start: the order of the epoch the state's step begins (88 steps an epoch), the
    // position reset, the step kept.
    const int n = 11250;
    PairSet train;
    for (int i = 0; i < n; ++i) train.push(int(r() % 400), int(r() % 400), float(r() % 2));
    auto a = to_device<int>(train.a), b = to_device<int>(train.b);
    auto y = to_device<float>(train.label);
    for (uint64_t step : {uint64_t(0), uint64_t(88), uint64_t(87 * 88)}) {
        INFO("step " << step);
        auto oa = poisoned<int>(n), ob = poisoned<int>(n);
        auto oy = poisoned<float>(n);
        set_step_state(st.get(), StepState{n, 88, step}, nullptr);
        epoch_start(oa.get(), ob.get(), oy.get(), a.get(), b.get(), y.get(), n, 5, 88, st.get(), nullptr);
        CUDA_CHECK(cudaDeviceSynchronize());
        const PairSet ref = epoch_order(train, 5, epoch_at_step(step, 88));
        CHECK(oa.download() == ref.a);
        CHECK(ob.download() == ref.b);
        CHECK(oy.download() == ref.label);
        const StepState t = st.download()[0];
        CHECK((t.first == 0 && t.batch == 0 && t.step == step));
    }
}
