// Launchers of the engine's CUDA kernels: plain host functions on device pointers, so the
// backend and the [cuda] tests (compiled by g++) call them alike. Every launcher opens an NVTX
// range named after itself and checks its launch. Each kernel family has its CPU reference in
// src/cpu/ under the same name with the same argument order (outputs first, then inputs, then
// sizes), followed by what the GPU needs: the batch size n, gather indices, scratch, the
// device-side StepState, the library handle, the stream.
//
// Batch layout: a batch of `count` pairs is 2*count images; image slot s < count is pair s's
// left image, slot count + s its right one. Activations are (2*count, elems) row-major. A P-K
// batch (the strong recipe) is simply its `count` images in the epoch's group order.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "siamese/augment.hpp"
#include "siamese/network.hpp"
#include "siamese/optimizer.hpp"
#include "siamese/rules.hpp"
#include "siamese/shuffle.hpp"
#include "gemm_phases.hpp"  // the custom GEMM's scratch sizes
#include "pixels.hpp"  // ImageIn: FP32 images or the FP16 bank

namespace siamese::cuda {

// Device-resident position in the epoch, read by the kernels so a captured CUDA graph can be
// replayed for every batch without changing its arguments.
struct StepState {
    int first;            // first pair of this batch in the epoch's order
    int batch;            // batch number within the epoch (index of its loss)
    unsigned long long step;  // global step: dropout stream and optimizer step (step + 1)
};

// Which bank image slot i of a batch reads: in + i (none), a list (gather[i]: the P-K batch, or
// the pair batch build_gather made), or (the fused step) straight from the epoch's pair order,
// a[st->first + i] for the left images and b[st->first + i - count] for the right ones, so no
// build_gather launch precedes the first conv block. Converts implicitly from a list (or nullptr).
struct ImageGather {
    const int* list = nullptr;
    const int* a = nullptr;
    const int* b = nullptr;
    const StepState* st = nullptr;
    int count = 0;
    ImageGather() = default;
    ImageGather(const int* l) : list(l) {}
    static ImageGather pairs(const int* a, const int* b, const StepState* st, int count) {
        ImageGather g;
        g.a = a;
        g.b = b;
        g.st = st;
        g.count = count;
        return g;
    }
    SIAMESE_HD explicit operator bool() const { return list || a; }
    SIAMESE_HD int operator()(int i) const {
        if (a) return i < count ? a[st->first + i] : b[st->first + i - count];
        return list ? list[i] : i;
    }
};

// ---- pairs (optimizer.cu) -------------------------------------------------------------------
// gather[s] = bank index of image slot s: a[first + s] for s < count, else b[first + s - count].
void build_gather(const int* a, const int* b, const StepState* st, int count, int* gather, cudaStream_t stream);
// first += count; batch += 1; step += 1.
void advance_state(StepState* st, int count, cudaStream_t stream);
// One optimizer update over the flat buffer; t = step + 1 read from st.
void optimizer_step(const OptimizerConfig& c, float* params, const float* grad, float* state, size_t n,
                    const StepState* st, cudaStream_t stream);
// The same update, then advance_state(st, advance) done by the kernel's last block to finish
// (--fused: one launch fewer). counter: a zeroed unsigned, left zero.
void optimizer_step_advance(const OptimizerConfig& c, float* params, const float* grad, float* state, size_t n,
                            StepState* st, int advance, unsigned* counter, cudaStream_t stream);

// ---- the epoch's order (shuffle.cu) ---------------------------------------------------------
// (oa, ob, oy)[i] = (a, b, y)[shuffle_index(key, i)] for i < key.n: the epoch's pair order.
// Reference: epoch_order in src/pairs.cpp.
void epoch_order(int* oa, int* ob, float* oy, const int* a, const int* b, const float* y, const ShuffleKey& key,
                 cudaStream_t stream);
// The same order for the epoch that begins at st->step (epoch_at_step: epochs of `batches`
// steps), and st->first = st->batch = 0: an epoch graph's first node, so the graph needs no new
// arguments from one epoch to the next.
void epoch_start(int* oa, int* ob, float* oy, const int* a, const int* b, const float* y, int n, uint64_t seed,
                 int batches, StepState* st, cudaStream_t stream);
// st->first = st->batch = 0, the step kept: a P-K epoch graph's start (its order is copied in).
void epoch_reset(StepState* st, cudaStream_t stream);
// *st = s, as a launch on the stream (no host copy to wait for).
void set_step_state(StepState* st, const StepState& s, cudaStream_t stream);

// ---- convolution blocks (conv.cu) ------------------------------------------------------------
// out (n, F,Hp,Wp) = dropout(relu(maxpool(conv(in) + b))), argmax (n, F,Hp,Wp) = dy*P+dx.
// Image i reads in + gather(i) * C*H*W (ImageGather): layer 1 reads the image bank directly.
// rate 0 = inference (no dropout).
// Reference: conv_pool_forward in src/cpu/conv.hpp (one image).
void conv_pool_forward(float* out, uint8_t* argmax, ImageIn in, const float* w, const float* b, const ConvShape& s,
                       int n, ImageGather gather, float rate, uint64_t seed, uint32_t layer_id, const StepState* st,
                       cudaStream_t stream);
// What the fused step (--fused) folds into a conv block's backward kernels; all off by default.
// y: the gradient is read as y > 0 ? d * scale : 0 from the block's output y (relu_dropout_backward
// folded into its readers: the same float expression, so the same bits as the two launches).
// counter: a zeroed unsigned (left zero): the weight gradient's chunk sums are added by the last
// chunk to finish (cuda/last_block.cuh) instead of a column_sums launch (the same bits).
struct ConvBackwardFusion {
    const float* y = nullptr;
    float scale = 1.0f;
    unsigned* counter = nullptr;
};

// Weight and bias gradients of one conv block from geff (gradient at the pooled outputs, already
// through dropout and ReLU): partial sums over chunks of images, then summed in chunk order
// (deterministic). grad_wb points at the layer's weights; its bias follows them (F*C*K*K later).
// partial holds partial_elems floats: conv_partial_elems(s) is enough for ANY n (the number of
// chunks is capped), so one scratch buffer serves every batch; the launcher checks
// conv_partial_needed(s, n) <= partial_elems on the host before launching.
size_t conv_partial_elems(const ConvShape& s);
size_t conv_partial_needed(const ConvShape& s, int n);
// Reference: conv_backward_weights in src/cpu/conv.hpp, whose (dw, db, dconv) are here grad_wb
// and (geff, argmax): the GPU never materialises the scattered conv gradient.
void conv_backward_weights(float* grad_wb, const float* geff, const uint8_t* argmax, ImageIn in, const ConvShape& s,
                           int n, ImageGather gather, float* partial, size_t partial_elems, cudaStream_t stream,
                           const ConvBackwardFusion& fuse = {});
// din (n, C,H,W): gradient at the block's input, gathered over filters and taps.
// Reference: conv_backward_input in src/cpu/conv.hpp (dconv there is geff + argmax here).
void conv_backward_input(float* din, const float* geff, const uint8_t* argmax, const float* w, const ConvShape& s, int n,
                         cudaStream_t stream, const ConvBackwardFusion& fuse = {});

// The same three with each image's data staged in shared memory (--conv tiled): same arguments,
// same results up to FP32 summation order; a shape whose tiles do not fit the device's shared
// memory runs the launchers above.
void conv_pool_forward_tiled(float* out, uint8_t* argmax, ImageIn in, const float* w, const float* b,
                             const ConvShape& s, int n, ImageGather gather, float rate, uint64_t seed, uint32_t layer_id,
                             const StepState* st, cudaStream_t stream);
void conv_backward_weights_tiled(float* grad_wb, const float* geff, const uint8_t* argmax, ImageIn in,
                                 const ConvShape& s, int n, ImageGather gather, float* partial, size_t partial_elems,
                                 cudaStream_t stream, const ConvBackwardFusion& fuse = {});
// Blocks a and b (b reads a's output) forward in ONE launch (--conv tiled --fused): a block per
// image stages it, computes a's pooled output (written to out_a / arg_a as the launch above
// writes it), then stages that output and computes b's (layer ids layer_a and layer_a + 1): the
// same phases, the same bits as two conv_pool_forward_tiled launches, which it falls back to
// where the tiles do not fit.
void conv_pair_forward_tiled(float* out_a, uint8_t* arg_a, float* out_b, uint8_t* arg_b, ImageIn in, const float* wa,
                             const float* ba, const float* wb, const float* bb, const ConvShape& sa, const ConvShape& sb,
                             int n, ImageGather gather, float rate, uint64_t seed, uint32_t layer_a, const StepState* st,
                             cudaStream_t stream);
// The tiled kernels of the recipes' shapes are compiled with every size a constant (cuda/conv.cu);
// off, every shape runs them on run-time sizes (the same bits: a [cuda] test compares them).
void conv_fixed_shapes(bool on);
void conv_backward_input_tiled(float* din, const float* geff, const uint8_t* argmax, const float* w, const ConvShape& s,
                               int n, cudaStream_t stream, const ConvBackwardFusion& fuse = {});

// ---- the dense layers' products (gemm.cu) ---------------------------------------------------
// What the dense layers' products run on: cuBLAS through `blas` (bound to the launch's stream),
// or (partial and counters set: --gemm custom) the engine's own split-K kernel, gemm_phases.hpp,
// with kGemmPartialFloats of scratch and kGemmCounters zeroed counters (left zero). Products on
// two streams at once need scratch each.
struct DenseGemm {
    cublasHandle_t blas = nullptr;
    float* partial = nullptr;
    unsigned* counters = nullptr;
    DenseGemm() = default;
    DenseGemm(cublasHandle_t h) : blas(h) {}  // NOLINT: a handle is the cuBLAS choice
    static DenseGemm custom(float* partial, unsigned* counters) {
        DenseGemm g;
        g.partial = partial;
        g.counters = counters;
        return g;
    }
    bool is_custom() const { return partial != nullptr; }
};
// C (M, N) = A (M, K) . B (K, N) in one launch (gemm_phases.hpp: the operands read in place
// either way round, a_kc / b_kc; the order of the sums fixed by the shapes: deterministic).
// partial: kGemmPartialFloats, counters: kGemmCounters zeroed (left zero).
// Reference: the plain triple loop (tests/test_gemm_emulation.cpp writes it out).
void gemm_custom(float* c, int ldc, const float* a, int lda, bool a_kc, const float* b, int ldb, bool b_kc, int M, int N,
                 int K, float* partial, unsigned* counters, cudaStream_t stream);

// ---- dense layers and elementwise (dense.cu) ------------------------------------------------
// out (cols) = sums of the rows of m (rows, cols), each column summed in row order
// (deterministic): the bias gradient, and the conv weight gradient's chunk partials.
void column_sums(float* out, const float* m, int rows, int cols, cudaStream_t stream);
// y (n, O) = x (n, I) . W^T (cuBLAS or gemm_custom, FP32), then bias + ReLU (when relu) +
// dropout in place. A cuBLAS handle must be bound to `stream` already (set once at its
// creation; checked).
// Reference: dense_forward then dropout_forward, src/cpu/dense.hpp and dropout.hpp.
// dense_forward_raw: the product alone, y = x . W^T (the fused tail applies the epilogue).
void dense_forward(float* y, const float* x, const float* w, const float* b, int n, int I, int O, bool relu,
                   float rate, uint64_t seed, uint32_t layer_id, const StepState* st, const DenseGemm& h,
                   cudaStream_t stream);
void dense_forward_raw(float* y, const float* x, const float* w, int n, int I, int O, const DenseGemm& h,
                       cudaStream_t stream);
// d (n, elems) = y > 0 ? d * 1/(1-rate) : 0: through dropout and ReLU. y = relu(v) * mask is
// positive exactly where the unit was kept and active, so no mask is regenerated.
// Reference: relu_dropout_backward in src/cpu/dropout.hpp (which keeps the mask).
void relu_dropout_backward(float* d, const float* y, int n, int elems, float rate, cudaStream_t stream);
// dW = d^T . x, db = column sums of d (fixed order; skipped when db is null), dx = d . W
// (skipped when dx is null).
// Reference: dense_backward in src/cpu/dense.hpp.
void dense_backward(float* dx, float* dw, float* db, const float* d, const float* x, const float* w, int n, int I, int O,
                    const DenseGemm& h, cudaStream_t stream);
// Its two halves, for two streams (the weight gradient is off the step's critical path):
// dW and db, then dx alone.
void dense_backward_weights(float* dw, float* db, const float* d, const float* x, int n, int I, int O,
                            const DenseGemm& h, cudaStream_t stream);
void dense_backward_input(float* dx, const float* d, const float* w, int n, int I, int O, const DenseGemm& h,
                          cudaStream_t stream);

// ---- distance and loss (loss.cu) ------------------------------------------------------------
// emb (2*count, E). One block: per pair d = sqrt(max(|a-b|^2, eps)), the loss term, the
// gradients w.r.t. both embeddings into g (2*count, E), the batch mean by a fixed-order tree
// reduction into losses[st->batch]. Labels read at labels + st->first. dist (count) optional.
// Reference: contrastive_loss in src/cpu/loss.hpp (ga, gb there are the two halves of g).
void contrastive_loss(float* g, float* losses, float* dist, const float* emb, const float* labels, int count, int E,
                      float margin, const StepState* st, cudaStream_t stream);

// ---- the fused tail (tail.cu, --fused) -------------------------------------------------------
// The penultimate layer's epilogue, the last dense layer (W (O, I), b, ReLU when relu), distance
// and contrastive loss, and their backward in one launch, for `count` pairs whose penultimate
// GEMM output is v (2*count, I): h = relu(v + hb) * dropout (rate h_rate, Philox stream of layer
// h_layer at st->step: dense_forward's epilogue, the same bits) is formed on loading. Writes gw
// (O, I) and gb (O), the last layer's gradients; dh (2*count, I), the gradient at h's
// pre-activation (through its ReLU and dropout); ghb (I) = column sums of dh (the penultimate
// bias gradient); losses[st->batch].
// Labels read at labels + st->first. A block takes tail_pairs_for(I, O, count, the device's shared
// memory) pairs. partial: contrastive_tail_partial_elems(count, I, O) floats (enough for any
// batch of up to `count` pairs);
// counter: one zeroed unsigned, left zero. Deterministic (fixed-order sums throughout).
// Reference: dense_forward, contrastive_loss, relu_dropout_backward, dense_backward (src/cpu/).
size_t contrastive_tail_partial_elems(int count, int I, int O);
void contrastive_tail(float* gw, float* gb, float* dh, float* ghb, float* losses, const float* v, const float* hb,
                      const float* w, const float* b, const float* labels, int count, int I, int O, bool relu,
                      float margin, float h_rate, uint64_t seed, uint32_t h_layer, const StepState* st,
                      float* partial, size_t partial_elems, unsigned* counter, cudaStream_t stream);

// ---- the P-K sampler (augment.cu, batch_loss.cu) ----------------------------------------------
// out (n, H, W): slot i is a random view of bank image order[st->first + i], drawn from
// (seed, st->step, i). Reference: augment_images in src/cpu/augment.hpp (gather = order + first).
void augment_images(float* out, ImageIn bank, const int* order, int n, int H, int W, const AugmentConfig& c,
                    uint64_t seed, const StepState* st, cudaStream_t stream);
// gather[s] = order[st->first + s] for s < count (the P-K batch without augmentation).
void build_gather_images(const int* order, const StepState* st, int count, int* gather, cudaStream_t stream);
// The loss over every pair of n embeddings (ids read at ids + st->first) into losses[st->batch],
// g (n, E) its gradient; rows is scratch of batch_loss_scratch_elems(n) floats (the row losses
// and the two pair weights). Reference: batch_contrastive_loss in src/cpu/batch_loss.hpp.
// (3n + 2 floats: enough for either loss.)
inline size_t batch_loss_scratch_elems(int n) { return 3 * size_t(n) + 2; }
void batch_contrastive_loss(float* g, float* losses, const float* emb, const int* ids, int n, int E, float margin,
                            Mining mining, float* rows, size_t rows_elems, const StepState* st, cudaStream_t stream);
// The normalised-softmax in-batch loss (dot products / temperature), same conventions; scratch
// holds the row losses, log-sum-exps and partner counts. Reference: batch_softmax_loss in
// src/cpu/batch_loss.hpp.
void batch_softmax_loss(float* g, float* losses, const float* emb, const int* ids, int n, int E, float temperature,
                        float* scratch, size_t scratch_elems, const StepState* st, cudaStream_t stream);
// z = e / max(|e|, eps) per row, norm (n) kept; de = (dz - z (z.dz)) / norm (de may alias dz).
// Reference: src/cpu/embed_head.hpp.
void l2_normalize_forward(float* z, float* norm, const float* e, int n, int E, cudaStream_t stream);
void l2_normalize_backward(float* de, const float* dz, const float* z, const float* norm, int n, int E,
                           cudaStream_t stream);

// ---- evaluation (eval.cu) -------------------------------------------------------------------
// Test-time flip averaging (NetConfig::flip_average): out (n, H, W) = in mirrored left-right;
// a (n, E) = mean of a and b, re-normalised when l2. Reference: src/cpu/embed_head.hpp.
void mirror_images(float* out, ImageIn in, int n, int H, int W, cudaStream_t stream);
void flip_average(float* a, const float* b, int n, int E, bool l2, cudaStream_t stream);
// d[i] = |emb[a[i]] - emb[b[i]]| (same safe sqrt).
// Reference: pair_distances in include/siamese/metrics.hpp.
void pair_distances(float* d, const float* emb, int E, const int* a, const int* b, int n, cudaStream_t stream);
// ROC AUC of distances d with labels y (1 genuine) on the device: a Thrust sort by distance,
// then the Mann-Whitney rank sum (ties averaged). Returns NaN when a class is empty.
double roc_auc_device(const float* d, const float* y, int n, cudaStream_t stream);

}  // namespace siamese::cuda
