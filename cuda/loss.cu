// Distance + contrastive loss fused: one kernel gives each pair's distance, its loss term, the
// gradients w.r.t. both embeddings and the batch mean (fixed-order tree reduction in one block,
// so the loss is bit-identical run to run). Reference: src/cpu/loss.hpp; the
// per-pair rules are those of include/siamese/rules.hpp.
// Shapes: any count >= 1, any E; one block of 256 threads strides over the pairs.
#include "check.hpp"
#include "kernels.hpp"
#include "nvtx.hpp"
#include "launch.hpp"
#include "siamese/rules.hpp"

namespace siamese::cuda {

namespace {

constexpr int kLossThreads = 256;

__global__ void contrastive_loss_kernel(const float* __restrict__ emb, int count, int E,
                                        const float* __restrict__ labels, const StepState* __restrict__ st,
                                        float margin, float* __restrict__ g, float* __restrict__ losses,
                                        float* __restrict__ dist) {
    __shared__ float partial[kLossThreads];
    const float* y = labels + (st ? st->first : 0);
    float part = 0.0f;
    for (int i = threadIdx.x; i < count; i += blockDim.x) {
        const float* a = emb + size_t(i) * E;
        const float* b = emb + size_t(count + i) * E;
        float s = 0.0f;
        for (int k = 0; k < E; ++k) s += (a[k] - b[k]) * (a[k] - b[k]);
        const bool clamped = distance_clamped(s);
        const float d = safe_distance(s);
        part += contrastive_term(d, y[i], margin);
        if (dist) dist[i] = d;
        const float coef = contrastive_grad_coef(d, y[i], margin, clamped, count);
        for (int k = 0; k < E; ++k) {
            const float diff = a[k] - b[k];
            g[size_t(i) * E + k] = coef * diff;
            g[size_t(count + i) * E + k] = -coef * diff;
        }
    }
    partial[threadIdx.x] = part;
    __syncthreads();
    for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
        if (threadIdx.x < stride) partial[threadIdx.x] += partial[threadIdx.x + stride];
        __syncthreads();
    }
    if (threadIdx.x == 0) losses[st ? st->batch : 0] = partial[0] / float(count);
}

}  // namespace

void contrastive_loss(float* g, float* losses, float* dist, const float* emb, const float* labels, int count, int E,
                      float margin, const StepState* st, cudaStream_t stream) {
    NvtxRange r("contrastive_loss");
    contrastive_loss_kernel<<<1, kLossThreads, 0, stream>>>(emb, count, E, labels, st, margin, g, losses, dist);
    CUDA_CHECK_LAUNCH();
}

}  // namespace siamese::cuda
