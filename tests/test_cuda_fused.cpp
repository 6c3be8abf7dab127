// The fused step's kernels (--fused) against the CPU reference in double, on fresh random
// inputs with outputs poisoned first: the tail kernel (last dense layer + distance + loss + their
// backward), the conv backward kernels with the relu/dropout mask read inside and their chunk
// sums done by the last block, and the optimizer that advances the step state. Where a fused
// kernel computes the very float expressions of the unfused launches, the two are compared bit
// for bit (memcmp); every fused kernel must leave its last-block counter at zero and give the
// same bits twice.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>

#include "cuda_test_util.hpp"
#if SIAMESE_HAVE_CUDNN
#include "cudnn_conv.hpp"
#endif
#include "kernels.hpp"
#include "cpu/conv.hpp"
#include "cpu/dense.hpp"
#include "cpu/loss.hpp"
#include "siamese/half.hpp"
#include "siamese/rules.hpp"
#include "siamese/step_plan.hpp"  // tail_pairs_per_block
#include "tail_reference.hpp"
#include "test_util.hpp"

using namespace siamese;
using namespace siamese::cuda;
using cudatest::device_state;
using cudatest::poisoned;
using cudatest::to_device;

namespace {

unsigned counter_value(DeviceBuffer<unsigned>& c) { return c.download()[0]; }

}  // namespace

namespace {

// One fused tail launch, twice, against the double reference: every output, then the second
// run's bits against the first's; the last-block counter left at zero.
void check_tail(std::mt19937_64& r, int count, int I, int O, bool relu, float rate) {
    INFO("count " << count << " I " << I << " O " << O << " relu " << relu << " rate " << rate);
    REQUIRE(tail_pairs_per_block(I, O) > 0);  // the layer fits one block's shared memory
    const tailtest::Problem p = tailtest::make_problem(r, count, I, O, relu, rate);
    auto d_v = to_device<float>(p.v), d_hb = to_device<float>(p.hb), d_w = to_device<float>(p.w),
         d_b = to_device<float>(p.b), d_y = to_device<float>(p.labels);
    DeviceBuffer<float> partial(contrastive_tail_partial_elems(count, I, O));
    DeviceBuffer<unsigned> counter(1);
    counter.fill_bytes(0);
    DeviceBuffer<StepState> st;
    std::vector<float> first_run;
    for (int run = 0; run < 2; ++run) {
        auto d_gw = poisoned<float>(p.gw.size()), d_gb = poisoned<float>(O), d_dh = poisoned<float>(p.dh.size()),
             d_ghb = poisoned<float>(I), d_loss = poisoned<float>(4);
        contrastive_tail(d_gw.get(), d_gb.get(), d_dh.get(), d_ghb.get(), d_loss.get(), d_v.get(), d_hb.get(), d_w.get(),
                         d_b.get(), d_y.get(), count, I, O, relu, 1.0f, rate, p.seed, p.layer,
                         device_state(st, p.first, 3, p.step), partial.get(), partial.size(), counter.get(), nullptr);
        CUDA_CHECK(cudaDeviceSynchronize());
        CHECK(counter_value(counter) == 0u);
        const auto ggw = d_gw.download(), ggb = d_gb.download(), gdh = d_dh.download(), gghb = d_ghb.download();
        REQUIRE(cudatest::all_finite(ggw));
        REQUIRE(cudatest::all_finite(gdh));
        // fp32 sums of up to 2*count rows (dW, db) or I products (e): 1e-4 relative leaves room
        // for order (norm-wise, random signs: ~sqrt(rows) roundings); an indexing fault is off by O(1).
        CHECK(d_loss.download()[3] == Approx(p.loss).epsilon(1e-5));
        CHECK(testutil::rel_error(ggw, p.gw) < 1e-4);
        CHECK(tailtest::error_against(ggb, p.gb, p.gb_scale) < 1e-4);  // gb cancels to 0 without the ReLU
        CHECK(testutil::rel_error(gdh, p.dh) < 1e-5);
        CHECK(testutil::rel_error(gghb, p.ghb) < 1e-4);
        std::vector<float> all(ggw);
        all.insert(all.end(), gdh.begin(), gdh.end());
        all.insert(all.end(), gghb.begin(), gghb.end());
        if (run == 0)
            first_run = all;
        else
            CHECK(std::memcmp(all.data(), first_run.data(), all.size() * sizeof(float)) == 0);
    }
}

}  // namespace

