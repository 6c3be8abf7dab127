// The dense layers' own product (--gemm custom): C = A . B in ONE launch, split along K where
// the tiles alone would leave the GPU idle, the splits added by each tile's last block in a
// fixed order. The kernel's code is gemm_phases.hpp (host and device), which the CPU suite also
// runs, block by block and thread by thread (tests/test_gemm_emulation.cpp).
#include <stdexcept>

#include "check.hpp"
#include "gemm_phases.hpp"
#include "kernels.hpp"
#include "last_block.cuh"
#include "launch.hpp"
#include "nvtx.hpp"

namespace siamese::cuda {

namespace {

// Grid (tiles, splits). Each k step: the registers fetched the step before go to shared memory;
// the next step's values are fetched (their loads in flight) while this step is multiplied.
// AK, BK: the operands' directions as constants (g's own flags, so the phases fold them).
template <bool AK, bool BK>
__global__ void __launch_bounds__(kGemmThreads) gemm_kernel(GemmArgs args, unsigned* __restrict__ counters) {
    GemmArgs g = args;
    g.a_kc = AK, g.b_kc = BK;
    __shared__ __align__(16) float As[kGemmBK * kGemmLdA];
    __shared__ __align__(16) float Bs[kGemmBK * kGemmLdB];
    const int tile = blockIdx.x, split = blockIdx.y, tid = threadIdx.x;
    const int steps = gemm_k_steps(g, split);
    GemmThread t;
    gemm_zero(t);
    gemm_fetch(g, tile, split, 0, tid, t);
    for (int step = 0; step < steps; ++step) {
        gemm_stash(g, t, As, Bs, tid);
        __syncthreads();
        if (step + 1 < steps) gemm_fetch(g, tile, split, step + 1, tid, t);
        gemm_multiply(g, As, Bs, split, step, tid, t);
        __syncthreads();  // the tiles are overwritten by the next step
    }
    gemm_store(g, tile, split, tid, t);
    if (g.splits == 1 || !last_block_done(counters + tile, unsigned(g.splits))) return;
    struct Load {  // past this SM's L1: the other splits' blocks wrote them
        __device__ void quad(const float* p, float* v) const {
            const float4 q = __ldcg(reinterpret_cast<const float4*>(p));
            v[0] = q.x, v[1] = q.y, v[2] = q.z, v[3] = q.w;
        }
    };
    gemm_reduce(g, tile, tid, Load{});
}

}  // namespace

void gemm_custom(float* c, int ldc, const float* a, int lda, bool a_kc, const float* b, int ldb, bool b_kc, int M, int N,
                 int K, float* partial, unsigned* counters, cudaStream_t stream) {
    NvtxRange r("gemm_custom");
    if (M < 1 || N < 1) return;
    if (K < 0) throw std::logic_error("gemm_custom: negative K");
    GemmArgs g{a, lda, a_kc, b, ldb, b_kc, c, ldc, M, N, K, 0, 0, 0, 0, partial};
    gemm_plan(g);
    if (g.splits > 1) {  // the scratch bounds of gemm_phases.hpp
        if (!partial || !counters) throw std::logic_error("gemm_custom: a split product needs scratch and counters");
        require_elems(kGemmPartialFloats, size_t(gemm_tiles(g)) * g.splits * kGemmTileFloats, "gemm_custom: partial");
        require_elems(kGemmCounters, size_t(gemm_tiles(g)), "gemm_custom: counters");
    }
    const dim3 grid(unsigned(gemm_tiles(g)), unsigned(g.splits));
    if (a_kc && b_kc)  // the dense forward
        gemm_kernel<true, true><<<grid, kGemmThreads, 0, stream>>>(g, counters);
    else if (a_kc)  // the input gradient
        gemm_kernel<true, false><<<grid, kGemmThreads, 0, stream>>>(g, counters);
    else if (b_kc)
        gemm_kernel<false, true><<<grid, kGemmThreads, 0, stream>>>(g, counters);
    else  // the weight gradient
        gemm_kernel<false, false><<<grid, kGemmThreads, 0, stream>>>(g, counters);
    CUDA_CHECK_LAUNCH();
}

}  // namespace siamese::cuda
