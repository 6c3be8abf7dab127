// Column sums of a (rows, cols) matrix by ONE block, in a fixed order and with every thread at
// work: the reduction after each kernel that leaves per-block partial sums (the conv weight
// gradient's chunks, the fused tail's blocks: their last block to finish runs it) and the
// column_sums launch (the bias gradients), all in the same order, so the fused step keeps the
// bits of the unfused one.
//
// Why: a thread per column summing every row in turn is a chain of `rows` dependent adds fed
// by L2 loads; conv1's 256 chunk rows of 60 weight gradients kept 60 threads of 256 busy for 16
// L2 round trips of 16 unrolled loads (estimated ~3 us on an H200, against a step floor of
// ~15 us; not yet measured). Here the rows of each column are split into `segs` segments summed
// by different threads, four columns a thread (one 16-byte load a row where aligned, loads in
// batches of kColsumBatch), then each column's segment sums are added in segment order. conv1's
// partials: 15 column groups x 16 segments of 16 rows = 240 threads, two batches of loads each.
//
// The order, a function of (rows, cols) alone (never of the thread count or the alignment):
// column c = 0.0f + S_0 + S_1 + ... + S_{segs-1}, where S_s = 0.0f + m[r0][c] + m[r0+1][c] + ...
// over the rows of segment s (rows s*seg_rows to (s+1)*seg_rows - 1). One segment: the plain
// row-order sum.
//
// Host-and-device phases (no CUDA header), run by the kernels with a barrier between each
// (block_column_sums in cuda/last_block.cuh) and by the CPU suite thread by thread
// (tests/colsum_emulation.hpp, tests/test_colsum_emulation.cpp).
#pragma once
#include <cstddef>

#include "siamese/philox.hpp"  // SIAMESE_HD

namespace siamese::cuda {

// The thread count the segments are chosen for (and the most a block's shared tile serves).
constexpr int kColsumThreads = 256;

struct ColsumPlan {
    int rows = 0, cols = 0, ld = 0;  // the matrix: m[r * ld + c]
    int quads = 0;                   // column groups of four (the last may be short)
    int segs = 1, seg_rows = 0;      // row segments of each column, rows a segment
    int per_round = 1, rounds = 0;   // column groups a round of the block takes; rounds
};

// The plan for nt threads: segments so that quads * segs is about kColsumThreads, each of at
// least 8 rows (a batch of loads worth its own thread).
SIAMESE_HD ColsumPlan colsum_plan(int rows, int cols, int ld, int nt) {
    ColsumPlan p;
    p.rows = rows, p.cols = cols, p.ld = ld;
    p.quads = (cols + 3) / 4;
    if (rows < 1 || cols < 1) return p;  // rounds 0: nothing written (callers pass rows >= 1)
    int s = kColsumThreads / p.quads;
    if (s > rows / 8) s = rows / 8;
    if (s < 1) s = 1;
    p.seg_rows = (rows + s - 1) / s;
    p.segs = (rows + p.seg_rows - 1) / p.seg_rows;
    const int budget = nt < kColsumThreads ? nt : kColsumThreads;  // the shared tile's slots
    p.per_round = budget / p.segs;
    if (p.per_round < 1) p.per_round = 1;
    if (p.per_round > p.quads) p.per_round = p.quads;
    p.rounds = (p.quads + p.per_round - 1) / p.per_round;
    return p;
}

// Floats of shared memory a round uses (4 per segment slot): at most kColsumTileFloats.
constexpr int kColsumTileFloats = 4 * kColsumThreads;
SIAMESE_HD int colsum_tile_floats(const ColsumPlan& p) { return 4 * p.per_round * p.segs; }

// Rows a thread loads before it adds them: independent loads, in flight together (one L2 round
// trip for the batch instead of one a row).
constexpr int kColsumBatch = 8;

// Phase 1 of round `round`: each (column group, segment) slot's four sums into tile.
// load.quad(q, v): v[0..4) = q[0..4) (one 16-byte load where the matrix allows it);
// load.one(q): *q (the last, short column group).
template <class Load>
SIAMESE_HD void colsum_segments(const ColsumPlan& p, int round, const float* m, float* tile, int tid, int nt, Load load) {
    for (int u = tid; u < p.per_round * p.segs; u += nt) {
        const int qr = u % p.per_round, s = u / p.per_round, q = round * p.per_round + qr;
        float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        if (q < p.quads) {
            const int r0 = s * p.seg_rows, r1 = r0 + p.seg_rows < p.rows ? r0 + p.seg_rows : p.rows;
            const int c0 = 4 * q, nc = p.cols - c0 < 4 ? p.cols - c0 : 4;
            const float* col = m + c0;
            if (nc == 4) {
                for (int r = r0; r < r1; r += kColsumBatch) {
                    float v[kColsumBatch][4] = {};
                    SIAMESE_UNROLL
                    for (int b = 0; b < kColsumBatch; ++b)
                        if (r + b < r1) load.quad(col + size_t(r + b) * p.ld, v[b]);
                    SIAMESE_UNROLL
                    for (int b = 0; b < kColsumBatch; ++b)
                        if (r + b < r1)
                            for (int j = 0; j < 4; ++j) acc[j] += v[b][j];
                }
            } else {
                for (int r = r0; r < r1; ++r)
                    for (int j = 0; j < nc; ++j) acc[j] += load.one(col + size_t(r) * p.ld + j);
            }
        }
        for (int j = 0; j < 4; ++j) tile[4 * u + j] = acc[j];
    }
}

// Phase 2 of round `round`: each column's segment sums added in segment order; store(c, sum).
template <class Store>
SIAMESE_HD void colsum_combine(const ColsumPlan& p, int round, const float* tile, Store store, int tid, int nt) {
    for (int k = tid; k < 4 * p.per_round; k += nt) {
        const int qr = k / 4, j = k % 4, c = 4 * (round * p.per_round + qr) + j;
        if (c >= p.cols) continue;
        float total = 0.0f;
        for (int s = 0; s < p.segs; ++s) total += tile[4 * (s * p.per_round + qr) + j];
        store(c, total);
    }
}

}  // namespace siamese::cuda
