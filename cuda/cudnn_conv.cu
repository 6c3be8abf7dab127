#include "cudnn_conv.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "nvtx.hpp"
#include "siamese/philox.hpp"

namespace siamese::cuda {

namespace {

constexpr int kThreads = 256;
constexpr size_t kWorkspaceBytes = 64u << 20;

__global__ void gather_images_kernel(const float* __restrict__ in, const int* __restrict__ gather, int n, int elems,
                                     float* __restrict__ out) {
    const long idx = long(blockIdx.x) * blockDim.x + threadIdx.x;
    if (idx >= long(n) * elems) return;
    out[idx] = in[size_t(gather[idx / elems]) * elems + idx % elems];
}

// Max-pool + ReLU + dropout over cuDNN's dense (n, F, Ho, Wo) output.
__global__ void pool_forward_kernel(ConvShape s, int n, const float* __restrict__ conv, float* __restrict__ out,
                                    uint8_t* __restrict__ argmax, float rate, uint64_t seed, uint32_t layer_id,
                                    const StepState* __restrict__ st) {
    const int per_image = s.Hp * s.Wp;
    const long idx = long(blockIdx.x) * blockDim.x + threadIdx.x;
    if (idx >= long(n) * s.F * per_image) return;
    const int pos = int(idx % per_image), f = int((idx / per_image) % s.F), i = int(idx / (long(per_image) * s.F));
    const int py = pos / s.Wp, px = pos % s.Wp;
    const float* c = conv + (size_t(i) * s.F + f) * s.Ho * s.Wo;
    float best = -INFINITY;
    int arg = 0;
    for (int dy = 0; dy < s.P; ++dy)
        for (int dx = 0; dx < s.P; ++dx) {
            const float v = c[(py * s.P + dy) * s.Wo + px * s.P + dx];
            if (v > best) {
                best = v;
                arg = dy * s.P + dx;
            }
        }
    float mask = 1.0f;
    if (rate > 0.0f)
        mask = dropout_keep(seed, st->step, layer_id, uint32_t(i), uint32_t(f * per_image + pos), rate)
                   ? 1.0f / (1.0f - rate) : 0.0f;
    out[idx] = (best > 0.0f ? best : 0.0f) * mask;
    argmax[idx] = uint8_t(arg);
}

// dconv (n, F, Ho, Wo): geff at each window's argmax, zero elsewhere (written in full).
__global__ void pool_backward_kernel(ConvShape s, int n, const float* __restrict__ geff,
                                     const uint8_t* __restrict__ argmax, float* __restrict__ dconv) {
    const long idx = long(blockIdx.x) * blockDim.x + threadIdx.x;
    if (idx >= long(n) * s.F * s.Ho * s.Wo) return;
    const int ox = int(idx % s.Wo), oy = int((idx / s.Wo) % s.Ho);
    const long plane = idx / (long(s.Wo) * s.Ho);  // i * F + f
    const int py = oy / s.P, px = ox / s.P;
    float v = 0.0f;
    if (py < s.Hp && px < s.Wp) {
        const size_t p = size_t(plane) * s.Hp * s.Wp + py * s.Wp + px;
        if (argmax[p] == (oy - py * s.P) * s.P + (ox - px * s.P)) v = geff[p];
    }
    dconv[idx] = v;
}

unsigned blocks_for(long n) { return unsigned((n + kThreads - 1) / kThreads); }

}  // namespace

CudnnConvBlock::CudnnConvBlock(cudnnHandle_t h, const ConvShape& s, int max_n) : h_(h), s_(s), max_n_(max_n) {
    CUDNN_CHECK(cudnnCreateTensorDescriptor(&x_desc_));
    CUDNN_CHECK(cudnnCreateTensorDescriptor(&y_desc_));
    CUDNN_CHECK(cudnnCreateTensorDescriptor(&b_desc_));
    CUDNN_CHECK(cudnnCreateFilterDescriptor(&w_desc_));
    CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&conv_desc_));
    CUDNN_CHECK(cudnnSetTensor4dDescriptor(b_desc_, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, s.F, 1, 1));
    CUDNN_CHECK(cudnnSetFilter4dDescriptor(w_desc_, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, s.F, s.C, s.K, s.K));
    // Cross-correlation, as PyTorch and our kernels compute; FP32 math (no TF32).
    CUDNN_CHECK(cudnnSetConvolution2dDescriptor(conv_desc_, 0, 0, 1, 1, 1, 1, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    CUDNN_CHECK(cudnnSetConvolutionMathType(conv_desc_, CUDNN_FMA_MATH));
    staged_.resize(size_t(max_n) * s.in_elems());
    conv_out_.resize(size_t(max_n) * s.F * s.Ho * s.Wo);
    dconv_.resize(size_t(max_n) * s.F * s.Ho * s.Wo);
    workspace_.resize(kWorkspaceBytes);
}

CudnnConvBlock::~CudnnConvBlock() {
    cudnnDestroyTensorDescriptor(x_desc_);
    cudnnDestroyTensorDescriptor(y_desc_);
    cudnnDestroyTensorDescriptor(b_desc_);
    cudnnDestroyFilterDescriptor(w_desc_);
    cudnnDestroyConvolutionDescriptor(conv_desc_);
}

void CudnnConvBlock::set_batch(int n) {
    if (n > max_n_) throw UsageError("cuDNN conv block: batch larger than allocated");
    if (n == cur_n_) return;
    CUDNN_CHECK(cudnnSetTensor4dDescriptor(x_desc_, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, n, s_.C, s_.H, s_.W));
    CUDNN_CHECK(cudnnSetTensor4dDescriptor(y_desc_, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, n, s_.F, s_.Ho, s_.Wo));
    cur_n_ = n;
}

const float* CudnnConvBlock::contiguous_input(const float* in, const int* gather, int n, cudaStream_t stream) {
    if (!gather) return in;
    gather_images_kernel<<<blocks_for(long(n) * s_.in_elems()), kThreads, 0, stream>>>(in, gather, n, s_.in_elems(),
                                                                                       staged_.get());
    CUDA_CHECK_LAUNCH();
    return staged_.get();
}

void CudnnConvBlock::forward(const float* in, const int* gather, int n, const float* w, const float* b, float* out,
                             uint8_t* argmax, float rate, uint64_t seed, uint32_t layer_id, const StepState* st,
                             cudaStream_t stream) {
    NvtxRange r("cudnn_conv_forward");
    set_batch(n);
    CUDNN_CHECK(cudnnSetStream(h_, stream));
    const float* x = contiguous_input(in, gather, n, stream);
    const float one = 1.0f, zero = 0.0f;
    CUDNN_CHECK(cudnnConvolutionForward(h_, &one, x_desc_, x, w_desc_, w, conv_desc_,
                                        CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM, workspace_.get(),
                                        kWorkspaceBytes, &zero, y_desc_, conv_out_.get()));
    CUDNN_CHECK(cudnnAddTensor(h_, &one, b_desc_, b, &one, y_desc_, conv_out_.get()));
    pool_forward_kernel<<<blocks_for(long(n) * s_.out_elems()), kThreads, 0, stream>>>(s_, n, conv_out_.get(), out, argmax,
                                                                                      rate, seed, layer_id, st);
    CUDA_CHECK_LAUNCH();
}

void CudnnConvBlock::backward(const float* in, const int* gather, int n, const float* geff, const uint8_t* argmax,
                              const float* w, float* grad_wb, float* din, cudaStream_t stream) {
    NvtxRange r("cudnn_conv_backward");
    set_batch(n);
    CUDNN_CHECK(cudnnSetStream(h_, stream));
    pool_backward_kernel<<<blocks_for(long(n) * s_.F * s_.Ho * s_.Wo), kThreads, 0, stream>>>(s_, n, geff, argmax,
                                                                                             dconv_.get());
    CUDA_CHECK_LAUNCH();
    const float* x = contiguous_input(in, gather, n, stream);
    const float one = 1.0f, zero = 0.0f;
    float* dw = grad_wb;
    float* db = grad_wb + size_t(s_.F) * s_.C * s_.K * s_.K;
    // ALGO_1 for filter and data: cuDNN's deterministic choices.
    CUDNN_CHECK(cudnnConvolutionBackwardFilter(h_, &one, x_desc_, x, y_desc_, dconv_.get(), conv_desc_,
                                               CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1, workspace_.get(), kWorkspaceBytes,
                                               &zero, w_desc_, dw));
    CUDNN_CHECK(cudnnConvolutionBackwardBias(h_, &one, y_desc_, dconv_.get(), &zero, b_desc_, db));
    if (din)
        CUDNN_CHECK(cudnnConvolutionBackwardData(h_, &one, w_desc_, w, y_desc_, dconv_.get(), conv_desc_,
                                                 CUDNN_CONVOLUTION_BWD_DATA_ALGO_1, workspace_.get(), kWorkspaceBytes,
                                                 &zero, x_desc_, din));
}

}  // namespace siamese::cuda
