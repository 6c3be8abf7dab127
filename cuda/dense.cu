// Dense layers: the products through cuBLAS (FP32, no TF32), bias + ReLU + dropout and the
// backward mask as elementwise kernels, the bias gradient as fixed-order column sums.
// Row-major (n, I) activations and (O, I) weights are column-major (I, n) and (I, O) to cuBLAS.
#include "check.hpp"
#include "kernels.hpp"
#include "nvtx.hpp"
#include "siamese/philox.hpp"

namespace siamese::cuda {

namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ float dropout_scale(float rate, uint64_t seed, const StepState* st, uint32_t layer_id,
                                               uint32_t image, uint32_t elem) {
    if (rate <= 0.0f) return 1.0f;
    return dropout_keep(seed, st->step, layer_id, image, elem, rate) ? 1.0f / (1.0f - rate) : 0.0f;
}

__global__ void bias_relu_dropout_kernel(float* __restrict__ y, const float* __restrict__ b, int n, int O, float rate,
                                         uint64_t seed, uint32_t layer_id, const StepState* __restrict__ st) {
    const long idx = long(blockIdx.x) * blockDim.x + threadIdx.x;
    if (idx >= long(n) * O) return;
    const int i = int(idx / O), o = int(idx % O);
    const float v = y[idx] + b[o];
    y[idx] = (v > 0.0f ? v : 0.0f) * dropout_scale(rate, seed, st, layer_id, uint32_t(i), uint32_t(o));
}

__global__ void relu_dropout_backward_kernel(float* __restrict__ d, const float* __restrict__ y, int n, int elems,
                                             float rate, uint64_t seed, uint32_t layer_id,
                                             const StepState* __restrict__ st) {
    const long idx = long(blockIdx.x) * blockDim.x + threadIdx.x;
    if (idx >= long(n) * elems) return;
    // y = relu(v) * mask: where y > 0 both let the gradient through (mask > 0 and v > 0).
    d[idx] = y[idx] > 0.0f ? d[idx] * dropout_scale(rate, seed, st, layer_id, uint32_t(idx / elems), uint32_t(idx % elems))
                           : 0.0f;
}

// out[c] = sum over rows r, in order, of m[r][c]: fixed order, so bit-identical run to run.
__global__ void column_sums_kernel(const float* __restrict__ m, int rows, int cols, float* __restrict__ out) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= cols) return;
    float acc = 0.0f;
    for (int r = 0; r < rows; ++r) acc += m[size_t(r) * cols + c];
    out[c] = acc;
}

unsigned blocks_for(long n) { return unsigned((n + kThreads - 1) / kThreads); }

}  // namespace

void column_sums(const float* m, int rows, int cols, float* out, cudaStream_t stream) {
    column_sums_kernel<<<blocks_for(cols), kThreads, 0, stream>>>(m, rows, cols, out);
    CUDA_CHECK_LAUNCH();
}

void dense_forward(cublasHandle_t h, const float* x, const float* w, const float* b, float* y, int n, int I, int O,
                   float rate, uint64_t seed, uint32_t layer_id, const StepState* st, cudaStream_t stream) {
    NvtxRange r("dense_forward");
    const float one = 1.0f, zero = 0.0f;
    CUBLAS_CHECK(cublasSetStream(h, stream));
    // y^T (O, n) = W (O, I) . x^T (I, n)
    CUBLAS_CHECK(cublasSgemm(h, CUBLAS_OP_T, CUBLAS_OP_N, O, n, I, &one, w, I, x, I, &zero, y, O));
    bias_relu_dropout_kernel<<<blocks_for(long(n) * O), kThreads, 0, stream>>>(y, b, n, O, rate, seed, layer_id, st);
    CUDA_CHECK_LAUNCH();
}

void relu_dropout_backward(float* d, const float* y, int n, int elems, float rate, uint64_t seed, uint32_t layer_id,
                           const StepState* st, cudaStream_t stream) {
    NvtxRange r("relu_dropout_backward");
    relu_dropout_backward_kernel<<<blocks_for(long(n) * elems), kThreads, 0, stream>>>(d, y, n, elems, rate, seed,
                                                                                      layer_id, st);
    CUDA_CHECK_LAUNCH();
}

void dense_backward(cublasHandle_t h, const float* d, const float* x, const float* w, float* dw, float* db, float* dx,
                    int n, int I, int O, cudaStream_t stream) {
    NvtxRange r("dense_backward");
    const float one = 1.0f, zero = 0.0f;
    CUBLAS_CHECK(cublasSetStream(h, stream));
    // dW^T (I, O) = x^T (I, n) . d (n, O)
    CUBLAS_CHECK(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_T, I, O, n, &one, x, I, d, O, &zero, dw, I));
    column_sums(d, n, O, db, stream);
    // dx^T (I, n) = W^T (I, O) . d^T (O, n)
    if (dx) CUBLAS_CHECK(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, I, n, O, &one, w, I, d, O, &zero, dx, I));
}

}  // namespace siamese::cuda
