// The optimizer as one kernel over the whole flat parameter buffer (the per-element rule is
// optimizer_update() in include/siamese/optimizer.hpp, shared with the CPU), and the two tiny
// kernels that let a captured training step walk through the epoch on its own.
#include <cmath>

#include "check.hpp"
#include "kernels.hpp"
#include "last_block.cuh"
#include "launch.hpp"
#include "nvtx.hpp"

namespace siamese::cuda {

namespace {

__global__ void optimizer_kernel(OptimizerConfig c, float* __restrict__ p, const float* __restrict__ g,
                                 float* __restrict__ s, size_t n, const StepState* __restrict__ st) {
    const size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= n) return;
    optimizer_update(c, opt_scalars(c, st->step + 1), p[i], g[i], s[i], s[n + i]);
}

// The same update, and (fused) the StepState's advance by the last block to finish: every thread
// reads the step before its block takes a ticket, so no block sees the advanced state.
__global__ void optimizer_advance_kernel(OptimizerConfig c, float* __restrict__ p, const float* __restrict__ g,
                                         float* __restrict__ s, size_t n, StepState* st, int advance,
                                         unsigned* __restrict__ counter) {
    const size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
    const unsigned long long step = st->step;
    if (i < n) optimizer_update(c, opt_scalars(c, step + 1), p[i], g[i], s[i], s[n + i]);
    if (last_block_done(counter, gridDim.x) && threadIdx.x == 0) {
        st->first += advance;
        st->batch += 1;
        st->step = step + 1;
    }
}

__global__ void build_gather_kernel(const int* __restrict__ a, const int* __restrict__ b,
                                    const StepState* __restrict__ st, int count, int* __restrict__ gather) {
    const int s = blockIdx.x * blockDim.x + threadIdx.x;
    if (s >= 2 * count) return;
    gather[s] = s < count ? a[st->first + s] : b[st->first + s - count];
}

__global__ void advance_state_kernel(StepState* st, int count) {
    st->first += count;
    st->batch += 1;
    st->step += 1;
}

}  // namespace

void optimizer_step(const OptimizerConfig& c, float* params, const float* grad, float* state, size_t n,
                    const StepState* st, cudaStream_t stream) {
    NvtxRange r("optimizer_step");
    optimizer_kernel<<<blocks_for(long(n)), kThreads, 0, stream>>>(c, params, grad, state, n, st);
    CUDA_CHECK_LAUNCH();
}

void optimizer_step_advance(const OptimizerConfig& c, float* params, const float* grad, float* state, size_t n,
                            StepState* st, int advance, unsigned* counter, cudaStream_t stream) {
    NvtxRange r("optimizer_step_advance");
    optimizer_advance_kernel<<<blocks_for(long(n)), kThreads, 0, stream>>>(c, params, grad, state, n, st, advance, counter);
    CUDA_CHECK_LAUNCH();
}

void build_gather(const int* a, const int* b, const StepState* st, int count, int* gather, cudaStream_t stream) {
    NvtxRange r("build_gather");
    build_gather_kernel<<<blocks_for(2L * count), kThreads, 0, stream>>>(a, b, st, count, gather);
    CUDA_CHECK_LAUNCH();
}

void advance_state(StepState* st, int count, cudaStream_t stream) {
    advance_state_kernel<<<1, 1, 0, stream>>>(st, count);
    CUDA_CHECK_LAUNCH();
}

}  // namespace siamese::cuda