TEST_CASE("the fused tail matches bias/ReLU/dropout + dense + contrastive loss + their backward on the CPU", "[cuda][fused][tail]") {
    SKIP_WITHOUT_CUDA();
    std::mt19937_64 r(301);
    for (auto [count, I, O] : tailtest::shapes())
        for (bool relu : {true, false})
            for (float rate : {0.0f, 0.1f}) check_tail(r, count, I, O, relu, rate);
}

TEST_CASE("the fused tail's larger blocks for large batches match the CPU too", "[cuda][fused][tail]") {
    // Over 1,024 pairs a block takes 16 to 64 pairs (tail_pairs_for, the device's opt-in shared
    // memory): 1,500 pairs (16 a block, 94 blocks), 8,193 (64 a block, 129 blocks, the last one short).
    SKIP_WITHOUT_CUDA();
    std::mt19937_64 r(308);
    for (int count : {1500, 8193}) check_tail(r, count, 128, 50, true, 0.1f);
}

TEST_CASE("fused conv backward (mask read inside, last-block chunk sums) gives the unfused launches' bits", "[cuda][fused][conv]") {
    SKIP_WITHOUT_CUDA();
    std::mt19937_64 r(302);
    const std::vector<ConvShape> shapes = {conv_shape(1, 56, 46, 6, 3, 2), conv_shape(6, 27, 22, 12, 3, 2),
                                           conv_shape(3, 13, 9, 5, 2, 3), conv_shape(16, 27, 22, 32, 3, 2),
                                           conv_shape(64, 5, 5, 16, 3, 1)};
    for (const ConvShape& s : shapes)
        for (int n : {1, 3, 257}) {
            INFO("C" << s.C << " H" << s.H << " W" << s.W << " F" << s.F << " K" << s.K << " P" << s.P << " n" << n);
            const size_t pooled = size_t(n) * s.out_elems();
            const auto x = testutil::random_vector(size_t(n) * s.in_elems(), r, 0, 1);
            const auto w = testutil::random_vector(size_t(s.F) * s.C * s.K * s.K, r, -0.5, 0.5);
            // y: a block output after ReLU and dropout (zero for about half); d: the raw gradient.
            auto y = testutil::random_vector(pooled, r, -1, 1);
            for (double& v : y) v = v > 0 ? v : 0.0;
            const auto d = testutil::random_vector(pooled, r);
            std::vector<uint8_t> arg(pooled);
            for (auto& a : arg) a = uint8_t(r() % (s.P * s.P));
            const float rate = 0.25f;
            auto d_x = to_device<float>(x), d_w = to_device<float>(w), d_y = to_device<float>(y);
            auto d_arg = to_device<uint8_t>(arg);
            auto d_masked = to_device<float>(d), d_raw = to_device<float>(d);
            relu_dropout_backward(d_masked.get(), d_y.get(), n, s.out_elems(), rate, nullptr);  // the unfused launch
            DeviceBuffer<float> partial(conv_partial_elems(s));
            DeviceBuffer<unsigned> counter(1);
            counter.fill_bytes(0);
            const size_t nwb = w.size() + size_t(s.F);
            for (bool tiled : {false, true}) {
                INFO((tiled ? "tiled" : "custom"));
                auto ref_wb = poisoned<float>(nwb), ref_din = poisoned<float>(x.size());
                auto got_wb = poisoned<float>(nwb), got_din = poisoned<float>(x.size());
                const ConvBackwardFusion fuse{d_y.get(), dropout_keep_scale(rate), counter.get()};
                if (tiled) {
                    conv_backward_weights_tiled(ref_wb.get(), d_masked.get(), d_arg.get(), d_x.get(), s, n, nullptr,
                                                partial.get(), partial.size(), nullptr);
                    conv_backward_input_tiled(ref_din.get(), d_masked.get(), d_arg.get(), d_w.get(), s, n, nullptr);
                    conv_backward_weights_tiled(got_wb.get(), d_raw.get(), d_arg.get(), d_x.get(), s, n, nullptr,
                                                partial.get(), partial.size(), nullptr, fuse);
                    conv_backward_input_tiled(got_din.get(), d_raw.get(), d_arg.get(), d_w.get(), s, n, nullptr, fuse);
                } else {
                    conv_backward_weights(ref_wb.get(), d_masked.get(), d_arg.get(), d_x.get(), s, n, nullptr, partial.get(),
                                          partial.size(), nullptr);
                    conv_backward_input(ref_din.get(), d_masked.get(), d_arg.get(), d_w.get(), s, n, nullptr);
                    conv_backward_weights(got_wb.get(), d_raw.get(), d_arg.get(), d_x.get(), s, n, nullptr, partial.get(),
                                          partial.size(), nullptr, fuse);
                    conv_backward_input(got_din.get(), d_raw.get(), d_arg.get(), d_w.get(), s, n, nullptr, fuse);
                }
                CUDA_CHECK(cudaDeviceSynchronize());
                CHECK(counter_value(counter) == 0u);
                const auto rw = ref_wb.download(), gw = got_wb.download(), rd = ref_din.download(), gd = got_din.download();
                REQUIRE(cudatest::all_finite(rw));
                REQUIRE(cudatest::all_finite(gw));
                REQUIRE(cudatest::all_finite(gd));
                CHECK(std::memcmp(rw.data(), gw.data(), rw.size() * sizeof(float)) == 0);
                CHECK(std::memcmp(rd.data(), gd.data(), rd.size() * sizeof(float)) == 0);
            }
        }
}

