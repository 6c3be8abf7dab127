// Convolution blocks on the GPU: conv (valid, stride 1) + bias + ReLU + max-pool + dropout fused
// in one forward kernel; backward as a weight-gradient kernel (chunked partial sums, then a
// fixed-order reduction: bit-identical run to run) and an input-gradient gather kernel.
//
// Shapes accepted: any C, H, W, F, K with K <= H, W and pool P <= 8 (argmax is one byte);
// n = 2 * pairs images of (C, H, W) floats. Reference: src/cpu/conv.hpp (same names).
#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "check.hpp"
#include "kernels.hpp"
#include "launch.hpp"
#include "nvtx.hpp"
#include "last_block.cuh"
#include "smem.cuh"
#include "conv_phases.hpp"
#include "pixels.hpp"
#include "siamese/rules.hpp"

namespace siamese::cuda {

namespace {

// One thread per group of four consecutive pooled outputs of one image (flattened (F,Hp,Wp)):
// each output's P*P conv values, their max and argmax, ReLU, and the group's dropout mask from
// ONE Philox call (the four words of the block cover the four outputs, as on the CPU). S: the
// shape (a FixedShape: each window's values together, conv_pool_group); X: the images' pixel
// type (pixels.hpp).
template <class S, class X>
__global__ void conv_pool_forward_kernel(S s, int n, X in, ImageGather gather, const float* __restrict__ w,
                                         const float* __restrict__ b, float* __restrict__ out,
                                         uint8_t* __restrict__ argmax, float rate, uint64_t seed, uint32_t layer_id,
                                         const StepState* __restrict__ st) {
    const int per_image = s.Hp * s.Wp, elems = s.F * per_image, groups = (elems + 3) / 4;
    const long idx = long(blockIdx.x) * blockDim.x + threadIdx.x;
    if (idx >= long(n) * groups) return;
    const int i = int(idx / groups), g = int(idx % groups);
    const X x = in + size_t(gather(i)) * s.C * s.H * s.W;
    conv_pool_group(s, i, g, x, s.W, w, b, out, argmax, rate, seed, layer_id, rate > 0.0f ? st->step : 0);
}

// Thread j of chunk blockIdx.y: the sum over the chunk's images of weight (or bias) j's gradient.
// Fused (counter set): the last block to finish then sums the chunks into grad_wb. S: the shape
// (a FixedShape folds its sizes into the index arithmetic; the same sums).
template <class S, class X>
__global__ void conv_wgrad_partial_kernel(S s, int n, int chunk, X in, ImageGather gather, const float* __restrict__ geff,
                                          const float* __restrict__ y, float scale, const uint8_t* __restrict__ argmax,
                                          float* __restrict__ partial, float* __restrict__ grad_wb,
                                          unsigned* __restrict__ counter, int chunks) {
    const int nwb = wgrad_params(s), j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j < nwb) {
        const size_t pooled = size_t(s.F) * s.Hp * s.Wp;
        const int i0 = blockIdx.y * chunk, i1 = min(n, i0 + chunk);
        float acc = 0.0f;
        for (int i = i0; i < i1; ++i)
            acc = wgrad_terms(s, j, geff + i * pooled, y ? y + i * pooled : nullptr, scale, argmax + i * pooled,
                              in + size_t(gather(i)) * s.C * s.H * s.W, 0, 1, acc);
        partial[size_t(blockIdx.y) * nwb + j] = acc;
    }
    __shared__ float tile[kColsumTileFloats];
    if (counter && last_block_done(counter, gridDim.x * gridDim.y)) sum_partials(tile, grad_wb, partial, chunks, nwb);
}

// One thread per input element (conv_input_grad_at: every (filter, tap) whose conv output was
// its pool window's argmax contributes w * geff). S: as above (a FixedShape: no run-time
// divisions).
template <class S>
__global__ void conv_input_grad_kernel(S s, int n, const float* __restrict__ geff,
                                       const float* __restrict__ ymask, float scale,
                                       const uint8_t* __restrict__ argmax, const float* __restrict__ w,
                                       float* __restrict__ din) {
    const long idx = long(blockIdx.x) * blockDim.x + threadIdx.x;
    if (idx >= long(n) * s.C * s.H * s.W) return;
    din[idx] = conv_input_grad_at(s, idx, geff, ymask, scale, argmax, w);
}

// ---- tiled kernels (--conv tiled): the same blocks with each image's data staged in shared
// memory. Each block works on one image (or one image's chunk of outputs); the arithmetic of
// every output is that of the kernels above, in the same order (the forward pass gives the same
// bits; the input gradient adds exact zeros besides); the weight gradient sums in another fixed
// order. Shapes whose tiles exceed the device's shared memory take the kernels above.

constexpr int kTileThreads = 256;
static_assert(kTileThreads == kWgradThreads, "the fixed shapes' weight slots are counted for the tiles' block size");

// The kernels below run the phases of conv_phases.hpp with a barrier between each (the CPU suite
// runs the same phases thread by thread: tests/test_conv_emulation.cpp).

// Forward: the image, the weights and biases in shared memory; thread = one group of four pooled
// outputs (as conv_pool_forward_kernel); blockIdx.x = image * chunks + chunk of 256 groups.
template <class S, class X>
__global__ void tiled_forward_kernel(S s, X in, ImageGather gather,
                                     const float* __restrict__ w, const float* __restrict__ b, float* __restrict__ out,
                                     uint8_t* __restrict__ argmax, float rate, uint64_t seed, uint32_t layer_id,
                                     const StepState* __restrict__ st, int chunks) {
    extern __shared__ float sm[];
    const int i = blockIdx.x / chunks, chunk = blockIdx.x % chunks;
    tiled_forward_stage(s, in + size_t(gather(i)) * (s.C * s.H * s.W), w, b, sm, threadIdx.x, blockDim.x);
    __syncthreads();
    tiled_forward_compute(s, i, chunk, sm, out, argmax, rate, seed, layer_id, rate > 0.0f ? st->step : 0, threadIdx.x,
                          blockDim.x);
}

// Two conv blocks, b reading a's output, in one launch (--conv tiled --fused): a block per image
// runs a's forward phases over all its chunks (a's output written as tiled_forward_kernel writes
// it), then, after a barrier, b's from that output (written by this block: visible to it after
// the barrier; read with plain loads, never through the read-only path). The same phases, the
// same bits as the two launches.
template <class SA, class SB, class X>
__global__ void tiled_pair_forward_kernel(SA sa, SB sb, X in, ImageGather gather,
                                          const float* __restrict__ wa, const float* __restrict__ ba, float* out_a,
                                          uint8_t* __restrict__ arg_a, const float* __restrict__ wb,
                                          const float* __restrict__ bb, float* __restrict__ out_b,
                                          uint8_t* __restrict__ arg_b, float rate, uint64_t seed, uint32_t layer_a,
                                          const StepState* __restrict__ st) {
    extern __shared__ float sm[];
    const int i = blockIdx.x, tid = threadIdx.x, nt = blockDim.x;
    const uint64_t step = rate > 0.0f ? st->step : 0;
    tiled_forward_stage(sa, in + size_t(gather(i)) * (sa.C * sa.H * sa.W), wa, ba, sm, tid, nt);
    __syncthreads();
    for (int c = 0; c < tiled_forward_chunks(sa, nt); ++c)
        tiled_forward_compute(sa, i, c, sm, out_a, arg_a, rate, seed, layer_a, step, tid, nt);
    __syncthreads();  // a's output of image i is written, and a's tiles are no longer read
    tiled_forward_stage(sb, out_a + size_t(i) * (sa.F * sa.Hp * sa.Wp), wb, bb, sm, tid, nt);
    __syncthreads();
    for (int c = 0; c < tiled_forward_chunks(sb, nt); ++c)
        tiled_forward_compute(sb, i, c, sm, out_b, arg_b, rate, seed, layer_a + 1, step, tid, nt);
}

// Input gradient: the image's conv gradient scattered from (geff, argmax) into a dense
// (F, Hp*P, Wp*P) tile in shared memory, the weights beside it; thread = input elements.
template <class S>
__global__ void tiled_input_grad_kernel(S s, const float* __restrict__ geff,
                                        const float* __restrict__ ymask, float scale,
                                        const uint8_t* __restrict__ argmax, const float* __restrict__ w,
                                        float* __restrict__ din, int chunks, int per_chunk) {
    extern __shared__ float sm[];
    const int i = blockIdx.x / chunks, chunk = blockIdx.x % chunks;
    tiled_input_grad_clear(s, w, sm, threadIdx.x, blockDim.x);
    __syncthreads();
    tiled_input_grad_scatter(s, i, geff, ymask, scale, argmax, sm, threadIdx.x, blockDim.x);
    __syncthreads();
    tiled_input_grad_compute(s, i, chunk, per_chunk, sm, din, threadIdx.x, blockDim.x);
}

// Weight gradient: block = a chunk of images (wgrad_chunk, as conv_wgrad_partial_kernel), each
// staged in turn; the block's sums into its slot of partial; fused (counter set): the last block
// to finish sums the chunks into grad_wb (column_sums' order, with sm as its tile).
template <class S, class X>
__global__ void tiled_wgrad_kernel(S s, int n, int chunk, X in, ImageGather gather, const float* __restrict__ geff,
                                   const float* __restrict__ ymask, float scale,
                                   const uint8_t* __restrict__ argmax, float* __restrict__ partial, int split,
                                   float* __restrict__ grad_wb, unsigned* __restrict__ counter) {
    extern __shared__ float sm[];
    const WgradTiles t = wgrad_tiles(s, sm, split);
    const int tid = threadIdx.x, nt = blockDim.x, nwb = wgrad_params(s);
    float acc[WgradSlots<S>::value];
#pragma unroll
    for (int q = 0; q < WgradSlots<S>::value; ++q) acc[q] = 0.0f;
    const int i0 = blockIdx.x * chunk, i1 = min(n, i0 + chunk);
    for (int i = i0; i < i1; ++i) {
        __syncthreads();  // the previous image is done with the tiles
        tiled_wgrad_stage(s, i, in + size_t(gather(i)) * (s.C * s.H * s.W), geff, ymask, scale, argmax, t, tid, nt);
        __syncthreads();
        tiled_wgrad_accumulate(s, t, split, acc, tid, nt);
    }
    float* dst = partial + size_t(blockIdx.x) * nwb;
    tiled_wgrad_write(s, t, split, acc, dst, tid, nt);
    if (split > 1) {
        __syncthreads();
        tiled_wgrad_sum_slices(s, t, split, dst, tid, nt);
    }
    // The tiles are done with (last_block_done's barrier): sm serves the sum's tile.
    if (counter && last_block_done(counter, gridDim.x)) sum_partials(sm, grad_wb, partial, gridDim.x, nwb);
}

// The recipes' conv blocks at the ORL input (56 x 46 after the stride-2 subsampling): the
// reference's 6 and 12 filters, the strong recipe's 16 and 32. Their tiled kernels are
// instantiated with every size a constant; any other shape runs the same templates on the
// run-time ConvShape. conv_fixed_shapes(false) turns the fixed ones off (tests, A/B timing).
using RefConv1 = FixedShape<1, 56, 46, 6, 3, 2>;
using RefConv2 = FixedShape<6, 27, 22, 12, 3, 2>;
using StrongConv1 = FixedShape<1, 56, 46, 16, 3, 2>;
using StrongConv2 = FixedShape<16, 27, 22, 32, 3, 2>;
bool g_fixed_shapes = true;

// f(shape) with the fixed shape equal to s when there is one, else with s itself. The launches
// inside name their kernels' template arguments (decltype(shape), ...) rather than leave them to
// deduction: one kernel address a launch, which the CPU emulation's checks key on.
template <class F>
void with_shape(const ConvShape& s, F&& f) {
    if (g_fixed_shapes) {
        if (RefConv1::matches(s)) return f(RefConv1{});
        if (RefConv2::matches(s)) return f(RefConv2{});
        if (StrongConv1::matches(s)) return f(StrongConv1{});
        if (StrongConv2::matches(s)) return f(StrongConv2{});
    }
    f(s);
}

// f(shape a, shape b) with the recipe's fixed pair when (a, b) is one, else with a and b themselves.
template <class F>
void with_pair_shape(const ConvShape& a, const ConvShape& b, F&& f) {
    if (g_fixed_shapes) {
        if (RefConv1::matches(a) && RefConv2::matches(b)) return f(RefConv1{}, RefConv2{});
        if (StrongConv1::matches(a) && StrongConv2::matches(b)) return f(StrongConv1{}, StrongConv2{});
    }
    f(a, b);
}

// f(pixels, shape): the images' pixel type (ImageIn::visit) and the shape (with_shape) a kernel
// is instantiated for. FP16 pixels are the bank's, which only a first conv block reads: on them a
// second block's fixed shape takes the run-time path (its kernels there would be dead code, eight
// instantiations of nvcc's time).
template <class S>
constexpr bool second_block_shape() {
    if constexpr (IsFixedShape<S>::value)
        return S::C != 1;
    else
        return false;
}
template <class F>
void with_input_shape(const ImageIn& in, const ConvShape& s, F&& f) {
    in.visit([&](auto x) {
        with_shape(s, [&](auto shape) {
            if constexpr (std::is_same_v<decltype(x), HalfPixels> && second_block_shape<decltype(shape)>())
                f(x, s);
            else
                f(x, shape);
        });
    });
}

}  // namespace

