// Dense layers: the products through cuBLAS (FP32; TF32 with --tf32) or the engine's own kernel
// (--gemm custom, gemm.cu), bias + ReLU + dropout and the
// backward mask as elementwise kernels, the bias gradient as fixed-order column sums.
// Row-major (n, I) activations and (O, I) weights are column-major (I, n) and (I, O) to cuBLAS.
// Reference: src/cpu/dense.hpp and src/cpu/dropout.hpp (same names, same argument order).
#include <stdexcept>

#include "check.hpp"
#include "kernels.hpp"
#include "last_block.cuh"
#include "launch.hpp"
#include "nvtx.hpp"
#include "siamese/rules.hpp"

namespace siamese::cuda {

namespace {

// One thread per group of four consecutive outputs of one row: bias, ReLU (NaN kept; none for a
// linear embedding layer), and the
// group's dropout mask from one Philox call (the CPU's stream: unit o of image slot i).
__global__ void bias_relu_dropout_kernel(float* __restrict__ y, const float* __restrict__ b, int n, int O, bool use_relu,
                                         float rate,
                                         uint64_t seed, uint32_t layer_id, const StepState* __restrict__ st) {
    const int groups = (O + 3) / 4;
    const long idx = long(blockIdx.x) * blockDim.x + threadIdx.x;
    if (idx >= long(n) * groups) return;
    const int i = int(idx / groups), g = int(idx % groups);
    const DropoutGroup drop = dropout_group(seed, rate > 0.0f ? st->step : 0, layer_id, uint32_t(i), uint32_t(g), rate);
#pragma unroll
    for (int j = 0; j < 4; ++j) {
        const int o = 4 * g + j;
        if (o >= O) break;
        float& v = y[size_t(i) * O + o];
        v = (use_relu ? relu(v + b[o]) : v + b[o]) * drop.factor(j);
    }
}

// y = relu(v) * mask, so y > 0 exactly where the unit was kept AND v > 0: the gradient passes
// there, scaled like the forward, and nowhere else. No mask to regenerate.
__global__ void relu_dropout_backward_kernel(float* __restrict__ d, const float* __restrict__ y, long total,
                                             float scale) {
    const long idx = long(blockIdx.x) * blockDim.x + threadIdx.x;
    if (idx >= total) return;
    d[idx] = y[idx] > 0.0f ? d[idx] * scale : 0.0f;
}

// out[c] = the sum of column c of m over its rows, in colsum_phases.hpp's fixed order (bit-
// identical run to run, and the order of the fused kernels' last-block sums): one block.
__global__ void column_sums_kernel(const float* __restrict__ m, int rows, int cols, float* __restrict__ out) {
    __shared__ float tile[kColsumTileFloats];
    sum_partials(tile, out, m, rows, cols);
}

// The handle must already be bound to `stream` (once, at its creation): calling cublasSetStream
// here would reset the workspace set after it (cuBLAS documents this), and captured GEMMs would
// then allocate or pick other kernels. cublasGetStream is a host-side read.
void require_stream(cublasHandle_t h, cudaStream_t stream) {
    cudaStream_t bound = nullptr;
    CUBLAS_CHECK(cublasGetStream(h, &bound));
    if (bound != stream) throw std::logic_error("cuBLAS handle bound to another stream than the launch's");
}

// C (m, n) = op(A) . op(B), column-major (cuBLAS's view of the row-major activations), FP32
// (or TF32 where the handle says so), on the handle's own stream.
void gemm(cublasHandle_t h, cudaStream_t stream, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
          const float* a, int lda, const float* b, int ldb, float* c, int ldc) {
    const float one = 1.0f, zero = 0.0f;
    require_stream(h, stream);
    CUBLAS_CHECK(cublasSgemm(h, ta, tb, m, n, k, &one, a, lda, b, ldb, &zero, c, ldc));
}

// The dense layers' three products, row-major: x (n, I), W (O, I), d (n, O).
// y (n, O) = x . W^T
void product_forward(const DenseGemm& g, float* y, const float* x, const float* w, int n, int I, int O,
                     cudaStream_t stream) {
    if (g.is_custom())  // A(i, k) = x[i][k], B(k, o) = W[o][k]: both along k
        gemm_custom(y, O, x, I, true, w, I, true, n, O, I, g.partial, g.counters, stream);
    else
        gemm(g.blas, stream, CUBLAS_OP_T, CUBLAS_OP_N, O, n, I, w, I, x, I, y, O);  // y^T (O, n) = W (O, I) . x^T (I, n)
}
// dW (O, I) = d^T . x
void product_weights(const DenseGemm& g, float* dw, const float* d, const float* x, int n, int I, int O,
                     cudaStream_t stream) {
    if (g.is_custom())  // A(o, i) = d[i][o] (along m), B(i, k) = x[i][k] (along n)
        gemm_custom(dw, I, d, O, false, x, I, false, O, I, n, g.partial, g.counters, stream);
    else
        gemm(g.blas, stream, CUBLAS_OP_N, CUBLAS_OP_T, I, O, n, x, I, d, O, dw, I);  // dW^T (I, O) = x^T (I, n) . d (n, O)
}
// dx (n, I) = d . W
void product_input(const DenseGemm& g, float* dx, const float* d, const float* w, int n, int I, int O,
                   cudaStream_t stream) {
    if (g.is_custom())  // A(i, o) = d[i][o] (along k), B(o, k) = W[o][k] (along n)
        gemm_custom(dx, I, d, O, true, w, I, false, n, I, O, g.partial, g.counters, stream);
    else
        gemm(g.blas, stream, CUBLAS_OP_N, CUBLAS_OP_N, I, n, O, w, I, d, O, dx, I);  // dx^T (I, n) = W^T (I, O) . d^T (O, n)
}

}  // namespace

void column_sums(float* out, const float* m, int rows, int cols, cudaStream_t stream) {
    if (cols < 1) return;
    if (rows < 1) {  // the sums of no rows (block_column_sums takes at least one)
        CUDA_CHECK(cudaMemsetAsync(out, 0, size_t(cols) * sizeof(float), stream));
        return;
    }
    column_sums_kernel<<<1, kColsumThreads, 0, stream>>>(m, rows, cols, out);
    CUDA_CHECK_LAUNCH();
}

void dense_forward(float* y, const float* x, const float* w, const float* b, int n, int I, int O, bool relu,
                   float rate, uint64_t seed, uint32_t layer_id, const StepState* st, const DenseGemm& h,
                   cudaStream_t stream) {
    NvtxRange r("dense_forward");
    product_forward(h, y, x, w, n, I, O, stream);
    bias_relu_dropout_kernel<<<blocks_for(long(n) * ((O + 3) / 4)), kThreads, 0, stream>>>(y, b, n, O, relu, rate, seed,
                                                                                           layer_id, st);
    CUDA_CHECK_LAUNCH();
}

void dense_forward_raw(float* y, const float* x, const float* w, int n, int I, int O, const DenseGemm& h,
                       cudaStream_t stream) {
    NvtxRange r("dense_forward_raw");
    product_forward(h, y, x, w, n, I, O, stream);
}

void relu_dropout_backward(float* d, const float* y, int n, int elems, float rate, cudaStream_t stream) {
    NvtxRange r("relu_dropout_backward");
    relu_dropout_backward_kernel<<<blocks_for(long(n) * elems), kThreads, 0, stream>>>(d, y, long(n) * elems,
                                                                                      dropout_keep_scale(rate));
    CUDA_CHECK_LAUNCH();
}

void dense_backward_weights(float* dw, float* db, const float* d, const float* x, int n, int I, int O,
                            const DenseGemm& h, cudaStream_t stream) {
    NvtxRange r("dense_backward_weights");
    product_weights(h, dw, d, x, n, I, O, stream);
    if (db) column_sums(db, d, n, O, stream);  // null: already summed (the fused tail)
}

void dense_backward_input(float* dx, const float* d, const float* w, int n, int I, int O, const DenseGemm& h,
                          cudaStream_t stream) {
    NvtxRange r("dense_backward_input");
    product_input(h, dx, d, w, n, I, O, stream);
}

void dense_backward(float* dx, float* dw, float* db, const float* d, const float* x, const float* w, int n, int I, int O,
                    const DenseGemm& h, cudaStream_t stream) {
    dense_backward_weights(dw, db, d, x, n, I, O, h, stream);
    if (dx) dense_backward_input(dx, d, w, n, I, O, h, stream);
}

}  // namespace siamese::cuda