TEST_CASE("the optimizer that advances the step state equals optimizer_step + advance_state", "[cuda][fused][optimizer]") {
    SKIP_WITHOUT_CUDA();
    std::mt19937_64 r(303);
    for (size_t n : {size_t(1), size_t(255), size_t(100003)}) {
        INFO("n " << n);
        OptimizerConfig c;  // RMSprop, the reference recipe's
        const auto p0 = testutil::random_vector(n, r);
        auto a_p = to_device<float>(p0), b_p = to_device<float>(p0);
        DeviceBuffer<float> a_s(2 * n), b_s(2 * n);
        a_s.fill_bytes(0);
        b_s.fill_bytes(0);
        DeviceBuffer<StepState> a_st, b_st;
        device_state(a_st, 40, 2, 7);
        device_state(b_st, 40, 2, 7);
        DeviceBuffer<unsigned> counter(1);
        counter.fill_bytes(0);
        for (int step = 0; step < 3; ++step) {
            auto g = to_device<float>(testutil::random_vector(n, r));
            optimizer_step(c, a_p.get(), g.get(), a_s.get(), n, a_st.get(), nullptr);
            advance_state(a_st.get(), 20, nullptr);
            optimizer_step_advance(c, b_p.get(), g.get(), b_s.get(), n, b_st.get(), 20, counter.get(), nullptr);
        }
        CUDA_CHECK(cudaDeviceSynchronize());
        CHECK(counter_value(counter) == 0u);
        const auto ap = a_p.download(), bp = b_p.download(), as = a_s.download(), bs = b_s.download();
        CHECK(std::memcmp(ap.data(), bp.data(), ap.size() * sizeof(float)) == 0);
        CHECK(std::memcmp(as.data(), bs.data(), as.size() * sizeof(float)) == 0);
        const StepState sa = a_st.download()[0], sb = b_st.download()[0];
        CHECK(sb.first == 100);
        CHECK(sb.batch == 5);
        CHECK(sb.step == 10u);
        CHECK((sa.first == sb.first && sa.batch == sb.batch && sa.step == sb.step));
    }
}

