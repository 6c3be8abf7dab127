// The convolution blocks through cuDNN (--conv cudnn): cuDNN's convolution and bias, then our
// pool/ReLU/dropout kernel; backward through cuDNN's deterministic filter and data algorithms.
// The algorithms are cuDNN's heuristic choices at construction, restricted to deterministic
// FP32 (no tensor-op/TF32) ones; describe() names them. The handle must be bound to the
// engine's stream before the blocks are made (cudnnSetStream once; checked at each call).
#pragma once
#include <cudnn.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "buffer.hpp"
#include "kernels.hpp"

namespace siamese::cuda {

class CudnnConvBlock {
public:
    CudnnConvBlock(cudnnHandle_t h, const ConvShape& s, int max_n);
    ~CudnnConvBlock();
    CudnnConvBlock(const CudnnConvBlock&) = delete;
    CudnnConvBlock& operator=(const CudnnConvBlock&) = delete;

    // Same contract and argument order as conv_pool_forward (kernels.hpp).
    void forward(float* out, uint8_t* argmax, ImageIn in, const float* w, const float* b, int n, ImageGather gather,
                 float rate, uint64_t seed, uint32_t layer_id, const StepState* st, cudaStream_t stream);
    // conv_backward_weights and conv_backward_input in one: grad_wb holds the layer's weights
    // then its bias; din may be null (first layer).
    void backward(float* grad_wb, float* din, const float* geff, const uint8_t* argmax, ImageIn in, const float* w,
                  int n, ImageGather gather, cudaStream_t stream);
    // "fwd IMPLICIT_PRECOMP_GEMM, bwd filter ALGO_1, bwd data ALGO_1, workspace 0.1 MiB"
    std::string describe() const;
    // The device buffers a captured graph would use (for the engine's graph-validity check).
    std::vector<const void*> device_pointers() const;

private:
    void set_batch(int n);
    void choose_algorithms();
    void ensure_workspace();
    void check_stream(cudaStream_t stream) const;
    const float* contiguous_input(ImageIn in, ImageGather gather, int n, cudaStream_t stream);

    cudnnHandle_t h_;
    ConvShape s_;
    int max_n_, cur_n_ = -1;
    cudnnTensorDescriptor_t x_desc_, y_desc_, b_desc_;
    cudnnFilterDescriptor_t w_desc_;
    cudnnConvolutionDescriptor_t conv_desc_;
    DeviceBuffer<float> staged_, conv_out_, dconv_;
    DeviceBuffer<unsigned char> workspace_;
    cudnnConvolutionFwdAlgo_t fwd_algo_{};
    cudnnConvolutionBwdFilterAlgo_t bwd_filter_algo_{};
    cudnnConvolutionBwdDataAlgo_t bwd_data_algo_{};
    bool fell_back_[3] = {false, false, false};
    // The algorithms chosen for each batch size met so far: a size met again (the epoch graph
    // alternates training batches and the validation bank) asks no heuristics, so nothing but
    // descriptor updates happens on the host while a graph is being captured.
    struct Chosen {
        cudnnConvolutionFwdAlgo_t fwd;
        cudnnConvolutionBwdFilterAlgo_t bwd_filter;
        cudnnConvolutionBwdDataAlgo_t bwd_data;
        bool fell_back[3];
    };
    std::map<int, Chosen> chosen_;
};

}  // namespace siamese::cuda
