// The P-K sampler's in-batch losses (contrastive over every pair of a batch of n embeddings, and
// the normalised softmax over each image's partners), and the L2-normalised embedding head. Reference: src/cpu/batch_loss.hpp and
// src/cpu/embed_head.hpp; the per-pair and per-row rules are those of include/siamese/rules.hpp.
//
// Loss: one block counts the batch's genuine pairs and writes the two pair weights; then one
// block per row i (anchor) computes d_ij for every j, the gradient of row i as a fixed-order sum
// over j per embedding unit, and the row's share of the loss (terms j > i) by a fixed-order
// tree; a one-block kernel then sums the rows in order into losses[st->batch]. Deterministic.
#include "batch_loss_phases.hpp"
#include "check.hpp"
#include "kernels.hpp"
#include "launch.hpp"
#include "nvtx.hpp"
#include "siamese/rules.hpp"

namespace siamese::cuda {

namespace {

constexpr int kRowThreads = 128;

// Fixed-order tree over the block's values (every thread returns the result; the same tree
// and so the same bits as the hand-written reductions it replaced).
template <class V, class Op>
__device__ V block_reduce(V* red, V v, Op op) {
    red[threadIdx.x] = v;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s /= 2) {
        if (threadIdx.x < s) red[threadIdx.x] = op(red[threadIdx.x], red[threadIdx.x + s]);
        __syncthreads();
    }
    const V out = red[0];
    __syncthreads();  // red is reused by the next reduction
    return out;
}

struct Add {
    template <class V>
    __device__ V operator()(V a, V b) const { return a + b; }
};

// One block: the genuine pairs i < j of the batch (equal ids), then the weights of a genuine and
// of an impostor term (pair_weights, rules.hpp) into weights[0], weights[1].
__global__ void pair_weights_kernel(float* __restrict__ weights, const int* __restrict__ ids,
                                    const StepState* __restrict__ st, int n, Mining mining) {
    __shared__ long long gen[kRowThreads];
    const int* id = ids + (st ? st->first : 0);
    const long long cnt = block_reduce(gen, genuine_pairs_part(id, n, threadIdx.x, blockDim.x), Add{});
    if (threadIdx.x == 0) {
        const PairWeights w = pair_weights(long(cnt), n, mining);
        weights[0] = float(w.genuine);
        weights[1] = float(w.impostor);
    }
}

// Dynamic shared memory: coef[coef_slots(n)] (the gradient coefficient of each pair (i, j)), the
// tail past n zeroed: compute-sanitizer caught sm_90 code reading coef[n-1..n+1] as one 12-byte
// load in the unrolled row-gradient sum (contrastive_row_gradient; gpu_check, 2026-11-29, n = 257).
__global__ void batch_loss_rows_kernel(float* __restrict__ g, float* __restrict__ rows, const float* __restrict__ emb,
                                       const int* __restrict__ ids, const float* __restrict__ weights,
                                       const StepState* __restrict__ st, int n, int E, float margin) {
    extern __shared__ float coef[];
    __shared__ float red[kRowThreads];
    const int* id = ids + (st ? st->first : 0);
    const int i = blockIdx.x;
    float part = contrastive_row_coefs(coef, emb, id, weights[0], weights[1], n, E, i, margin, threadIdx.x, blockDim.x);
    part = block_reduce(red, part, Add{});  // its barriers also make coef visible to the sum below
    if (threadIdx.x == 0) rows[i] = part;
    contrastive_row_gradient(g, coef, emb, n, E, i, threadIdx.x, blockDim.x);
}

// ---- the normalised-softmax loss (batch_softmax_loss in src/cpu/batch_loss.hpp)

// Pass 1, one block per anchor i: lse_i (max-shifted), |P(i)|, and l_i (0 without a partner).
// Dynamic shared memory: the row's n logits.
__global__ void softmax_rows_kernel(float* __restrict__ rows, float* __restrict__ lse, float* __restrict__ partners,
                                    const float* __restrict__ emb, const int* __restrict__ ids,
                                    const StepState* __restrict__ st, int n, int E, float temperature) {
    extern __shared__ float logit[];
    __shared__ float red[kRowThreads];
    __shared__ int cnt[kRowThreads];
    const int* id = ids + (st ? st->first : 0);
    const int i = blockIdx.x;
    const SoftmaxRowPart p = softmax_row_logits(logit, emb, id, n, E, i, temperature, threadIdx.x, blockDim.x);
    const float mx = block_reduce(red, p.mx, [](float a, float b) { return fmaxf(a, b); });
    const float pos_sum = block_reduce(red, p.pos_sum, Add{});
    const int pos = block_reduce(cnt, p.pos, Add{});  // the reductions' barriers make logit visible
    const float se = block_reduce(red, softmax_row_expsum(logit, n, i, mx, threadIdx.x, blockDim.x), Add{});
    if (threadIdx.x == 0) softmax_row_write(rows, lse, partners, n, i, mx, se, pos_sum, pos);
}

// Pass 2, one block per row i: c_ij + c_ji for every j (coef, as in batch_loss_rows_kernel), then
// g_i = sum_j coef_j e_j in a fixed order per embedding unit.
__global__ void softmax_grad_kernel(float* __restrict__ g, const float* __restrict__ lse,
                                    const float* __restrict__ partners, const float* __restrict__ emb,
                                    const int* __restrict__ ids, const StepState* __restrict__ st, int n, int E,
                                    float temperature) {
    extern __shared__ float coef[];
    __shared__ int cnt[kRowThreads];
    const int* id = ids + (st ? st->first : 0);
    const int i = blockIdx.x;
    const int anchors = block_reduce(cnt, softmax_anchors_part(partners, n, threadIdx.x, blockDim.x), Add{});
    softmax_row_coefs(coef, emb, id, lse, partners, n, E, i, temperature, anchors, threadIdx.x, blockDim.x);
    __syncthreads();
    softmax_row_gradient(g, coef, emb, n, E, i, threadIdx.x, blockDim.x);
}

// losses[st->batch] = sum of the rows / the anchors with a partner, in order.
__global__ void softmax_sum_kernel(float* __restrict__ losses, const float* __restrict__ rows,
                                   const float* __restrict__ partners, int n, const StepState* __restrict__ st) {
    float acc = 0.0f;
    int anchors = 0;
    for (int i = 0; i < n; ++i) {
        acc += rows[i];
        anchors += partners[i] > 0.0f;
    }
    losses[st ? st->batch : 0] = anchors ? acc / float(anchors) : 0.0f;
}

__global__ void sum_rows_kernel(float* __restrict__ losses, const float* __restrict__ rows, int n,
                                const StepState* __restrict__ st) {
    float acc = 0.0f;
    for (int i = 0; i < n; ++i) acc += rows[i];
    losses[st ? st->batch : 0] = acc;
}

// One warp per row: the squared norm by a fixed shuffle tree, then the scaled row.
__global__ void l2_forward_kernel(float* __restrict__ z, float* __restrict__ norm, const float* __restrict__ e, int n,
                                  int E) {
    const int row = int((long(blockIdx.x) * blockDim.x + threadIdx.x) / 32), lane = threadIdx.x % 32;
    if (row >= n) return;
    const float* x = e + size_t(row) * E;
    float sq = 0.0f;
    for (int k = lane; k < E; k += 32) sq += x[k] * x[k];
    for (int o = 16; o > 0; o /= 2) sq += __shfl_xor_sync(0xffffffffu, sq, o);
    const float r = l2_norm_clamped(sq);
    if (lane == 0) norm[row] = r;
    for (int k = lane; k < E; k += 32) z[size_t(row) * E + k] = x[k] / r;
}

__global__ void l2_backward_kernel(float* de, const float* dz, const float* __restrict__ z,
                                   const float* __restrict__ norm, int n, int E) {
    const int row = int((long(blockIdx.x) * blockDim.x + threadIdx.x) / 32), lane = threadIdx.x % 32;
    if (row >= n) return;
    const float* g = dz + size_t(row) * E;
    const float* y = z + size_t(row) * E;
    const bool clamped = norm[row] <= float(kL2Eps);
    float dot = 0.0f;
    if (!clamped)
        for (int k = lane; k < E; k += 32) dot += y[k] * g[k];
    for (int o = 16; o > 0; o /= 2) dot += __shfl_xor_sync(0xffffffffu, dot, o);
    // Every lane has read its g[k] (and dot is reduced) before any lane writes de (may alias dz).
    __syncwarp();
    for (int k = lane; k < E; k += 32) {
        const float v = (g[k] - y[k] * dot) / norm[row];
        de[size_t(row) * E + k] = v;
    }
}

}  // namespace

