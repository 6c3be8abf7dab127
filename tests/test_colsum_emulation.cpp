// The block column sums (cuda/colsum_phases.hpp: the last block's reduction of the fused conv
// weight gradient and tail, and the column_sums launch) run on the CPU phase by phase, thread by
// thread (colsum_emulation.hpp): the order they promise, bit for bit, whatever the thread count;
// every column written once; and the plan's work per thread for the recipes' shapes, held where
// it is (the reduction's latency on a GPU is its chain of loads a thread).
#include <catch2/catch.hpp>

#include <cmath>
#include <random>
#include <vector>

#include "colsum_emulation.hpp"
#include "conv_phases.hpp"
#include "siamese/network.hpp"
#include "siamese/step_plan.hpp"
#include "tail_phases.hpp"
#include "test_util.hpp"

using namespace siamese;
using namespace siamese::cuda;

namespace {

// The promised order, written out plainly: column c = 0 + S_0 + S_1 + ..., S_s = 0 + the rows
// of segment s in order.
std::vector<float> documented_sums(const std::vector<float>& m, int rows, int cols, int ld, int segs, int seg_rows) {
    std::vector<float> out(cols);
    for (int c = 0; c < cols; ++c) {
        float total = 0.0f;
        for (int s = 0; s < segs; ++s) {
            float part = 0.0f;
            for (int r = s * seg_rows; r < std::min(rows, (s + 1) * seg_rows); ++r) part += m[size_t(r) * ld + c];
            total += part;
        }
        out[c] = total;
    }
    return out;
}

struct Shape {
    int rows, cols, ld;
};

}  // namespace

TEST_CASE("the block column sums add in their documented order whatever the thread count, each column once",
          "[colsum]") {
    std::mt19937_64 r(501);
    // The recipes' reductions at batch 128 (conv1 and conv2's chunk partials, the tail's blocks
    // with its padded stride, the dense bias), the strong recipe's conv2, and odd ones.
    const std::vector<Shape> shapes = {{256, 60, 60}, {86, 660, 660}, {16, 6579, 6580}, {256, 128, 128}, {256, 50, 50},
                                       {14, 4640, 4640}, {1, 1, 1},   {3, 5, 7},     {257, 3, 3},      {9, 1, 1},
                                       {2000, 2, 2},  {40, 1025, 1029}, {1024, 61, 64}};
    for (const Shape& sh : shapes) {
        INFO("rows " << sh.rows << " cols " << sh.cols << " ld " << sh.ld);
        const auto d = testutil::random_vector(size_t(sh.rows) * sh.ld, r, -1, 1);
        const std::vector<float> m(d.begin(), d.end());  // mixed signs: another order gives other bits
        const ColsumPlan p = colsum_plan(sh.rows, sh.cols, sh.ld, 256);
        // The plan: no empty segment, every row in one, segments of 8 rows or more when split,
        // a round's slots within the shared tile.
        CHECK(p.segs * p.seg_rows >= sh.rows);
        CHECK((p.segs - 1) * p.seg_rows < sh.rows);
        CHECK((p.segs == 1 || p.seg_rows >= 8));
        CHECK(colsum_tile_floats(p) <= kColsumTileFloats);
        CHECK(p.rounds * p.per_round >= p.quads);
        const std::vector<float> want = documented_sums(m, sh.rows, sh.cols, sh.ld, p.segs, p.seg_rows);
        for (int threads : {256, 33, 1, 1024}) {
            INFO("threads " << threads);
            const ColsumPlan q = colsum_plan(sh.rows, sh.cols, sh.ld, threads);
            CHECK(q.segs == p.segs);  // the order never depends on the thread count
            CHECK(q.seg_rows == p.seg_rows);
            std::vector<float> got(sh.cols, std::nanf(""));
            std::vector<int> writes(sh.cols, 0);
            bool in_range = true;
            colsumtest::emulate_block_column_sums(m.data(), sh.rows, sh.cols, sh.ld, threads, [&](int c, float v) {
                if (c < 0 || c >= sh.cols) {
                    in_range = false;
                    return;
                }
                got[c] = v;
                ++writes[c];
            });
            CHECK(in_range);
            CHECK(std::count(writes.begin(), writes.end(), 1) == sh.cols);
            CHECK(got == want);  // bit for bit (NaN, from a poisoned tile, never equals)
        }
        // And close to the exact sums: fp32 additions, at most rows of them on a path, each
        // off by at most 2^-24 of the running magnitude.
        double worst = 0;
        for (int c = 0; c < sh.cols; ++c) {
            double exact = 0, mag = 0;
            for (int row = 0; row < sh.rows; ++row) exact += m[size_t(row) * sh.ld + c], mag += std::abs(m[size_t(row) * sh.ld + c]);
            worst = std::max(worst, std::abs(double(want[c]) - exact) / (mag * sh.rows * std::ldexp(1.0, -24) + 1e-30));
        }
        CHECK(worst <= 1.0);
    }
}

TEST_CASE("the recipes' last-block reductions keep every thread at work, with short chains of loads", "[colsum]") {
    // Loads a thread makes (rounds x rows a segment, at 256 threads): the chain that sets the
    // reduction's latency on a GPU, where each batch of independent loads costs one L2 round
    // trip. A thread a column summing every row made 256 (conv1), 258 (conv2: 3 rounds of 86)
    // and 416 (the tail: 26 rounds of 16 blocks).
    auto loads = [](int rows, int cols, int ld) {
        const ColsumPlan p = colsum_plan(rows, cols, ld, 256);
        return p.rounds * p.seg_rows;
    };
    const ConvShape conv1 = conv_shape(1, 56, 46, 6, 3, 2), conv2 = conv_shape(6, 27, 22, 12, 3, 2);
    const int n = 256;  // images of a 128-pair batch
    auto chunks = [n](const ConvShape& s) { return (n + wgrad_chunk(s, n) - 1) / wgrad_chunk(s, n); };
    REQUIRE(chunks(conv1) == 256);
    REQUIRE(chunks(conv2) == 86);
    CHECK(loads(chunks(conv1), wgrad_params(conv1), wgrad_params(conv1)) == 16);   // 15 column groups x 16 segments
    CHECK(loads(chunks(conv2), wgrad_params(conv2), wgrad_params(conv2)) == 86);   // 165 column groups, one round
    const int G = tail_pairs_per_block(128, 50), tail_blocks = (128 + G - 1) / G;
    REQUIRE(tail_blocks == 16);
    CHECK(loads(tail_blocks, int(tail::block_partial(128, 50)), int(tail::block_stride(128, 50))) == 7 * 16);
    CHECK(tail::block_stride(128, 50) % 4 == 0);  // four columns a 16-byte load
}