TEST_CASE("conv blocks reading the pair order directly give build_gather's bits", "[cuda][fused][gather]") {
    SKIP_WITHOUT_CUDA();
    std::mt19937_64 r(304);
    const ConvShape s = conv_shape(1, 56, 46, 6, 3, 2);
    const int bank_n = 40, order_n = 300, first = 17;
    for (int count : {1, 3, 128}) {
        INFO("count " << count);
        const int n = 2 * count;
        const auto bank = testutil::random_vector(size_t(bank_n) * s.in_elems(), r, 0, 1);
        const auto w = testutil::random_vector(size_t(s.F) * s.C * s.K * s.K, r, -0.5, 0.5);
        const auto b = testutil::random_vector(s.F, r, -0.1, 0.1);
        std::vector<int> a(order_n), bb(order_n);
        for (int k = 0; k < order_n; ++k) a[k] = int(r() % bank_n), bb[k] = int(r() % bank_n);
        auto d_bank = to_device<float>(bank), d_w = to_device<float>(w), d_b = to_device<float>(b);
        auto d_a = to_device<int>(a), d_bb = to_device<int>(bb);
        DeviceBuffer<StepState> st;
        StepState* sp = device_state(st, first, 0, 5);
        DeviceBuffer<int> list(n);
        build_gather(d_a.get(), d_bb.get(), sp, count, list.get(), nullptr);
        const ImageGather pairs = ImageGather::pairs(d_a.get(), d_bb.get(), sp, count);
        const auto geff = testutil::random_vector(size_t(n) * s.out_elems(), r);
        auto d_geff = to_device<float>(geff);
        DeviceBuffer<float> partial(conv_partial_elems(s));
        for (bool tiled : {false, true}) {
            INFO((tiled ? "tiled" : "custom"));
            auto o1 = poisoned<float>(size_t(n) * s.out_elems()), o2 = poisoned<float>(size_t(n) * s.out_elems());
            auto a1 = poisoned<uint8_t>(size_t(n) * s.out_elems()), a2 = poisoned<uint8_t>(size_t(n) * s.out_elems());
            auto w1 = poisoned<float>(w.size() + b.size()), w2 = poisoned<float>(w.size() + b.size());
            auto fwd = tiled ? &siamese::cuda::conv_pool_forward_tiled : &siamese::cuda::conv_pool_forward;
            auto wgrad = tiled ? &siamese::cuda::conv_backward_weights_tiled : &siamese::cuda::conv_backward_weights;
            fwd(o1.get(), a1.get(), d_bank.get(), d_w.get(), d_b.get(), s, n, list.get(), 0.25f, 3, 7, sp, nullptr);
            fwd(o2.get(), a2.get(), d_bank.get(), d_w.get(), d_b.get(), s, n, pairs, 0.25f, 3, 7, sp, nullptr);
            wgrad(w1.get(), d_geff.get(), a1.get(), d_bank.get(), s, n, list.get(), partial.get(), partial.size(), nullptr, {});
            wgrad(w2.get(), d_geff.get(), a1.get(), d_bank.get(), s, n, pairs, partial.get(), partial.size(), nullptr, {});
            CUDA_CHECK(cudaDeviceSynchronize());
            const auto x1 = o1.download(), x2 = o2.download(), g1 = w1.download(), g2 = w2.download();
            REQUIRE(cudatest::all_finite(x2));
            REQUIRE(cudatest::all_finite(g2));
            CHECK(std::memcmp(x1.data(), x2.data(), x1.size() * sizeof(float)) == 0);
            CHECK(a1.download() == a2.download());
            CHECK(std::memcmp(g1.data(), g2.data(), g1.size() * sizeof(float)) == 0);
        }
    }
}

