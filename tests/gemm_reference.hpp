// The custom GEMM (cuda/gemm_phases.hpp) on the CPU, two ways: its documented order written out
// as plain loops (C = P_0 + P_1 + ..., each P_s a chain of fmaf over its split's k), and the
// kernel itself run block by block and thread by thread (every phase for every thread between
// two barriers, shared memory and scratch poisoned with NaN first). Used by the CPU emulation
// test and by the [cuda] test (the device must give the documented order's bits).
#pragma once
#include <cmath>
#include <limits>
#include <vector>

#include "gemm_phases.hpp"

namespace gemmtest {

using siamese::cuda::GemmArgs;

// A and B read as the kernel reads them.
inline float a_at(const GemmArgs& g, int m, int k) { return g.a_kc ? g.a[size_t(m) * g.lda + k] : g.a[size_t(k) * g.lda + m]; }
inline float b_at(const GemmArgs& g, int k, int n) { return g.b_kc ? g.b[size_t(n) * g.ldb + k] : g.b[size_t(k) * g.ldb + n]; }

// The documented order, into c (M rows of ldc floats; other columns untouched). g: planned.
inline void documented_product(const GemmArgs& g, float* c) {
    for (int m = 0; m < g.M; ++m)
        for (int n = 0; n < g.N; ++n) {
            float total = 0.0f;
            for (int s = 0; s < g.splits; ++s) {
                float acc = 0.0f;
                for (int k = siamese::cuda::gemm_k_begin(g, s); k < siamese::cuda::gemm_k_end(g, s); ++k)
                    acc = std::fmaf(a_at(g, m, k), b_at(g, k, n), acc);
                total = s == 0 ? acc : total + acc;
            }
            c[size_t(m) * g.ldc + n] = total;
        }
}

// The kernel's schedule (cuda/gemm.cu) on the CPU: every block (tile, split), the phases in
// order with every thread between barriers, then each tile's reduction once all its splits have
// stored (the last block's ticket). g.partial: kGemmPartialFloats floats (poisoned here).
inline void emulate_gemm(const GemmArgs& g) {
    using namespace siamese::cuda;
    const float nan = std::numeric_limits<float>::quiet_NaN();
    std::fill(g.partial, g.partial + kGemmPartialFloats, nan);
    std::vector<float> As(kGemmBK * kGemmLdA), Bs(kGemmBK * kGemmLdB);
    std::vector<GemmThread> th(kGemmThreads);
    for (int tile = 0; tile < gemm_tiles(g); ++tile) {
        for (int split = 0; split < g.splits; ++split) {
            std::fill(As.begin(), As.end(), nan);
            std::fill(Bs.begin(), Bs.end(), nan);
            const int steps = gemm_k_steps(g, split);
            for (int t = 0; t < kGemmThreads; ++t) {
                gemm_zero(th[t]);
                gemm_fetch(g, tile, split, 0, t, th[t]);
            }
            for (int step = 0; step < steps; ++step) {
                for (int t = 0; t < kGemmThreads; ++t) gemm_stash(g, th[t], As.data(), Bs.data(), t);
                // barrier
                for (int t = 0; t < kGemmThreads; ++t) {
                    if (step + 1 < steps) gemm_fetch(g, tile, split, step + 1, t, th[t]);
                    gemm_multiply(g, As.data(), Bs.data(), split, step, t, th[t]);
                }
                // barrier
            }
            for (int t = 0; t < kGemmThreads; ++t) gemm_store(g, tile, split, t, th[t]);
        }
        if (g.splits > 1) {
            struct Load {
                void quad(const float* p, float* v) const {
                    for (int j = 0; j < 4; ++j) v[j] = p[j];
                }
            };
            for (int t = 0; t < kGemmThreads; ++t) gemm_reduce(g, tile, t, Load{});
        }
    }
}

// Arguments for C (M, N) at c with row stride ldc = A . B, the operands laid out as a_kc / b_kc
// say, planned.
inline GemmArgs args(float* c, int ldc, const float* a, bool a_kc, const float* b, bool b_kc, int M, int N, int K,
                     float* partial) {
    GemmArgs g{a, a_kc ? K : M, a_kc, b, b_kc ? K : N, b_kc, c, ldc, M, N, K, 0, 0, 0, 0, partial};
    siamese::cuda::gemm_plan(g);
    return g;
}

}  // namespace gemmtest
