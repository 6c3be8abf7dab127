// The fused tail kernel's own code (cuda/tail_phases.hpp, the phases cuda/tail.cu runs with a
// barrier between each) run on the CPU: every block, every phase, every thread of 256 in turn,
// shared memory poisoned with NaN first (a read before its write shows), the last block's
// reduction (colsum_emulation.hpp) after all blocks. Checked against the double reference (tests/tail_reference.hpp)
// as the [cuda] test checks the kernel: its indexing is thereby tested where no GPU exists.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "colsum_emulation.hpp"
#include "siamese/step_plan.hpp"
#include "tail_phases.hpp"
#include "tail_reference.hpp"

using namespace siamese;

namespace {

struct Outputs {
    std::vector<float> gw, gb, dh, ghb;
    float loss = std::numeric_limits<float>::quiet_NaN();
};

// The three product phases' outputs against plain loops in the order they promise: each e a
// chain of fmaf over i then + b (and the ReLU), each dh a chain over o (then the mask), each
// block partial of dW a chain over the block's rows: the threads may split the work any way,
// but every output's own sum keeps this order (the same bits as one output a thread).
struct PhaseOrder {
    long e_bad = 0, dh_bad = 0, dw_bad = 0;
    void check_forward(const tail::Args& a, const tail::Smem& s) {
        for (int r = 0; r < 2 * a.G; ++r)
            for (int o = 0; o < a.O; ++o) {
                float acc = 0.0f;
                for (int i = 0; i < a.I; ++i) acc = std::fmaf(s.hs[r * a.I + i], s.ws[o * s.ldw + i], acc);
                float e = acc + s.bs[o];
                if (a.relu) e = relu(e);
                e_bad += !same(e, s.es[r * a.O + o]);
            }
    }
    void check_input_grad(const tail::Args& a, const tail::Smem& s) {
        const float scale = dropout_keep_scale(a.h_rate);
        for (int r = 0; r < 2 * a.G; ++r)
            for (int i = 0; i < a.I; ++i) {
                float acc = 0.0f;
                for (int o = 0; o < a.O; ++o) acc = std::fmaf(s.gs[r * a.O + o], s.ws[o * s.ldw + i], acc);
                dh_bad += !same(s.hs[r * a.I + i] > 0.0f ? acc * scale : 0.0f, s.ds[r * a.I + i]);
            }
    }
    void check_partials(const tail::Args& a, const tail::Smem& s, const float* mine) {
        for (int o = 0; o < a.O; ++o)
            for (int i = 0; i < a.I; ++i) {
                float acc = 0.0f;
                for (int r = 0; r < 2 * a.G; ++r) acc = std::fmaf(s.gs[r * a.O + o], s.hs[r * a.I + i], acc);
                dw_bad += !same(acc, mine[o * a.I + i]);
            }
    }
    static bool same(float x, float y) { return std::memcmp(&x, &y, sizeof x) == 0; }
};

// pairs: the pairs a block (0: tail_pairs_per_block's, as at batch 128; the kernel takes up to 64
// for large batches, tail_pairs_for).
Outputs emulate(const tailtest::Problem& p, int threads, PhaseOrder* order = nullptr, int pairs = 0) {
    const int G = pairs ? pairs : tail_pairs_per_block(p.I, p.O), blocks = (p.count + G - 1) / G;
    const float nan = std::numeric_limits<float>::quiet_NaN();
    const std::vector<float> v(p.v.begin(), p.v.end()), hb(p.hb.begin(), p.hb.end()), w(p.w.begin(), p.w.end()),
        b(p.b.begin(), p.b.end());
    Outputs o;
    o.gw.assign(p.gw.size(), nan), o.gb.assign(p.O, nan), o.dh.assign(p.dh.size(), nan), o.ghb.assign(p.I, nan);
    std::vector<float> partial(size_t(blocks) * tail::block_stride(p.I, p.O), nan);
    const tail::Args a{v.data(), hb.data(), w.data(), b.data(), p.labels.data() + p.first, p.count, p.I, p.O, G, p.relu,
                       1.0f, p.rate, p.seed, p.step, p.layer, o.gw.data(), o.gb.data(), o.dh.data(), o.ghb.data(), &o.loss,
                       partial.data()};
    std::vector<float> sm(tail_smem_floats(G, p.I, p.O));
    for (int blk = 0; blk < blocks; ++blk) {
        std::fill(sm.begin(), sm.end(), nan);
        const tail::Smem s = tail::carve(sm.data(), G, p.I, p.O);
        for (int t = 0; t < threads; ++t) tail::load(a, s, blk, t, threads);
        for (int t = 0; t < threads; ++t) tail::forward(a, s, t, threads);
        if (order) order->check_forward(a, s);
        for (int t = 0; t < threads; ++t) tail::pair_terms(a, s, blk, t, threads);
        for (int t = 0; t < threads; ++t) tail::embed_grad(a, s, blk, t, threads);
        for (int t = 0; t < threads; ++t) tail::input_grad(a, s, blk, t, threads);
        if (order) order->check_input_grad(a, s);
        for (int t = 0; t < threads; ++t) tail::partials(a, s, blk, t, threads);
        if (order) order->check_partials(a, s, partial.data() + size_t(blk) * tail::block_stride(p.I, p.O));
    }
    colsumtest::emulate_block_column_sums(partial.data(), blocks, int(tail::block_partial(p.I, p.O)),
                                          int(tail::block_stride(p.I, p.O)), threads,
                                          [&a](int k, float v) { tail::reduce_store(a, k, v); });
    return o;
}

}  // namespace