TEST_CASE("conv kernels compiled for the recipes' fixed shapes give the run-time shapes' bits", "[cuda][conv][fixed]") {
    SKIP_WITHOUT_CUDA();
    std::mt19937_64 r(305);
    const std::vector<ConvShape> shapes = {conv_shape(1, 56, 46, 6, 3, 2), conv_shape(6, 27, 22, 12, 3, 2),
                                           conv_shape(1, 56, 46, 16, 3, 2), conv_shape(16, 27, 22, 32, 3, 2)};
    for (const ConvShape& s : shapes)
        for (int n : {1, 3, 257}) {
            INFO("C" << s.C << " F" << s.F << " n" << n);
            const size_t pooled = size_t(n) * s.out_elems();
            const auto x = testutil::random_vector(size_t(n) * s.in_elems(), r, 0, 1);
            const auto w = testutil::random_vector(size_t(s.F) * s.C * s.K * s.K, r, -0.5, 0.5);
            const auto b = testutil::random_vector(s.F, r, -0.1, 0.1);
            const auto d = testutil::random_vector(pooled, r);
            auto d_x = to_device<float>(x), d_w = to_device<float>(w), d_b = to_device<float>(b), d_d = to_device<float>(d);
            DeviceBuffer<StepState> st;
            StepState* sp = device_state(st, 0, 0, 3);
            DeviceBuffer<float> partial(conv_partial_elems(s));
            std::vector<std::vector<float>> outs[2];
            std::vector<uint8_t> args[2];
            for (int fixed = 0; fixed < 2; ++fixed) {
                conv_fixed_shapes(fixed == 1);
                auto out = poisoned<float>(pooled), wb = poisoned<float>(w.size() + b.size()), din = poisoned<float>(x.size());
                auto arg = poisoned<uint8_t>(pooled), carg = poisoned<uint8_t>(pooled);
                auto cout = poisoned<float>(pooled), cwb = poisoned<float>(w.size() + b.size()), cdin = poisoned<float>(x.size());
                conv_pool_forward_tiled(out.get(), arg.get(), d_x.get(), d_w.get(), d_b.get(), s, n, nullptr, 0.25f, 9, 4, sp,
                                        nullptr);
                // The custom forward too: fixed shapes take each window's values together.
                conv_pool_forward(cout.get(), carg.get(), d_x.get(), d_w.get(), d_b.get(), s, n, nullptr, 0.25f, 9, 4, sp,
                                  nullptr);
                conv_backward_weights_tiled(wb.get(), d_d.get(), arg.get(), d_x.get(), s, n, nullptr, partial.get(),
                                            partial.size(), nullptr);
                conv_backward_input_tiled(din.get(), d_d.get(), arg.get(), d_w.get(), s, n, nullptr);
                // And the custom backward (fixed shapes: sizes folded into the index arithmetic).
                conv_backward_weights(cwb.get(), d_d.get(), arg.get(), d_x.get(), s, n, nullptr, partial.get(), partial.size(),
                                      nullptr);
                conv_backward_input(cdin.get(), d_d.get(), arg.get(), d_w.get(), s, n, nullptr);
                CUDA_CHECK(cudaDeviceSynchronize());
                outs[fixed] = {out.download(), wb.download(), din.download(), cout.download(), cwb.download(), cdin.download()};
                args[fixed] = arg.download();
                CHECK(carg.download() == args[fixed]);
            }
            conv_fixed_shapes(true);
            for (int k = 0; k < 6; ++k) {
                INFO("output " << k << " (tiled forward, weight and input gradients; the same, custom)");
                REQUIRE(cudatest::all_finite(outs[1][k]));
                CHECK(std::memcmp(outs[0][k].data(), outs[1][k].data(), outs[0][k].size() * sizeof(float)) == 0);
            }
            CHECK(args[0] == args[1]);
        }
}

