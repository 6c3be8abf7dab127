// The twin network's configuration and its parameter layout: all weights and biases live in
// ONE flat float buffer (gradients and optimizer state use the same layout), so a checkpoint
// is one copy and one kernel updates every parameter.
//
// Layer stack per twin (reference recipe in brackets):
//   for each conv block l: conv F_l@KxK valid -> ReLU -> maxpool P -> dropout   [6, 12; K=3; P=2; .25]
//   flatten (C,H,W) -> for each dense layer: linear -> ReLU -> dropout (none after the last)
//                                                                   [128 (.1), 50]
//   the embedding head: the last layer's ReLU (embed_relu; off: a linear embedding), then an
//   optional L2 normalisation (l2_normalize)                          [ReLU, none]
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace siamese {

struct NetConfig {
    int in_h = 56, in_w = 46;
    std::vector<int> conv_filters{6, 12};
    int kernel = 3;
    int pool = 2;
    float conv_dropout = 0.25f;
    std::vector<int> dense{128, 50};
    float dense_dropout = 0.1f;  // after every dense layer but the last
    bool embed_relu = true;      // ReLU after the last dense layer (the reference recipe's)
    bool l2_normalize = false;   // embedding / |embedding| (distances then lie in [0, 2])
    // Inference only: the embedding of an image is the mean of those of the image and of its
    // mirror image (re-normalised with the L2 head). Training steps never use it.
    bool flip_average = false;

    std::string to_json() const;
    static NetConfig from_json(const std::string& s);  // throws DataError
    void validate() const;                             // throws UsageError
};

struct ConvShape {
    int C, H, W;     // input
    int F, K;        // filters, kernel
    int Ho, Wo;      // conv output (valid)
    int P, Hp, Wp;   // pool size and pooled output (floor)
    int in_elems() const { return C * H * W; }
    int out_elems() const { return F * Hp * Wp; }
};

// The block for a (C,H,W) input, F filters of KxK, pool P.
inline ConvShape conv_shape(int C, int H, int W, int F, int K, int P) {
    ConvShape s;
    s.C = C; s.H = H; s.W = W; s.F = F; s.K = K;
    s.Ho = H - K + 1; s.Wo = W - K + 1; s.P = P; s.Hp = s.Ho / P; s.Wp = s.Wo / P;
    return s;
}

struct DenseShape {
    int in, out;
};

struct Tensor {
    std::string name;            // PyTorch-style: conv1.weight, fc2.bias
    std::vector<int64_t> shape;  // conv weight (F,C,K,K); dense weight (out,in)
    size_t offset, size;         // in floats, within the flat buffer
};

struct ParamLayout {
    std::vector<ConvShape> conv;
    std::vector<DenseShape> dense;
    std::vector<Tensor> tensors;
    std::vector<size_t> conv_w, conv_b, dense_w, dense_b;  // offsets of each layer's tensors
    size_t total = 0;
    int embed_dim() const { return dense.back().out; }
    int flat_dim() const { return dense.front().in; }
};

ParamLayout make_layout(const NetConfig& cfg);

// Name of the first tensor holding a NaN or infinity in `v` (a flat buffer); "" when all finite.
std::string first_nonfinite_tensor(const ParamLayout& layout, const float* v);

// Glorot-uniform weights (limit sqrt(6 / (fan_in + fan_out)), conv fans scaled by K*K), zero biases.
std::vector<float> glorot_init(const ParamLayout& layout, uint64_t seed);

}  // namespace siamese
