// The pair step's tail in ONE launch (--fused): the penultimate layer's bias, ReLU and dropout,
// the last dense layer, the distance, the contrastive loss and all their backward, down to the
// gradient at the penultimate layer's pre-activation. The kernel's code is in tail_phases.hpp
// (host and device), which the CPU suite also runs, block by block, against the reference.
// A block owns G pairs (2G image rows): the last layer's weights, its rows of h, the embeddings
// and their gradients stay in shared memory from the forward to the backward. Per-block partial
// sums (dW, db, the penultimate bias gradient, the loss) are added by the last block to finish,
// with all its threads in a fixed order (colsum_phases.hpp): deterministic, and no separate
// reduction launch.
// Reference: dense_forward, contrastive_loss, relu_dropout_backward and dense_backward in
// src/cpu/ (the unfused CUDA step launches ten kernels for the same).
#include <algorithm>

#include "check.hpp"
#include "kernels.hpp"
#include "last_block.cuh"
#include "smem.cuh"
#include "tail_phases.hpp"
#include "launch.hpp"
#include "nvtx.hpp"
#include "siamese/rules.hpp"
#include "siamese/step_plan.hpp"  // the tail's geometry, shared with the plan

namespace siamese::cuda {

namespace {

constexpr int kTailThreads = 256;

// The phases of cuda/tail_phases.hpp with a barrier between each; the last block to finish adds
// every block's partials (a fixed order: deterministic).
__global__ void contrastive_tail_kernel(tail::Args a, const StepState* __restrict__ st, float* __restrict__ losses,
                                        unsigned* __restrict__ counter) {
    extern __shared__ float sm[];
    a.labels += st->first;
    a.step = st->step;
    a.loss = losses + st->batch;
    const tail::Smem s = tail::carve(sm, a.G, a.I, a.O);
    const int blk = blockIdx.x, tid = threadIdx.x, nt = blockDim.x;
    tail::load(a, s, blk, tid, nt);
    __syncthreads();
    tail::forward(a, s, tid, nt);
    __syncthreads();
    tail::pair_terms(a, s, blk, tid, nt);
    __syncthreads();
    tail::embed_grad(a, s, blk, tid, nt);
    __syncthreads();
    tail::input_grad(a, s, blk, tid, nt);
    __syncthreads();
    tail::partials(a, s, blk, tid, nt);
    if (!last_block_done(counter, gridDim.x)) return;
    // The phases are done (last_block_done's barrier): sm serves the reduction's tile.
    block_column_sums(sm, a.partial, int(gridDim.x), int(tail::block_partial(a.I, a.O)), int(tail::block_stride(a.I, a.O)),
                      [&a](int k, float v) { tail::reduce_store(a, k, v); });
}

}  // namespace

size_t contrastive_tail_partial_elems(int count, int I, int O) {
    return size_t(tail_max_blocks(I, O, count, dynamic_smem_limit())) * tail::block_stride(I, O);
}

void contrastive_tail(float* gw, float* gb, float* dh, float* ghb, float* losses, const float* v, const float* hb,
                      const float* w, const float* b, const float* labels, int count, int I, int O, bool relu,
                      float margin, float h_rate, uint64_t seed, uint32_t h_layer, const StepState* st,
                      float* partial, size_t partial_elems, unsigned* counter, cudaStream_t stream) {
    NvtxRange r("contrastive_tail");
    const int G = tail_pairs_for(I, O, count, dynamic_smem_limit());
    if (G == 0) throw std::logic_error("contrastive_tail: the layer does not fit one block's shared memory");
    if (count < 1) throw std::logic_error("contrastive_tail: no pairs");
    require_elems(partial_elems, contrastive_tail_partial_elems(count, I, O), "contrastive_tail: partial");
    const tail::Args a{v, hb, w, b, labels, count, I, O, G, relu, margin, h_rate, seed, 0, h_layer,
                       gw, gb, dh, ghb, nullptr, partial};
    const unsigned blocks = unsigned((count + G - 1) / G);
    const size_t bytes = std::max(tail_smem_floats(G, I, O), size_t(kColsumTileFloats)) * sizeof(float);
    // Within the default 48 KB with the kernel's flag up to 8 pairs a block (tail_pairs_per_block);
    // larger blocks of large batches (tail_pairs_for) raise the kernel's limit, as would a
    // toolchain that counted more static shared memory than planned.
    if (!dynamic_smem_ok<contrastive_tail_kernel>(bytes))
        throw std::logic_error("contrastive_tail: the device has not the shared memory for a block of pairs");
    contrastive_tail_kernel<<<blocks, kTailThreads, bytes, stream>>>(a, st, losses, counter);
    CUDA_CHECK_LAUNCH();
}

}  // namespace siamese::cuda