void conv_fixed_shapes(bool on) { g_fixed_shapes = on; }

void conv_pool_forward(float* out, uint8_t* argmax, ImageIn in, const float* w, const float* b, const ConvShape& s,
                       int n, ImageGather gather, float rate, uint64_t seed, uint32_t layer_id, const StepState* st,
                       cudaStream_t stream) {
    NvtxRange r("conv_pool_forward");
    if (s.P > 8) throw UsageError("CUDA conv: pool size over 8 is not supported (argmax is one byte)");
    with_input_shape(in, s, [&](auto x, auto shape) {
        conv_pool_forward_kernel<decltype(shape), decltype(x)><<<blocks_for(long(n) * ((s.out_elems() + 3) / 4)), kThreads, 0, stream>>>(
            shape, n, x, gather, w, b, out, argmax, rate, seed, layer_id, st);
        CUDA_CHECK_LAUNCH();
    });
}

size_t conv_partial_elems(const ConvShape& s) { return size_t(wgrad_max_chunks(s)) * wgrad_params(s); }

size_t conv_partial_needed(const ConvShape& s, int n) {
    const int chunk = wgrad_chunk(s, n);
    return size_t((n + chunk - 1) / chunk) * wgrad_params(s);
}

void conv_backward_weights(float* grad_wb, const float* geff, const uint8_t* argmax, ImageIn in, const ConvShape& s,
                           int n, ImageGather gather, float* partial, size_t partial_elems, cudaStream_t stream,
                           const ConvBackwardFusion& fuse) {
    NvtxRange r("conv_backward_weights");
    require_elems(partial_elems, conv_partial_needed(s, n), "conv_backward_weights: partial");
    const int nwb = wgrad_params(s);
    const int chunk = wgrad_chunk(s, n), chunks = (n + chunk - 1) / chunk;
    with_input_shape(in, s, [&](auto x, auto shape) {
        conv_wgrad_partial_kernel<decltype(shape), decltype(x)><<<dim3(blocks_for(nwb), unsigned(chunks)), kThreads, 0, stream>>>(
            shape, n, chunk, x, gather, geff, fuse.y, fuse.scale, argmax, partial, grad_wb, fuse.counter, chunks);
        CUDA_CHECK_LAUNCH();
    });
    if (!fuse.counter) column_sums(grad_wb, partial, chunks, nwb, stream);  // the chunks in order
}