TEST_CASE("conv1 and conv2 forward in one launch give the two tiled launches' bits", "[cuda][fused][conv][pair]") {
    // conv_pair_forward_tiled (--conv tiled --fused) against conv_pool_forward_tiled twice, dropout
    // on, images read through a gather list: the recipes' pairs (fixed shapes, then run-time) and
    // an odd pair, batches of 1, 3 and 257 images.
    SKIP_WITHOUT_CUDA();
    std::mt19937_64 r(307);
    const std::vector<std::pair<ConvShape, ConvShape>> pairs = {
        {conv_shape(1, 56, 46, 6, 3, 2), conv_shape(6, 27, 22, 12, 3, 2)},
        {conv_shape(1, 56, 46, 16, 3, 2), conv_shape(16, 27, 22, 32, 3, 2)},
        {conv_shape(2, 13, 11, 3, 3, 2), conv_shape(3, 5, 4, 4, 2, 1)}};
    for (bool fixed : {true, false}) {
        conv_fixed_shapes(fixed);
        for (const auto& [a, b] : pairs)
            for (int n : {1, 3, 257}) {
                INFO("a F" << a.F << " b F" << b.F << " n " << n << (fixed ? " fixed" : " run-time"));
                const int bank_n = 300;
                const auto bank = testutil::random_vector(size_t(bank_n) * a.in_elems(), r, 0, 1);
                const auto wa = testutil::random_vector(size_t(a.F) * a.C * a.K * a.K, r, -0.5, 0.5);
                const auto ba = testutil::random_vector(a.F, r, -0.1, 0.1);
                const auto wb = testutil::random_vector(size_t(b.F) * b.C * b.K * b.K, r, -0.5, 0.5);
                const auto bb = testutil::random_vector(b.F, r, -0.1, 0.1);
                std::vector<int> gather(n);
                for (int& g : gather) g = int(r() % bank_n);
                auto d_bank = to_device<float>(bank), d_wa = to_device<float>(wa), d_ba = to_device<float>(ba);
                auto d_wb = to_device<float>(wb), d_bb = to_device<float>(bb);
                auto d_g = to_device<int>(gather);
                DeviceBuffer<StepState> st;
                StepState* sp = device_state(st, 0, 0, 9);
                const size_t ea = size_t(n) * a.out_elems(), eb = size_t(n) * b.out_elems();
                auto oa1 = poisoned<float>(ea), oa2 = poisoned<float>(ea), ob1 = poisoned<float>(eb), ob2 = poisoned<float>(eb);
                auto aa1 = poisoned<uint8_t>(ea), aa2 = poisoned<uint8_t>(ea), ab1 = poisoned<uint8_t>(eb),
                     ab2 = poisoned<uint8_t>(eb);
                conv_pool_forward_tiled(oa1.get(), aa1.get(), d_bank.get(), d_wa.get(), d_ba.get(), a, n, d_g.get(), 0.25f, 3, 7,
                                        sp, nullptr);
                conv_pool_forward_tiled(ob1.get(), ab1.get(), oa1.get(), d_wb.get(), d_bb.get(), b, n, nullptr, 0.25f, 3, 8, sp,
                                        nullptr);
                conv_pair_forward_tiled(oa2.get(), aa2.get(), ob2.get(), ab2.get(), d_bank.get(), d_wa.get(), d_ba.get(),
                                        d_wb.get(), d_bb.get(), a, b, n, d_g.get(), 0.25f, 3, 7, sp, nullptr);
                CUDA_CHECK(cudaDeviceSynchronize());
                const auto x1 = oa1.download(), x2 = oa2.download(), y1 = ob1.download(), y2 = ob2.download();
                REQUIRE(cudatest::all_finite(y2));
                CHECK(std::memcmp(x1.data(), x2.data(), x1.size() * sizeof(float)) == 0);
                CHECK(std::memcmp(y1.data(), y2.data(), y1.size() * sizeof(float)) == 0);
                CHECK(aa1.download() == aa2.download());
                CHECK(ab1.download() == ab2.download());
            }
    }
    conv_fixed_shapes(true);
}

