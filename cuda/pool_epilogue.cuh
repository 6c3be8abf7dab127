// The epilogue every convolution forward shares (conv.cu's custom and tiled kernels, cudnn_conv.cu):
// pooled outputs 4g..4g+3 of image i, each the max of its P x P window of conv values, its
// argmax, ReLU and the group's dropout factor (one Philox call for the four, as on the CPU).
// Device code only: included by .cu files.
#pragma once
#include <cstdint>

#include "kernels.hpp"
#include "siamese/rules.hpp"

namespace siamese::cuda {

// A conv block's shape with every size a compile-time constant: the kernels templated on their
// shape type S read s.C, s.Hp, s.in_elems()... from it exactly as from a run-time ConvShape, and
// the compiler unrolls their tap and pool loops and folds the index arithmetic. Used for the
// recipes' shapes (conv.cu); the same code, the same order of operations: the same bits.
template <int C_, int H_, int W_, int F_, int K_, int P_>
struct FixedShape {
    static constexpr int C = C_, H = H_, W = W_, F = F_, K = K_, P = P_;
    static constexpr int Ho = H - K + 1, Wo = W - K + 1, Hp = Ho / P, Wp = Wo / P;
    __host__ __device__ static constexpr int in_elems() { return C * H * W; }
    __host__ __device__ static constexpr int out_elems() { return F * Hp * Wp; }
    static bool matches(const ConvShape& s) {
        return s.C == C && s.H == H && s.W == W && s.F == F && s.K == K && s.P == P;
    }
};

// value(f, oy, ox): the conv output (bias included) at filter f, row oy, column ox.
template <class S, class Value>
__device__ inline void pool_relu_dropout_group(const S& s, int i, int g, Value value, float* __restrict__ out,
                                               uint8_t* __restrict__ argmax, float rate, uint64_t seed,
                                               uint32_t layer_id, const StepState* __restrict__ st) {
    const int per_image = s.Hp * s.Wp, elems = s.F * per_image;
    const DropoutGroup drop = dropout_group(seed, rate > 0.0f ? st->step : 0, layer_id, uint32_t(i), uint32_t(g), rate);
#pragma unroll
    for (int j = 0; j < 4; ++j) {
        const int e = 4 * g + j;
        if (e >= elems) break;
        const int f = e / per_image, pos = e % per_image;
        const int py = pos / s.Wp, px = pos % s.Wp;
        int arg = 0;
        const float best =
            pool_window_max(s.P, [&](int dy, int dx) { return value(f, py * s.P + dy, px * s.P + dx); }, arg);
        const size_t o = size_t(i) * elems + e;
        out[o] = relu(best) * drop.factor(j);
        argmax[o] = uint8_t(arg);
    }
}

// The conv output at (f, oy, ox) of image x (C, H, W) with weights w (F, C, K, K) and bias b:
// the bias, then every (c, ky, kx) in order (the CPU reference's order).
template <class S>
__device__ inline float conv_value(const S& s, const float* x, const float* w, const float* b, int f, int oy,
                                   int ox) {
    const float* wf = w + f * s.C * s.K * s.K;
    float acc = b[f];
    for (int c = 0; c < s.C; ++c)
        for (int ky = 0; ky < s.K; ++ky) {
            const float* xr = x + (c * s.H + oy + ky) * s.W + ox;
            const float* wr = wf + (c * s.K + ky) * s.K;
            for (int kx = 0; kx < s.K; ++kx) acc += wr[kx] * xr[kx];
        }
    return acc;
}

}  // namespace siamese::cuda