void conv_backward_input(float* din, const float* geff, const uint8_t* argmax, const float* w, const ConvShape& s, int n,
                         cudaStream_t stream, const ConvBackwardFusion& fuse) {
    NvtxRange r("conv_backward_input");
    with_shape(s, [&](auto shape) {
        conv_input_grad_kernel<decltype(shape)><<<blocks_for(long(n) * s.C * s.H * s.W), kThreads, 0, stream>>>(shape, n, geff, fuse.y,
                                                                                               fuse.scale, argmax, w, din);
        CUDA_CHECK_LAUNCH();
    });
}

}  // namespace siamese::cuda

namespace siamese::cuda {

void conv_pool_forward_tiled(float* out, uint8_t* argmax, ImageIn in, const float* w, const float* b,
                             const ConvShape& s, int n, ImageGather gather, float rate, uint64_t seed, uint32_t layer_id,
                             const StepState* st, cudaStream_t stream) {
    with_input_shape(in, s, [&](auto x, auto shape) {
        using S = decltype(shape);
        using X = decltype(x);
        const size_t bytes = tiled_forward_smem_floats(shape) * sizeof(float);
        if (s.P > 8 || n == 0 || !dynamic_smem_ok<tiled_forward_kernel<S, X>>(bytes))
            return conv_pool_forward(out, argmax, in, w, b, s, n, gather, rate, seed, layer_id, st, stream);
        NvtxRange r("conv_pool_forward_tiled");
        const int chunks = tiled_forward_chunks(shape, kTileThreads);
        tiled_forward_kernel<S, X><<<unsigned(long(n) * chunks), kTileThreads, bytes, stream>>>(
            shape, x, gather, w, b, out, argmax, rate, seed, layer_id, st, chunks);
        CUDA_CHECK_LAUNCH();
    });
}

void conv_backward_weights_tiled(float* grad_wb, const float* geff, const uint8_t* argmax, ImageIn in,
                                 const ConvShape& s, int n, ImageGather gather, float* partial, size_t partial_elems,
                                 cudaStream_t stream, const ConvBackwardFusion& fuse) {
    const int nwb = wgrad_params(s);
    const int split = nwb < kTileThreads ? kTileThreads / nwb : 1;
    const size_t pooled = size_t(s.out_elems());
    // At least the last block's column-sum tile (the kernel reuses its shared memory for it).
    const size_t bytes = std::max((size_t(s.in_elems()) + pooled + (split > 1 ? size_t(split) * nwb : 0)) * sizeof(float) +
                                      pooled,
                                  size_t(kColsumTileFloats) * sizeof(float));
    with_input_shape(in, s, [&](auto x, auto shape) {
        using S = decltype(shape);
        using X = decltype(x);
        if (n == 0 || nwb > kWgradPerThread * kTileThreads || !dynamic_smem_ok<tiled_wgrad_kernel<S, X>>(bytes))
            return conv_backward_weights(grad_wb, geff, argmax, in, s, n, gather, partial, partial_elems, stream, fuse);
        NvtxRange r("conv_backward_weights_tiled");
        require_elems(partial_elems, conv_partial_needed(s, n), "conv_backward_weights_tiled: partial");
        const int chunk = wgrad_chunk(s, n), chunks = (n + chunk - 1) / chunk;
        tiled_wgrad_kernel<S, X><<<unsigned(chunks), kTileThreads, bytes, stream>>>(
            shape, n, chunk, x, gather, geff, fuse.y, fuse.scale, argmax, partial, split, grad_wb, fuse.counter);
        CUDA_CHECK_LAUNCH();
        if (!fuse.counter) column_sums(grad_wb, partial, chunks, nwb, stream);  // the chunks in order
    });
}

void conv_backward_input_tiled(float* din, const float* geff, const uint8_t* argmax, const float* w, const ConvShape& s,
                               int n, cudaStream_t stream, const ConvBackwardFusion& fuse) {
    const size_t dc = size_t(s.F) * s.Hp * s.P * s.Wp * s.P;
    const size_t bytes = (dc + size_t(s.F) * s.C * s.K * s.K) * sizeof(float);
    with_shape(s, [&](auto shape) {
        using S = decltype(shape);
        if (n == 0 || !dynamic_smem_ok<tiled_input_grad_kernel<S>>(bytes))
            return conv_backward_input(din, geff, argmax, w, s, n, stream, fuse);
        NvtxRange r("conv_backward_input_tiled");
        // Chunks of 4 elements a thread: the scatter into the tile is repeated per chunk, so not too many.
        const int per_chunk = 4 * kTileThreads, chunks = (s.in_elems() + per_chunk - 1) / per_chunk;
        tiled_input_grad_kernel<S><<<unsigned(long(n) * chunks), kTileThreads, bytes, stream>>>(
            shape, geff, fuse.y, fuse.scale, argmax, w, din, chunks, per_chunk);
        CUDA_CHECK_LAUNCH();
    });
}

void conv_pair_forward_tiled(float* out_a, uint8_t* arg_a, float* out_b, uint8_t* arg_b, ImageIn in, const float* wa,
                             const float* ba, const float* wb, const float* bb, const ConvShape& sa, const ConvShape& sb,
                             int n, ImageGather gather, float rate, uint64_t seed, uint32_t layer_a, const StepState* st,
                             cudaStream_t stream) {
    if (sb.C != sa.F || sb.H != sa.Hp || sb.W != sa.Wp)
        throw std::logic_error("conv_pair_forward_tiled: the second block does not read the first one's output");
    in.visit([&](auto x) {
        with_pair_shape(sa, sb, [&](auto a, auto b) {
            using A = decltype(a);
            using B = decltype(b);
            using X = decltype(x);
            const size_t bytes = std::max(tiled_forward_smem_floats(a), tiled_forward_smem_floats(b)) * sizeof(float);
            if (sa.P > 8 || sb.P > 8 || n == 0 || !dynamic_smem_ok<tiled_pair_forward_kernel<A, B, X>>(bytes)) {
                conv_pool_forward_tiled(out_a, arg_a, in, wa, ba, sa, n, gather, rate, seed, layer_a, st, stream);
                conv_pool_forward_tiled(out_b, arg_b, out_a, wb, bb, sb, n, nullptr, rate, seed, layer_a + 1, st, stream);
                return;
            }
            NvtxRange r("conv_pair_forward_tiled");
            tiled_pair_forward_kernel<A, B, X><<<unsigned(n), kTileThreads, bytes, stream>>>(
                a, b, x, gather, wa, ba, out_a, arg_a, wb, bb, out_b, arg_b, rate, seed, layer_a, st);
            CUDA_CHECK_LAUNCH();
        });
    });
}

}  // namespace siamese::cuda
