// The pair step's tail in ONE launch (--fused): the penultimate layer's bias, ReLU and dropout,
// the last dense layer, the distance, the contrastive loss and all their backward, down to the
// gradient at the penultimate layer's pre-activation.
// A block owns G pairs (2G image rows): the last layer's weights, its rows of h, the embeddings
// and their gradients stay in shared memory from the forward to the backward. Per-block partial
// sums (dW, db, the penultimate bias gradient, the loss) are added by the last block to finish,
// in block order: deterministic, and no separate reduction launch.
// Reference: dense_forward, contrastive_loss, relu_dropout_backward and dense_backward in
// src/cpu/ (the unfused CUDA step launches ten kernels for the same).
#include <algorithm>

#include "check.hpp"
#include "kernels.hpp"
#include "last_block.cuh"
#include "launch.hpp"
#include "nvtx.hpp"
#include "siamese/rules.hpp"
#include "siamese/step_plan.hpp"  // the tail's geometry, shared with the plan

namespace siamese::cuda {

namespace {

constexpr int kTailThreads = 256;

// Floats of one block's partial sums: dW (O*I), db (O), dhb (I), the loss (1).
__host__ __device__ inline size_t tail_block_partial(int I, int O) { return size_t(O) * I + O + I + 1; }

// Global row of local row r (< 2G) of the block whose first pair is p0: left images are rows
// 0..count-1, right images count..2count-1 (the batch layout of kernels.hpp).
__device__ inline int tail_row(int r, int G, int p0, int count) { return r < G ? p0 + r : count + p0 + r - G; }

__global__ void contrastive_tail_kernel(const float* __restrict__ v, const float* __restrict__ hb,
                                        const float* __restrict__ w, const float* __restrict__ b,
                                        const float* __restrict__ labels, int count, int I, int O, int G, bool relu,
                                        float margin, float h_rate, uint64_t seed, uint32_t h_layer,
                                        const StepState* __restrict__ st, float* __restrict__ gw,
                                        float* __restrict__ gb, float* __restrict__ dh, float* __restrict__ ghb,
                                        float* __restrict__ losses, float* __restrict__ partial,
                                        unsigned* __restrict__ counter) {
    extern __shared__ float sm[];
    const int ldw = I + 1, R = 2 * G;
    float* ws = sm;
    float* bs = ws + size_t(O) * ldw;
    float* hs = bs + O;
    float* ds = hs + size_t(R) * I;
    float* es = ds + size_t(R) * I;
    float* gs = es + size_t(R) * O;
    float* cs = gs + size_t(R) * O;
    float* ts = cs + G;
    const int p0 = blockIdx.x * G, pairs = min(G, count - p0);
    const int tid = threadIdx.x, nt = blockDim.x;
    const float* y = labels + st->first;
    const float h_scale = dropout_keep_scale(h_rate);

    for (int k = tid; k < O * I; k += nt) ws[(k / I) * ldw + k % I] = w[k];
    for (int k = tid; k < O; k += nt) bs[k] = b[k];
    // h = relu(v + hb) * dropout: bias_relu_dropout_kernel's expression and Philox stream (unit
    // i of image slot `row` is word i % 4 of group i / 4), so the same bits.
    const uint64_t h_step = h_rate > 0.0f ? st->step : 0;
    for (int k = tid; k < R * I; k += nt) {
        const int r = k / I, i = k % I, j = r % G;
        float x = 0.0f;
        if (j < pairs) {
            const int row = tail_row(r, G, p0, count);
            const DropoutGroup drop = dropout_group(seed, h_step, h_layer, uint32_t(row), uint32_t(i / 4), h_rate);
            x = siamese::relu(v[size_t(row) * I + i] + hb[i]) * drop.factor(i % 4);
        }
        hs[k] = x;
    }
    __syncthreads();

    // Forward: e = relu?(h . W^T + b) (the sum over i, then the bias: cuBLAS's GEMM then the
    // bias kernel of the unfused step).
    for (int k = tid; k < R * O; k += nt) {
        const int r = k / O, o = k % O;
        const float* hr = hs + size_t(r) * I;
        const float* wr = ws + size_t(o) * ldw;
        float acc = 0.0f;
        for (int i = 0; i < I; ++i) acc = fmaf(hr[i], wr[i], acc);
        const float e = acc + bs[o];
        es[k] = relu ? siamese::relu(e) : e;
    }
    __syncthreads();

    // Distance, loss term and gradient coefficient: one warp a pair, lanes over the embedding,
    // a fixed shuffle tree.
    const int warp = tid / 32, lane = tid % 32, warps = nt / 32;
    for (int j = warp; j < pairs; j += warps) {
        float s = 0.0f;
        for (int o = lane; o < O; o += 32) {
            const float diff = es[j * O + o] - es[(G + j) * O + o];
            s = fmaf(diff, diff, s);
        }
        for (int off = 16; off > 0; off /= 2) s += __shfl_xor_sync(0xffffffffu, s, off);
        if (lane == 0) {
            const bool clamped = distance_clamped(s);
            const float d = safe_distance(s);
            ts[j] = contrastive_term(d, y[p0 + j], margin);
            cs[j] = contrastive_grad_coef(d, y[p0 + j], margin, clamped, count);
        }
    }
    __syncthreads();

    // The embedding gradient (through the embedding ReLU: e > 0, as relu_dropout_backward at rate 0).
    for (int k = tid; k < R * O; k += nt) {
        const int r = k / O, o = k % O, j = r % G;
        float g = 0.0f;
        if (j < pairs) {
            const float diff = es[j * O + o] - es[(G + j) * O + o];
            g = (r < G ? cs[j] : -cs[j]) * diff;
            if (relu && !(es[k] > 0.0f)) g = 0.0f;
        }
        gs[k] = g;
    }
    __syncthreads();

    // dh = (g . W) through h's ReLU and dropout: h > 0 exactly where the unit was kept and active.
    for (int k = tid; k < R * I; k += nt) {
        const int r = k / I, i = k % I;
        float acc = 0.0f;
        for (int o = 0; o < O; ++o) acc = fmaf(gs[r * O + o], ws[size_t(o) * ldw + i], acc);
        const float gv = hs[k] > 0.0f ? acc * h_scale : 0.0f;
        ds[k] = gv;
        if (r % G < pairs) dh[size_t(tail_row(r, G, p0, count)) * I + i] = gv;
    }
    __syncthreads();

    // This block's partial sums, rows in local order (padding rows are zero and add nothing).
    float* mine = partial + size_t(blockIdx.x) * tail_block_partial(I, O);
    for (int k = tid; k < O * I; k += nt) {
        const int o = k / I, i = k % I;
        float acc = 0.0f;
        for (int r = 0; r < R; ++r) acc = fmaf(gs[r * O + o], hs[r * I + i], acc);
        mine[k] = acc;
    }
    for (int o = tid; o < O; o += nt) {
        float acc = 0.0f;
        for (int r = 0; r < R; ++r) acc += gs[r * O + o];
        mine[size_t(O) * I + o] = acc;
    }
    for (int i = tid; i < I; i += nt) {
        float acc = 0.0f;
        for (int r = 0; r < R; ++r) acc += ds[r * I + i];
        mine[size_t(O) * I + O + i] = acc;
    }
    if (tid == 0) {
        float acc = 0.0f;
        for (int j = 0; j < pairs; ++j) acc += ts[j];
        mine[size_t(O) * I + O + I] = acc;
    }

    // The last block to finish adds every block's partials in block order.
    if (!last_block_done(counter, gridDim.x)) return;
    const size_t P = tail_block_partial(I, O);
    for (size_t k = tid; k < P; k += nt) {
        float acc = 0.0f;
        for (unsigned blk = 0; blk < gridDim.x; ++blk) acc += __ldcg(partial + blk * P + k);
        if (k < size_t(O) * I)
            gw[k] = acc;
        else if (k < size_t(O) * I + O)
            gb[k - size_t(O) * I] = acc;
        else if (k < P - 1)
            ghb[k - size_t(O) * I - O] = acc;
        else
            losses[st->batch] = acc / float(count);
    }
}

}  // namespace

bool contrastive_tail_fits(int I, int O) { return tail_pairs_per_block(I, O) > 0; }

size_t contrastive_tail_partial_elems(int count, int I, int O) {
    const int G = tail_pairs_per_block(I, O);
    if (G == 0) return 0;
    return size_t((count + G - 1) / G) * tail_block_partial(I, O);
}

void contrastive_tail(float* gw, float* gb, float* dh, float* ghb, float* losses, const float* v, const float* hb,
                      const float* w, const float* b, const float* labels, int count, int I, int O, bool relu,
                      float margin, float h_rate, uint64_t seed, uint32_t h_layer, const StepState* st,
                      float* partial, size_t partial_elems, unsigned* counter, cudaStream_t stream) {
    NvtxRange r("contrastive_tail");
    const int G = tail_pairs_per_block(I, O);
    if (G == 0) throw std::logic_error("contrastive_tail: the layer does not fit one block's shared memory");
    if (count < 1) throw std::logic_error("contrastive_tail: no pairs");
    require_elems(partial_elems, contrastive_tail_partial_elems(count, I, O), "contrastive_tail: partial");
    const unsigned blocks = unsigned((count + G - 1) / G);
    const size_t bytes = tail_smem_floats(G, I, O) * sizeof(float);
    contrastive_tail_kernel<<<blocks, kTailThreads, bytes, stream>>>(v, hb, w, b, labels, count, I, O, G, relu, margin,
                                                                     h_rate, seed, h_layer, st, gw, gb, dh, ghb, losses,
                                                                     partial, counter);
    CUDA_CHECK_LAUNCH();
}

}  // namespace siamese::cuda