TEST_CASE("the fused tail kernel's phases, run on the CPU, match the double reference", "[tail][fused]") {
    std::mt19937_64 r(401);
    for (auto [count, I, O] : tailtest::shapes())
        for (bool relu : {true, false})
            for (float rate : {0.0f, 0.1f}) {
                INFO("count " << count << " I " << I << " O " << O << " relu " << relu << " rate " << rate);
                REQUIRE(tail_pairs_per_block(I, O) > 0);
                const tailtest::Problem p = tailtest::make_problem(r, count, I, O, relu, rate);
                PhaseOrder order;
                const Outputs o = emulate(p, 256, &order);
                CHECK(order.e_bad == 0);  // every output's sum in its promised order, bit for bit
                CHECK(order.dh_bad == 0);
                CHECK(order.dw_bad == 0);
                // The same bounds as the [cuda] test: fp32 sums in another order than double's.
                CHECK(double(o.loss) == Approx(p.loss).epsilon(1e-5));
                CHECK(testutil::rel_error(o.gw, p.gw) < 1e-4);
                CHECK(tailtest::error_against(o.gb, p.gb, p.gb_scale) < 1e-4);  // gb cancels to 0 without the ReLU
                CHECK(testutil::rel_error(o.dh, p.dh) < 1e-5);
                CHECK(testutil::rel_error(o.ghb, p.ghb) < 1e-4);
            }
}

TEST_CASE("the tail's phases with the larger blocks of large batches (16, 32, 64 pairs) match the double reference", "[tail][fused]") {
    // tail_pairs_for doubles the pairs a block for batches over 1,024 pairs (the reference's
    // 128 -> 50 layer). The phases are the same code for any G: every block, every output, in
    // its promised order, and against the reference, on batches that leave a short last block.
    std::mt19937_64 r(403);
    for (int G : {16, 32, 64})
        for (int count : {G - 3, 2 * G + 5}) {
            INFO("G " << G << " count " << count);
            const tailtest::Problem p = tailtest::make_problem(r, count, 128, 50, true, 0.1f);
            PhaseOrder order;
            const Outputs o = emulate(p, 256, &order, G);
            CHECK(order.e_bad == 0);
            CHECK(order.dh_bad == 0);
            CHECK(order.dw_bad == 0);
            CHECK(double(o.loss) == Approx(p.loss).epsilon(1e-5));
            CHECK(testutil::rel_error(o.gw, p.gw) < 1e-4);
            CHECK(tailtest::error_against(o.gb, p.gb, p.gb_scale) < 1e-4);
            CHECK(testutil::rel_error(o.dh, p.dh) < 1e-5);
            CHECK(testutil::rel_error(o.ghb, p.ghb) < 1e-4);
        }
}

TEST_CASE("the tail's phases give the same bits whatever the thread count (no thread depends on another)", "[tail][fused]") {
    // Each phase's iterations are independent, so the number of threads (and so their order on
    // a GPU) cannot change a value: a phase that read another thread's unfinished work would.
    std::mt19937_64 r(402);
    const tailtest::Problem p = tailtest::make_problem(r, 37, 128, 50, true, 0.1f);
    const Outputs a = emulate(p, 256), b = emulate(p, 33);
    CHECK(a.gw == b.gw);
    CHECK(a.dh == b.dh);
    CHECK(a.ghb == b.ghb);
    CHECK(a.loss == b.loss);
}
