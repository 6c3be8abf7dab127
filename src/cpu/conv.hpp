// The CPU reference of the convolution blocks (CUDA twin: cuda/conv.cu, same names), templated
// on the scalar type (float for training, double for the gradient checks). Plain loops, written
// so that the compiler vectorizes the inner one. One image at a time; the CPU twin loops over
// images, the CUDA kernels take a batch of n.
//
// Layout conventions (one image at a time, channels first):
//   conv input  (C, H, W) dense
//   conv output (F, Ho, W): rows keep the INPUT stride W, columns >= Wo are unused. This turns
//               the convolution into long contiguous loops over p = y*W + x.
//   pooled      (F, Hp, Wp) dense, with the argmax of each window (dy*P + dx) as one byte.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "cpu/dropout.hpp"
#include "siamese/network.hpp"
#include "siamese/rules.hpp"

namespace siamese {

// Number of conv-output positions touched: the last row stops at Wo, so reads stay inside input.
inline int conv_span(const ConvShape& s) { return (s.Ho - 1) * s.W + s.Wo; }
// Leading zero pad of the conv-gradient buffer used by conv_backward_input's gather form.
inline int conv_grad_pad(const ConvShape& s) { return (s.K - 1) * s.W + (s.K - 1); }
// Floats in the conv-gradient buffer: pad + H*W (zero beyond the span too).
inline int conv_grad_elems(const ConvShape& s) { return conv_grad_pad(s) + s.H * s.W; }

// out (F, Ho, W-stride) = conv(in, w) + b. in (C,H,W), w (F,C,K,K), b (F).
template <class T>
void conv_forward(T* out, const T* in, const T* w, const T* b, const ConvShape& s) {
    const int span = conv_span(s), K = s.K, W = s.W;
    for (int f = 0; f < s.F; ++f) {
        T* o = out + size_t(f) * s.Ho * W;
        for (int p = 0; p < span; ++p) o[p] = b[f];
        for (int c = 0; c < s.C; ++c) {
            const T* x = in + size_t(c) * s.H * W;
            const T* wk = w + (size_t(f) * s.C + c) * K * K;
            // One tap at a time: an axpy over the whole span, which vectorizes cleanly.
            for (int ky = 0; ky < K; ++ky)
                for (int kx = 0; kx < K; ++kx) {
                    const T wv = wk[ky * K + kx];
                    const T* xs = x + ky * W + kx;
#pragma omp simd
                    for (int p = 0; p < span; ++p) o[p] += wv * xs[p];
                }
        }
    }
}

// act (F,Hp,Wp) = relu(maxpool(conv)); argmax per window. ReLU commutes with max, so the
// gradient flows to the argmax position only where act > 0.
template <class T>
void relu_maxpool_forward(T* act, uint8_t* argmax, const T* conv, const ConvShape& s) {
    const int P = s.P;
    for (int f = 0; f < s.F; ++f)
        for (int py = 0; py < s.Hp; ++py)
            for (int px = 0; px < s.Wp; ++px) {
                const T* base = conv + (size_t(f) * s.Ho + py * P) * s.W + px * P;
                T best = base[0];
                int arg = 0;
                for (int dy = 0; dy < P; ++dy)
                    for (int dx = 0; dx < P; ++dx)
                        if (pool_takes(base[dy * s.W + dx], best)) { best = base[dy * s.W + dx]; arg = dy * P + dx; }
                const size_t i = (size_t(f) * s.Hp + py) * s.Wp + px;
                act[i] = relu(best);
                argmax[i] = uint8_t(arg);
            }
}

// One whole conv block for one image: conv + bias into `conv` (scratch, F*Ho*W), ReLU + max-pool
// into act with the argmax, dropout into out with its mask. The CPU twin of cuda/conv.cu's
// conv_pool_forward, which fuses all of it for n images and keeps neither act nor mask.
template <class T>
void conv_pool_forward(T* out, uint8_t* argmax, T* act, T* mask, const T* in, const T* w, const T* b, const ConvShape& s,
                       T* conv, float rate, uint64_t seed, uint64_t step, uint32_t layer, int image) {
    conv_forward(conv, in, w, b, s);
    relu_maxpool_forward(act, argmax, conv, s);
    dropout_forward(out, mask, act, s.out_elems(), rate, seed, step, layer, image);
}

// dconv (conv_grad_elems, zeroed here) from d_act: scatter to each window's argmax where act > 0.
template <class T>
void relu_maxpool_backward(T* dconv, const T* d_act, const T* act, const uint8_t* argmax, const ConvShape& s) {
    const int pad = conv_grad_pad(s), P = s.P;
    for (int f = 0; f < s.F; ++f) {
        T* d = dconv + size_t(f) * conv_grad_elems(s);
        std::fill(d, d + conv_grad_elems(s), T(0));
        for (int py = 0; py < s.Hp; ++py)
            for (int px = 0; px < s.Wp; ++px) {
                const size_t i = (size_t(f) * s.Hp + py) * s.Wp + px;
                if (act[i] > T(0)) {
                    const int dy = argmax[i] / P, dx = argmax[i] % P;
                    d[pad + (py * P + dy) * s.W + px * P + dx] = d_act[i];
                }
            }
    }
}

// dw (F,C,K,K) and db (F) ACCUMULATE this image's contribution. dconv as from relu_maxpool_backward.
template <class T>
void conv_backward_weights(T* dw, T* db, const T* dconv, const T* in, const ConvShape& s) {
    const int span = conv_span(s), K = s.K, W = s.W, pad = conv_grad_pad(s);
    for (int f = 0; f < s.F; ++f) {
        const T* g = dconv + size_t(f) * conv_grad_elems(s) + pad;
        T sb = 0;
#pragma omp simd reduction(+ : sb)
        for (int p = 0; p < span; ++p) sb += g[p];
        db[f] += sb;
        for (int c = 0; c < s.C; ++c) {
            const T* x = in + size_t(c) * s.H * W;
            for (int ky = 0; ky < K; ++ky)
                for (int kx = 0; kx < K; ++kx) {
                    const T* xs = x + ky * W + kx;
                    T acc = 0;
#pragma omp simd reduction(+ : acc)
                    for (int p = 0; p < span; ++p) acc += g[p] * xs[p];
                    dw[((size_t(f) * s.C + c) * K + ky) * K + kx] += acc;
                }
        }
    }
}

// din (C,H,W) = transposed convolution of dconv, in gather form over the zero-padded buffer.
template <class T>
void conv_backward_input(T* din, const T* dconv, const T* w, const ConvShape& s) {
    const int K = s.K, W = s.W, HW = s.H * s.W, pad = conv_grad_pad(s);
    for (int c = 0; c < s.C; ++c) {
        T* d = din + size_t(c) * HW;
        std::fill(d, d + HW, T(0));
        for (int f = 0; f < s.F; ++f) {
            const T* g = dconv + size_t(f) * conv_grad_elems(s) + pad;
            const T* wk = w + (size_t(f) * s.C + c) * K * K;
            for (int ky = 0; ky < K; ++ky)
                for (int kx = 0; kx < K; ++kx) {
                    const T wv = wk[ky * K + kx];
                    const T* gs = g - ky * W - kx;
#pragma omp simd
                    for (int q = 0; q < HW; ++q) d[q] += wv * gs[q];
                }
        }
    }
}

}  // namespace siamese
