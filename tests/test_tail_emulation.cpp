// The fused tail kernel's own code (cuda/tail_phases.hpp, the phases cuda/tail.cu runs with a
// barrier between each) run on the CPU: every block, every phase, every thread of 256 in turn,
// shared memory poisoned with NaN first (a read before its write shows), the last block's
// reduction (colsum_emulation.hpp) after all blocks. Checked against the double reference (tests/tail_reference.hpp)
// as the [cuda] test checks the kernel: its indexing is thereby tested where no GPU exists.
#include <catch2/catch.hpp>

#include <cmath>
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

Outputs emulate(const tailtest::Problem& p, int threads) {
    const int G = tail_pairs_per_block(p.I, p.O), blocks = (p.count + G - 1) / G;
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
        for (int t = 0; t < threads; ++t) tail::pair_terms(a, s, blk, t, threads);
        for (int t = 0; t < threads; ++t) tail::embed_grad(a, s, blk, t, threads);
        for (int t = 0; t < threads; ++t) tail::input_grad(a, s, blk, t, threads);
        for (int t = 0; t < threads; ++t) tail::partials(a, s, blk, t, threads);
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
                const Outputs o = emulate(p, 256);
                // The same bounds as the [cuda] test: fp32 sums in another order than double's.
                CHECK(double(o.loss) == Approx(p.loss).epsilon(1e-5));
                CHECK(testutil::rel_error(o.gw, p.gw) < 1e-4);
                CHECK(tailtest::error_against(o.gb, p.gb, p.gb_scale) < 1e-4);  // gb cancels to 0 without the ReLU
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
