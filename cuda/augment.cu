// The P-K sampler's gather: the batch's bank images, each through a fresh random view
// (shift/rotation/zoom/flip + brightness/contrast, include/siamese/augment.hpp) when
// augmenting, read straight from the GPU-resident bank (no host copy per batch).
// Reference: augment_images in src/cpu/augment.hpp; build_gather_images is its identity case.
#include "check.hpp"
#include "kernels.hpp"
#include "launch.hpp"
#include "nvtx.hpp"
#include "siamese/augment.hpp"

namespace siamese::cuda {

namespace {

// One thread per output pixel; the slot's Warp is recomputed per thread (two Philox calls and
// a sincos: cheaper than a second kernel and a round trip through memory).
template <class X>
__global__ void augment_kernel(float* __restrict__ out, X bank, const int* __restrict__ order,
                               const StepState* __restrict__ st, int n, int H, int W, AugmentConfig c, uint64_t seed) {
    const long idx = long(blockIdx.x) * blockDim.x + threadIdx.x;
    const long per = long(H) * W;
    if (idx >= long(n) * per) return;
    const int i = int(idx / per), p = int(idx % per);
    const Warp w = augment_draw(c, seed, st ? st->step : 0, uint32_t(i), H, W);
    const int src = order[(st ? st->first : 0) + i];
    out[idx] = augment_pixel(bank + size_t(src) * per, H, W, w, p / W, p % W);
}

__global__ void gather_images_kernel(const int* __restrict__ order, const StepState* __restrict__ st, int count,
                                     int* __restrict__ gather) {
    const int s = blockIdx.x * blockDim.x + threadIdx.x;
    if (s < count) gather[s] = order[st->first + s];
}

}  // namespace

void augment_images(float* out, ImageIn bank, const int* order, int n, int H, int W, const AugmentConfig& c,
                    uint64_t seed, const StepState* st, cudaStream_t stream) {
    NvtxRange r("augment_images");
    bank.visit([&](auto x) {
        augment_kernel<decltype(x)><<<blocks_for(long(n) * H * W), kThreads, 0, stream>>>(out, x, order, st, n, H, W, c, seed);
        CUDA_CHECK_LAUNCH();
    });
}

void build_gather_images(const int* order, const StepState* st, int count, int* gather, cudaStream_t stream) {
    NvtxRange r("build_gather_images");
    gather_images_kernel<<<blocks_for(count), kThreads, 0, stream>>>(order, st, count, gather);
    CUDA_CHECK_LAUNCH();
}

}  // namespace siamese::cuda
