#include "cudnn_conv.hpp"

#include <algorithm>
#include <cstdio>
#include <stdexcept>
#include <cmath>
#include <string>

#include "launch.hpp"
#include "nvtx.hpp"
#include "conv_phases.hpp"
#include "siamese/rules.hpp"

namespace siamese::cuda {

namespace {

// The most workspace an algorithm may ask for: beyond it the next deterministic choice is taken.
constexpr size_t kMaxWorkspaceBytes = 64u << 20;

// The algorithms cuDNN's header documents as non-deterministic are excluded whatever the
// heuristic's flag says. So are the transform-domain ones (FFT, Winograd): on the H200 a
// WINOGRAD_NONFUSED filter gradient was 3.2e-4 from our FP32 kernels where the direct and GEMM
// algorithms agree to 1e-5 (gpu_check, 2026-11-29); the engines must agree to FP32 rounding.
bool excluded(cudnnConvolutionFwdAlgo_t a) {
    return a == CUDNN_CONVOLUTION_FWD_ALGO_FFT || a == CUDNN_CONVOLUTION_FWD_ALGO_FFT_TILING ||
           a == CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD || a == CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED;
}
bool excluded(cudnnConvolutionBwdFilterAlgo_t a) {
    return a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0 || a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_3 ||
           a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT || a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT_TILING ||
           a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_WINOGRAD_NONFUSED;
}
bool excluded(cudnnConvolutionBwdDataAlgo_t a) {
    return a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_0 || a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT ||
           a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT_TILING || a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD ||
           a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD_NONFUSED;
}

template <class Perf, class Algo>
Algo pick_algorithm(const Perf* perf, int n, Algo fallback, bool* fell_back) {
    for (int i = 0; i < n; ++i)
        if (perf[i].status == CUDNN_STATUS_SUCCESS && perf[i].determinism == CUDNN_DETERMINISTIC &&
            !excluded(perf[i].algo) &&
            perf[i].mathType != CUDNN_TENSOR_OP_MATH && perf[i].mathType != CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION &&
            perf[i].memory <= kMaxWorkspaceBytes)
            return perf[i].algo;
    *fell_back = true;
    return fallback;
}

// The batch's images side by side as cuDNN reads them (and the FP16 bank widened to float).
template <class X>
__global__ void gather_images_kernel(X in, ImageGather gather, int n, int elems, float* __restrict__ out) {
    const long idx = long(blockIdx.x) * blockDim.x + threadIdx.x;
    if (idx >= long(n) * elems) return;
    out[idx] = in[size_t(gather(int(idx / elems))) * elems + idx % elems];
}

// Max-pool + ReLU + dropout over cuDNN's dense (n, F, Ho, Wo) output; one thread per group of
// four consecutive pooled outputs of an image (one Philox call, as in conv.cu and on the CPU).
__global__ void pool_forward_kernel(ConvShape s, int n, const float* __restrict__ conv, float* __restrict__ out,
                                    uint8_t* __restrict__ argmax, float rate, uint64_t seed, uint32_t layer_id,
                                    const StepState* __restrict__ st) {
    const int per_image = s.Hp * s.Wp, elems = s.F * per_image, groups = (elems + 3) / 4;
    const long idx = long(blockIdx.x) * blockDim.x + threadIdx.x;
    if (idx >= long(n) * groups) return;
    const int i = int(idx / groups), g = int(idx % groups);
    const float* c = conv + size_t(i) * s.F * s.Ho * s.Wo;
    pool_relu_dropout_group(
        s, i, g, [&](int f, int oy, int ox) { return c[(f * s.Ho + oy) * s.Wo + ox]; }, out, argmax, rate, seed, layer_id,
        rate > 0.0f ? st->step : 0);
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
    set_batch(max_n);  // descriptors, algorithms and workspace for max_n
}

void CudnnConvBlock::choose_algorithms() {
    int got = 0;
    for (bool& f : fell_back_) f = false;
    cudnnConvolutionFwdAlgoPerf_t fwd[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(h_, x_desc_, w_desc_, conv_desc_, y_desc_,
                                                       CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &got, fwd));
    fwd_algo_ = pick_algorithm(fwd, got, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM, &fell_back_[0]);
    cudnnConvolutionBwdFilterAlgoPerf_t bwf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
    CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(h_, x_desc_, y_desc_, conv_desc_, w_desc_,
                                                              CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &got, bwf));
    bwd_filter_algo_ = pick_algorithm(bwf, got, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1, &fell_back_[1]);
    cudnnConvolutionBwdDataAlgoPerf_t bwd[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
    CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(h_, w_desc_, y_desc_, conv_desc_, x_desc_,
                                                            CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &got, bwd));
    bwd_data_algo_ = pick_algorithm(bwd, got, CUDNN_CONVOLUTION_BWD_DATA_ALGO_1, &fell_back_[2]);
    // The workspace the chosen algorithms need, asked of cuDNN directly rather than trusting the
    // heuristic's estimate.
    ensure_workspace();
}

std::string CudnnConvBlock::describe() const {
    static const char* fwd_names[] = {"IMPLICIT_GEMM", "IMPLICIT_PRECOMP_GEMM", "GEMM", "DIRECT",
                                      "FFT", "FFT_TILING", "WINOGRAD", "WINOGRAD_NONFUSED"};
    static const char* filter_names[] = {"ALGO_0", "ALGO_1", "FFT", "ALGO_3", "WINOGRAD", "WINOGRAD_NONFUSED", "FFT_TILING"};
    static const char* data_names[] = {"ALGO_0", "ALGO_1", "FFT", "FFT_TILING", "WINOGRAD", "WINOGRAD_NONFUSED"};
    auto name = [this](const char* const* names, int count, int algo, int which) {
        return (algo >= 0 && algo < count ? std::string(names[algo]) : "algo " + std::to_string(algo)) +
               (fell_back_[which] ? " (fallback: the heuristics offered no deterministic FP32 choice)" : "");
    };
    char ws[32];
    std::snprintf(ws, sizeof ws, "%.2f MiB", double(workspace_.size()) / (1 << 20));
    return "fwd " + name(fwd_names, 8, int(fwd_algo_), 0) + ", bwd filter " + name(filter_names, 7, int(bwd_filter_algo_), 1) +
           ", bwd data " + name(data_names, 6, int(bwd_data_algo_), 2) + ", workspace " + ws;
}

std::vector<const void*> CudnnConvBlock::device_pointers() const {
    return {staged_.get(), conv_out_.get(), dconv_.get(), workspace_.get()};
}

void CudnnConvBlock::check_stream(cudaStream_t stream) const {
    cudaStream_t bound = nullptr;
    CUDNN_CHECK(cudnnGetStream(h_, &bound));
    if (bound != stream) throw std::logic_error("cuDNN handle bound to another stream than the launch's");
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
    // The algorithms are chosen for this batch size, whatever the block's capacity: a block
    // regrown for a larger bank then computes a training batch exactly as before (bit-identical
    // runs whether or not validation embedded the bank in between). The heuristics answer the
    // same for the same descriptors, so their first answer for a size is kept.
    if (auto it = chosen_.find(n); it != chosen_.end()) {
        fwd_algo_ = it->second.fwd;
        bwd_filter_algo_ = it->second.bwd_filter;
        bwd_data_algo_ = it->second.bwd_data;
        for (int k = 0; k < 3; ++k) fell_back_[k] = it->second.fell_back[k];
        return;  // its workspace was met when it was chosen (the workspace only grows)
    }
    choose_algorithms();
    chosen_[n] = Chosen{fwd_algo_, bwd_filter_algo_, bwd_data_algo_, {fell_back_[0], fell_back_[1], fell_back_[2]}};
}

void CudnnConvBlock::ensure_workspace() {
    size_t a = 0, b = 0, c = 0;
    CUDNN_CHECK(cudnnGetConvolutionForwardWorkspaceSize(h_, x_desc_, w_desc_, conv_desc_, y_desc_, fwd_algo_, &a));
    CUDNN_CHECK(cudnnGetConvolutionBackwardFilterWorkspaceSize(h_, x_desc_, y_desc_, conv_desc_, w_desc_,
                                                               bwd_filter_algo_, &b));
    CUDNN_CHECK(cudnnGetConvolutionBackwardDataWorkspaceSize(h_, w_desc_, y_desc_, conv_desc_, x_desc_, bwd_data_algo_, &c));
    const size_t need = std::max<size_t>({a, b, c, 16});
    // Grows only (a moved pointer is caught by the engine's graph check; the engine's eager
    // warm-up step meets any growth before a capture does).
    if (need > workspace_.size()) workspace_.resize(need);
}

const float* CudnnConvBlock::contiguous_input(ImageIn in, ImageGather gather, int n, cudaStream_t stream) {
    if (!gather && !in.is_half()) return in.f32;
    in.visit([&](auto x) {
        gather_images_kernel<decltype(x)><<<blocks_for(long(n) * s_.in_elems()), kThreads, 0, stream>>>(x, gather, n, s_.in_elems(),
                                                                                          staged_.get());
        CUDA_CHECK_LAUNCH();
    });
    return staged_.get();
}

void CudnnConvBlock::forward(float* out, uint8_t* argmax, ImageIn in, const float* w, const float* b, int n,
                             ImageGather gather, float rate, uint64_t seed, uint32_t layer_id, const StepState* st,
                             cudaStream_t stream) {
    NvtxRange r("cudnn_conv_forward");
    set_batch(n);
    check_stream(stream);
    const float* x = contiguous_input(in, gather, n, stream);
    const float one = 1.0f, zero = 0.0f;
    CUDNN_CHECK(cudnnConvolutionForward(h_, &one, x_desc_, x, w_desc_, w, conv_desc_,
                                        fwd_algo_, workspace_.get(), workspace_.size(), &zero, y_desc_, conv_out_.get()));
    CUDNN_CHECK(cudnnAddTensor(h_, &one, b_desc_, b, &one, y_desc_, conv_out_.get()));
    pool_forward_kernel<<<blocks_for(long(n) * ((s_.out_elems() + 3) / 4)), kThreads, 0, stream>>>(s_, n, conv_out_.get(), out, argmax,
                                                                                      rate, seed, layer_id, st);
    CUDA_CHECK_LAUNCH();
}

void CudnnConvBlock::backward(float* grad_wb, float* din, const float* geff, const uint8_t* argmax, ImageIn in,
                              const float* w, int n, ImageGather gather, cudaStream_t stream) {
    NvtxRange r("cudnn_conv_backward");
    set_batch(n);
    check_stream(stream);
    pool_backward_kernel<<<blocks_for(long(n) * s_.F * s_.Ho * s_.Wo), kThreads, 0, stream>>>(s_, n, geff, argmax,
                                                                                             dconv_.get());
    CUDA_CHECK_LAUNCH();
    const float* x = contiguous_input(in, gather, n, stream);
    const float one = 1.0f, zero = 0.0f;
    float* dw = grad_wb;
    float* db = grad_wb + size_t(s_.F) * s_.C * s_.K * s_.K;
    CUDNN_CHECK(cudnnConvolutionBackwardFilter(h_, &one, x_desc_, x, y_desc_, dconv_.get(), conv_desc_,
                                               bwd_filter_algo_, workspace_.get(), workspace_.size(),
                                               &zero, w_desc_, dw));
    CUDNN_CHECK(cudnnConvolutionBackwardBias(h_, &one, y_desc_, dconv_.get(), &zero, b_desc_, db));
    if (din)
        CUDNN_CHECK(cudnnConvolutionBackwardData(h_, &one, w_desc_, w, y_desc_, dconv_.get(), conv_desc_,
                                                 bwd_data_algo_, workspace_.get(), workspace_.size(),
                                                 &zero, x_desc_, din));
}

}  // namespace siamese::cuda