TEST_CASE("every kernel that reads an FP16 bank gives the bits it gives on FP32 images holding its values", "[cuda][conv][half]") {
    // --half-bank: the launchers take ImageIn::half and widen each pixel as they load it (exact),
    // so against the same launcher on the host-rounded FP32 bank: custom and tiled forward and
    // weight gradient (through a gather list and without), the pair forward, the augment and
    // mirror kernels, cuDNN's block. The recipes' shapes (fixed), an odd one and a 5x5/pool-3 one
    // (run-time path), batches of 1, 3 and 257 images.
    SKIP_WITHOUT_CUDA();
    std::mt19937_64 r(309);
    const std::vector<ConvShape> shapes = {conv_shape(1, 56, 46, 6, 3, 2), conv_shape(1, 56, 46, 16, 3, 2),
                                           conv_shape(2, 13, 11, 3, 3, 2), conv_shape(1, 20, 17, 4, 5, 3)};
    auto same = [](const std::vector<float>& a, const std::vector<float>& b) {
        return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
    };
    for (const ConvShape& s : shapes)
        for (int n : {1, 3, 257}) {
            INFO("C" << s.C << " H" << s.H << " F" << s.F << " K" << s.K << " P" << s.P << " n " << n);
            const int bank_n = 300;
            const auto raw = testutil::random_vector(size_t(bank_n) * s.in_elems(), r, 0, 1);
            std::vector<uint16_t> h(raw.size());
            std::vector<float> rounded(raw.size());
            for (size_t k = 0; k < raw.size(); ++k) h[k] = half_from_float(float(raw[k])), rounded[k] = half_round(float(raw[k]));
            auto d_h = to_device<uint16_t>(h);
            auto d_f = to_device<float>(rounded);
            const ImageIn half = ImageIn::half(d_h.get()), full(d_f.get());
            const auto w = testutil::random_vector(size_t(s.F) * s.C * s.K * s.K, r, -0.5, 0.5);
            const auto b = testutil::random_vector(s.F, r, -0.1, 0.1);
            auto d_w = to_device<float>(w), d_b = to_device<float>(b);
            std::vector<int> list(n);
            for (int& g : list) g = int(r() % bank_n);
            auto d_list = to_device<int>(list);
            DeviceBuffer<StepState> st;
            StepState* sp = device_state(st, 0, 0, 5);
            const size_t pooled = size_t(n) * s.out_elems();
            auto d_geff = to_device<float>(testutil::random_vector(pooled, r));
            DeviceBuffer<float> partial(conv_partial_elems(s));
            for (bool tiled : {false, true})
                for (bool gathered : {false, true}) {
                    INFO((tiled ? "tiled" : "custom") << (gathered ? ", gathered" : ""));
                    const ImageGather g = gathered ? ImageGather(d_list.get()) : ImageGather();
                    std::vector<float> out[2], wb[2];
                    std::vector<uint8_t> arg[2];
                    for (int k = 0; k < 2; ++k) {
                        const ImageIn in = k ? half : full;
                        auto o = poisoned<float>(pooled), dw = poisoned<float>(w.size() + b.size());
                        auto a = poisoned<uint8_t>(pooled);
                        if (tiled) {
                            conv_pool_forward_tiled(o.get(), a.get(), in, d_w.get(), d_b.get(), s, n, g, 0.25f, 3, 7, sp, nullptr);
                            conv_backward_weights_tiled(dw.get(), d_geff.get(), a.get(), in, s, n, g, partial.get(),
                                                        partial.size(), nullptr);
                        } else {
                            conv_pool_forward(o.get(), a.get(), in, d_w.get(), d_b.get(), s, n, g, 0.25f, 3, 7, sp, nullptr);
                            conv_backward_weights(dw.get(), d_geff.get(), a.get(), in, s, n, g, partial.get(), partial.size(),
                                                  nullptr);
                        }
                        CUDA_CHECK(cudaDeviceSynchronize());
                        out[k] = o.download(), wb[k] = dw.download(), arg[k] = a.download();
                    }
                    REQUIRE(cudatest::all_finite(out[1]));
                    REQUIRE(cudatest::all_finite(wb[1]));
                    CHECK(same(out[0], out[1]));
                    CHECK(arg[0] == arg[1]);
                    CHECK(same(wb[0], wb[1]));
                }
            // The pair forward (conv1 then a second block on its output), through the gather list:
            // the recipe's conv2 after a recipe's conv1 (the fixed-shape pair kernels), else an odd one.
            const bool recipe = s.C == 1 && s.H == 56 && s.W == 46;
            const ConvShape s2 = recipe ? conv_shape(s.F, s.Hp, s.Wp, 2 * s.F, 3, 2) : conv_shape(s.F, s.Hp, s.Wp, 5, 2, 1);
            const auto w2 = testutil::random_vector(size_t(s2.F) * s2.C * s2.K * s2.K, r, -0.5, 0.5);
            const auto b2 = testutil::random_vector(s2.F, r, -0.1, 0.1);
            auto d_w2 = to_device<float>(w2), d_b2 = to_device<float>(b2);
            std::vector<float> pair[2];
            for (int k = 0; k < 2; ++k) {
                auto oa = poisoned<float>(pooled), ob = poisoned<float>(size_t(n) * s2.out_elems());
                auto aa = poisoned<uint8_t>(pooled), ab = poisoned<uint8_t>(size_t(n) * s2.out_elems());
                conv_pair_forward_tiled(oa.get(), aa.get(), ob.get(), ab.get(), k ? half : full, d_w.get(), d_b.get(), d_w2.get(),
                                        d_b2.get(), s, s2, n, d_list.get(), 0.25f, 3, 7, sp, nullptr);
                CUDA_CHECK(cudaDeviceSynchronize());
                pair[k] = ob.download();
            }
            REQUIRE(cudatest::all_finite(pair[1]));
            CHECK(same(pair[0], pair[1]));
            // The augment kernel (one-channel banks: the P-K sampler's images) and the mirror.
            if (s.C == 1) {
                AugmentConfig c;
                c.enabled = true;
                std::vector<int> order(n + 4);
                for (int& o : order) o = int(r() % bank_n);
                auto d_order = to_device<int>(order);
                StepState* sp2 = device_state(st, 4, 0, 11);
                std::vector<float> views[2], mirrors[2];
                for (int k = 0; k < 2; ++k) {
                    auto v = poisoned<float>(size_t(n) * s.in_elems()), m = poisoned<float>(size_t(n) * s.in_elems());
                    augment_images(v.get(), k ? half : full, d_order.get(), n, s.H, s.W, c, 21, sp2, nullptr);
                    mirror_images(m.get(), k ? half : full, n, s.H, s.W, nullptr);
                    CUDA_CHECK(cudaDeviceSynchronize());
                    views[k] = v.download(), mirrors[k] = m.download();
                }
                REQUIRE(cudatest::all_finite(views[1]));
                CHECK(same(views[0], views[1]));
                CHECK(same(mirrors[0], mirrors[1]));
            }
#if SIAMESE_HAVE_CUDNN
            // cuDNN's block: its staging copy widens the bank (with and without a gather list).
            cudnnHandle_t ch;
            REQUIRE(cudnnCreate(&ch) == CUDNN_STATUS_SUCCESS);
            {
                CudnnConvBlock block(ch, s, n);
                for (bool gathered : {false, true}) {
                    INFO("cudnn" << (gathered ? ", gathered" : ""));
                    const ImageGather g = gathered ? ImageGather(d_list.get()) : ImageGather();
                    std::vector<float> out[2], wb[2];
                    for (int k = 0; k < 2; ++k) {
                        auto o = poisoned<float>(pooled), dw = poisoned<float>(w.size() + b.size());
                        auto a = poisoned<uint8_t>(pooled);
                        block.forward(o.get(), a.get(), k ? half : full, d_w.get(), d_b.get(), n, g, 0.25f, 3, 7, sp, nullptr);
                        block.backward(dw.get(), nullptr, d_geff.get(), a.get(), k ? half : full, d_w.get(), n, g, nullptr);
                        CUDA_CHECK(cudaDeviceSynchronize());
                        out[k] = o.download(), wb[k] = dw.download();
                    }
                    REQUIRE(cudatest::all_finite(out[1]));
                    CHECK(same(out[0], out[1]));
                    CHECK(same(wb[0], wb[1]));
                }
            }
            cudnnDestroy(ch);
#endif
        }
}
