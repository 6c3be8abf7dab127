// The dense layers' own matrix product (--gemm custom), phase by phase, as host-and-device
// functions: cuda/gemm.cu runs the phases with a barrier between each, and
// tests/test_gemm_emulation.cpp runs the very same functions on the CPU, block by block and
// thread by thread, against a double reference and the documented order below.
//
// Why not cuBLAS: at the reference step's sizes (256 x 1440 x 128 three ways) cuBLAS picks SIMT
// kernels with a separate split-K reduction launch: the 2026-11-29 ncu table measured dense1's
// three products at 43 us a step at base clocks (five kernels), against a 1.6 us FLOP floor each.
// Here each product is ONE launch: 64 x 32 output tiles, 4 x 4 outputs a thread, the K range
// split so that about kGemmTargetBlocks blocks run, and the last block of each tile (the ticket
// of cuda/last_block.cuh) adding its splits' partial tiles in a fixed order.
//
// The order, a function of (M, N, K) alone (never of the device): C(m, n) = P_0 + P_1 + ... +
// P_{S-1}, added left to right starting from P_0, where P_s = fmaf(A(m, k), B(k, n), acc)
// chained over the split's k in increasing order from acc = 0. One split: C = P_0. The split
// count is a constant of the shapes (not the device's SM count), so every GPU gives the same bits.
#pragma once
#include <cmath>
#include <cstddef>

#include "siamese/philox.hpp"  // SIAMESE_HD, SIAMESE_UNROLL

