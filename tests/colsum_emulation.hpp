// cuda/last_block.cuh's block_column_sums run on the CPU: each round's two phases
// (cuda/colsum_phases.hpp) for every thread in turn, the shared tile poisoned with NaN first (a
// read before its write shows). Used by the emulations of the kernels whose last block sums the
// partials (the fused tail, the conv weight gradient) and by the column sums' own test.
#pragma once
#include <limits>
#include <vector>

#include "colsum_phases.hpp"

namespace colsumtest {

template <class Store>
void emulate_block_column_sums(const float* m, int rows, int cols, int ld, int threads, Store store) {
    using namespace siamese::cuda;
    const ColsumPlan p = colsum_plan(rows, cols, ld, threads);
    std::vector<float> tile(kColsumTileFloats);
    struct Load {
        void quad(const float* q, float* v) const {
            for (int j = 0; j < 4; ++j) v[j] = q[j];
        }
        float one(const float* q) const { return *q; }
    };
    for (int round = 0; round < p.rounds; ++round) {
        std::fill(tile.begin(), tile.end(), std::numeric_limits<float>::quiet_NaN());
        for (int t = 0; t < threads; ++t) colsum_segments(p, round, m, tile.data(), t, threads, Load{});
        for (int t = 0; t < threads; ++t) colsum_combine(p, round, tile.data(), store, t, threads);
    }
}

}  // namespace colsumtest