void batch_contrastive_loss(float* g, float* losses, const float* emb, const int* ids, int n, int E, float margin,
                            Mining mining, float* rows, size_t rows_elems, const StepState* st, cudaStream_t stream) {
    NvtxRange r("batch_contrastive_loss");
    require_elems(rows_elems, batch_loss_scratch_elems(n), "batch_contrastive_loss: scratch");
    float* weights = rows + n;  // the two pair weights after the n row losses
    pair_weights_kernel<<<1, kRowThreads, 0, stream>>>(weights, ids, st, n, mining);
    CUDA_CHECK_LAUNCH();
    batch_loss_rows_kernel<<<n, kRowThreads, size_t(coef_slots(n)) * sizeof(float), stream>>>(g, rows, emb, ids, weights, st, n, E,
                                                                                  margin);
    CUDA_CHECK_LAUNCH();
    sum_rows_kernel<<<1, 1, 0, stream>>>(losses, rows, n, st);
    CUDA_CHECK_LAUNCH();
}

void batch_softmax_loss(float* g, float* losses, const float* emb, const int* ids, int n, int E, float temperature,
                        float* scratch, size_t scratch_elems, const StepState* st, cudaStream_t stream) {
    NvtxRange r("batch_softmax_loss");
    require_elems(scratch_elems, batch_loss_scratch_elems(n), "batch_softmax_loss: scratch");
    float *rows = scratch, *lse = scratch + n, *partners = scratch + 2 * size_t(n);
    softmax_rows_kernel<<<n, kRowThreads, size_t(n) * sizeof(float), stream>>>(rows, lse, partners, emb, ids, st, n, E,
                                                                               temperature);
    CUDA_CHECK_LAUNCH();
    softmax_grad_kernel<<<n, kRowThreads, size_t(coef_slots(n)) * sizeof(float), stream>>>(g, lse, partners, emb, ids,
                                                                                            st, n, E, temperature);
    CUDA_CHECK_LAUNCH();
    softmax_sum_kernel<<<1, 1, 0, stream>>>(losses, rows, partners, n, st);
    CUDA_CHECK_LAUNCH();
}

void l2_normalize_forward(float* z, float* norm, const float* e, int n, int E, cudaStream_t stream) {
    NvtxRange r("l2_normalize_forward");
    l2_forward_kernel<<<blocks_for(32L * n), kThreads, 0, stream>>>(z, norm, e, n, E);
    CUDA_CHECK_LAUNCH();
}

void l2_normalize_backward(float* de, const float* dz, const float* z, const float* norm, int n, int E,
                           cudaStream_t stream) {
    NvtxRange r("l2_normalize_backward");
    l2_backward_kernel<<<blocks_for(32L * n), kThreads, 0, stream>>>(de, dz, z, norm, n, E);
    CUDA_CHECK_LAUNCH();
}

}  // namespace siamese::cuda