namespace siamese::cuda {

constexpr int kGemmBM = 64, kGemmBN = 32, kGemmBK = 16;  // a block's tile of C and its k step
constexpr int kGemmThreads = 128;                        // 16 x 8 threads of 4 x 4 outputs
constexpr int kGemmLdA = kGemmBM + 4, kGemmLdB = kGemmBN + 4;  // shared rows, padded (16-byte aligned)
constexpr int kGemmTileFloats = kGemmBM * kGemmBN;
// Blocks a split product aims at: about one a multiprocessor of an H100/H200 (132). Products
// with fewer tiles are split along K; with this many tiles or more they are not.
constexpr int kGemmTargetBlocks = 132;
// Splits keep at least this much of K (4 k steps: a split's loads worth its block).
constexpr int kGemmMinSplitK = 4 * kGemmBK;
// Scratch every split product fits in: tiles x splits < tiles + kGemmTargetBlocks <= 2 x
// kGemmTargetBlocks partial tiles (splits > 1 only when tiles < kGemmTargetBlocks), and a
// ticket counter a tile.
constexpr size_t kGemmPartialFloats = size_t(2) * kGemmTargetBlocks * kGemmTileFloats;
constexpr size_t kGemmCounters = kGemmTargetBlocks;

// C (M, N) = A (M, K) . B (K, N), row-major C with rows ldc floats apart. Each operand is read
// in place, either way round: A(m, k) = a_kc ? a[m * lda + k] : a[k * lda + m], B(k, n) =
// b_kc ? b[n * ldb + k] : b[k * ldb + n] (the dense layers' forward reads x and W along k; the
// weight gradient reads d and x along m and n; the input gradient d along k, W along n).
struct GemmArgs {
    const float* a;
    int lda;
    bool a_kc;
    const float* b;
    int ldb;
    bool b_kc;
    float* c;
    int ldc;
    int M, N, K;
    int tiles_m, tiles_n, splits, kchunk;  // gemm_plan's
    float* partial;                        // splits > 1: tiles x splits partial tiles
};

SIAMESE_HD int gemm_ceil_div(int a, int b) { return (a + b - 1) / b; }

// The tiling and the K split of a product (sets tiles_m, tiles_n, splits, kchunk of g).
SIAMESE_HD void gemm_plan(GemmArgs& g) {
    g.tiles_m = gemm_ceil_div(g.M, kGemmBM);
    g.tiles_n = gemm_ceil_div(g.N, kGemmBN);
    const int tiles = g.tiles_m * g.tiles_n;
    int s = tiles >= kGemmTargetBlocks ? 1 : gemm_ceil_div(kGemmTargetBlocks, tiles);
    const int most = gemm_ceil_div(g.K, kGemmMinSplitK);
    if (s > most) s = most;
    if (s < 1) s = 1;
    g.kchunk = gemm_ceil_div(gemm_ceil_div(g.K > 0 ? g.K : 1, s), kGemmBK) * kGemmBK;  // whole k steps
    g.splits = g.K > 0 ? gemm_ceil_div(g.K, g.kchunk) : 1;                             // none empty
}
SIAMESE_HD int gemm_tiles(const GemmArgs& g) { return g.tiles_m * g.tiles_n; }
SIAMESE_HD int gemm_k_begin(const GemmArgs& g, int split) { return split * g.kchunk; }
SIAMESE_HD int gemm_k_end(const GemmArgs& g, int split) {
    const int e = (split + 1) * g.kchunk;
    return e < g.K ? e : g.K;
}
SIAMESE_HD int gemm_k_steps(const GemmArgs& g, int split) {
    const int n = gemm_k_end(g, split) - gemm_k_begin(g, split);
    return n > 0 ? gemm_ceil_div(n, kGemmBK) : 0;
}

// A thread's running sums (rows 4*(tid/8).., columns 4*(tid%8).. of the tile) and the operand
// values it carries from global to shared memory for the next k step.
struct GemmThread {
    float acc[16];
    float ra[kGemmBM * kGemmBK / kGemmThreads];  // 8
    float rb[kGemmBN * kGemmBK / kGemmThreads];  // 4
};

SIAMESE_HD void gemm_zero(GemmThread& t) {
    SIAMESE_UNROLL
    for (int j = 0; j < 16; ++j) t.acc[j] = 0.0f;
}

// Which element of the k step's A tile (mm, kk) and B tile (kk, nn) value j of thread tid is:
// consecutive threads along the operand's contiguous dimension (coalesced loads).
SIAMESE_HD void gemm_a_slot(bool a_kc, int tid, int j, int& mm, int& kk) {
    const int idx = tid + kGemmThreads * j;
    if (a_kc) mm = idx / kGemmBK, kk = idx % kGemmBK;
    else kk = idx / kGemmBM, mm = idx % kGemmBM;
}
SIAMESE_HD void gemm_b_slot(bool b_kc, int tid, int j, int& kk, int& nn) {
    const int idx = tid + kGemmThreads * j;
    if (b_kc) nn = idx / kGemmBK, kk = idx % kGemmBK;
    else kk = idx / kGemmBN, nn = idx % kGemmBN;
}

// Phase 1: thread tid's values of k step `step` of tile `tile`, split `split`, into its
// registers: zero outside C's rows and columns and past the split's K range (never multiplied:
// gemm_multiply stops at the range's end, so the zeros only fill the tile).
SIAMESE_HD void gemm_fetch(const GemmArgs& g, int tile, int split, int step, int tid, GemmThread& t) {
    const int m0 = (tile / g.tiles_n) * kGemmBM, n0 = (tile % g.tiles_n) * kGemmBN;
    const int k0 = gemm_k_begin(g, split) + step * kGemmBK, kend = gemm_k_end(g, split);
    SIAMESE_UNROLL
    for (int j = 0; j < kGemmBM * kGemmBK / kGemmThreads; ++j) {
        int mm, kk;
        gemm_a_slot(g.a_kc, tid, j, mm, kk);
        const int m = m0 + mm, k = k0 + kk;
        t.ra[j] = m < g.M && k < kend ? g.a[g.a_kc ? size_t(m) * g.lda + k : size_t(k) * g.lda + m] : 0.0f;
    }
    SIAMESE_UNROLL
    for (int j = 0; j < kGemmBN * kGemmBK / kGemmThreads; ++j) {
        int kk, nn;
        gemm_b_slot(g.b_kc, tid, j, kk, nn);
        const int n = n0 + nn, k = k0 + kk;
        t.rb[j] = n < g.N && k < kend ? g.b[g.b_kc ? size_t(n) * g.ldb + k : size_t(k) * g.ldb + n] : 0.0f;
    }
}

// Phase 2: the registers into the shared tiles, As[kk][mm] and Bs[kk][nn].
SIAMESE_HD void gemm_stash(const GemmArgs& g, const GemmThread& t, float* As, float* Bs, int tid) {
    SIAMESE_UNROLL
    for (int j = 0; j < kGemmBM * kGemmBK / kGemmThreads; ++j) {
        int mm, kk;
        gemm_a_slot(g.a_kc, tid, j, mm, kk);
        As[kk * kGemmLdA + mm] = t.ra[j];
    }
    SIAMESE_UNROLL
    for (int j = 0; j < kGemmBN * kGemmBK / kGemmThreads; ++j) {
        int kk, nn;
        gemm_b_slot(g.b_kc, tid, j, kk, nn);
        Bs[kk * kGemmLdB + nn] = t.rb[j];
    }
}

// Four consecutive floats (16-byte aligned): one 16-byte load on the device.
SIAMESE_HD void gemm_load4(const float* p, float* v) {
#ifdef __CUDA_ARCH__
    const float4 q = *reinterpret_cast<const float4*>(p);
    v[0] = q.x, v[1] = q.y, v[2] = q.z, v[3] = q.w;
#else
    for (int j = 0; j < 4; ++j) v[j] = p[j];
#endif
}

// Phase 3: the k step's products into the thread's 4 x 4 sums, k in increasing order, up to the
// split's end (two 16-byte shared loads for 16 multiply-adds).
SIAMESE_HD void gemm_multiply(const GemmArgs& g, const float* As, const float* Bs, int split, int step, int tid,
                              GemmThread& t) {
    const int left = gemm_k_end(g, split) - (gemm_k_begin(g, split) + step * kGemmBK);
    const int kn = left < kGemmBK ? left : kGemmBK;
    const int tm = tid / (kGemmBN / 4), tn = tid % (kGemmBN / 4);
    auto one_k = [&](int kk) {
        float av[4], bv[4];
        gemm_load4(As + kk * kGemmLdA + 4 * tm, av);
        gemm_load4(Bs + kk * kGemmLdB + 4 * tn, bv);
        SIAMESE_UNROLL
        for (int r = 0; r < 4; ++r)
            SIAMESE_UNROLL
            for (int c = 0; c < 4; ++c) t.acc[4 * r + c] = fmaf(av[r], bv[c], t.acc[4 * r + c]);
    };
    if (kn == kGemmBK) {  // a whole k step (all but a split's last): unrolled
        SIAMESE_UNROLL
        for (int kk = 0; kk < kGemmBK; ++kk) one_k(kk);
    } else {
        for (int kk = 0; kk < kn; ++kk) one_k(kk);
    }
}

// Phase 4: one split: the sums into C (inside its rows and columns). Several: into the split's
// partial tile (row-major 64 x 32, whole: the reduction reads it with 16-byte loads).
SIAMESE_HD void gemm_store(const GemmArgs& g, int tile, int split, int tid, const GemmThread& t) {
    const int tm = tid / (kGemmBN / 4), tn = tid % (kGemmBN / 4);
    if (g.splits > 1) {
        float* slab = g.partial + (size_t(tile) * g.splits + split) * kGemmTileFloats;
        for (int r = 0; r < 4; ++r)
            for (int c = 0; c < 4; ++c) slab[(4 * tm + r) * kGemmBN + 4 * tn + c] = t.acc[4 * r + c];
        return;
    }
    const int m0 = (tile / g.tiles_n) * kGemmBM + 4 * tm, n0 = (tile % g.tiles_n) * kGemmBN + 4 * tn;
    for (int r = 0; r < 4; ++r)
        for (int c = 0; c < 4; ++c)
            if (m0 + r < g.M && n0 + c < g.N) g.c[size_t(m0 + r) * g.ldc + n0 + c] = t.acc[4 * r + c];
}

// Phase 5 (the tile's last block, after every split's store): C = P_0 + P_1 + ... in split
// order. load.quad(p, v): four floats at p (16-byte aligned), read past this SM's L1 on the device.
template <class Load>
SIAMESE_HD void gemm_reduce(const GemmArgs& g, int tile, int tid, Load load) {
    const int tm = tid / (kGemmBN / 4), tn = tid % (kGemmBN / 4);
    const float* first = g.partial + size_t(tile) * g.splits * kGemmTileFloats;
    const int m0 = (tile / g.tiles_n) * kGemmBM + 4 * tm, n0 = (tile % g.tiles_n) * kGemmBN + 4 * tn;
    for (int r = 0; r < 4; ++r) {
        const int at = (4 * tm + r) * kGemmBN + 4 * tn;
        float sum[4], v[4];
        load.quad(first + at, sum);
        for (int s = 1; s < g.splits; ++s) {
            load.quad(first + size_t(s) * kGemmTileFloats + at, v);
            SIAMESE_UNROLL
            for (int c = 0; c < 4; ++c) sum[c] += v[c];
        }
        for (int c = 0; c < 4; ++c)
            if (m0 + r < g.M && n0 + c < g.N) g.c[size_t(m0 + r) * g.ldc + n0 + c] = sum[c];
    }
}

}  // namespace siamese::cuda
