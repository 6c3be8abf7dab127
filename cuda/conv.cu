// Convolution blocks on the GPU: conv (valid, stride 1) + bias + ReLU + max-pool + dropout fused
// in one forward kernel; backward as a weight-gradient kernel (chunked partial sums, then a
// fixed-order reduction: bit-identical run to run) and an input-gradient gather kernel.
//
// Shapes accepted: any C, H, W, F, K with K <= H, W and pool P <= 8 (argmax is one byte);
// n = 2 * pairs images of (C, H, W) floats. Reference: src/cpu/conv.hpp (same names).
#include <algorithm>
#include <cmath>

#include "check.hpp"
#include "kernels.hpp"
#include "launch.hpp"
#include "nvtx.hpp"
#include "siamese/rules.hpp"

namespace siamese::cuda {

namespace {

// One thread per group of four consecutive pooled outputs of one image (flattened (F,Hp,Wp)):
// each output's P*P conv values, their max and argmax, ReLU, and the group's dropout mask from
// ONE Philox call (the four words of the block cover the four outputs, as on the CPU).
__global__ void conv_pool_forward_kernel(ConvShape s, int n, const float* __restrict__ in,
                                         const int* __restrict__ gather, const float* __restrict__ w,
                                         const float* __restrict__ b, float* __restrict__ out,
                                         uint8_t* __restrict__ argmax, float rate, uint64_t seed, uint32_t layer_id,
                                         const StepState* __restrict__ st) {
    const int per_image = s.Hp * s.Wp, elems = s.F * per_image, groups = (elems + 3) / 4;
    const long idx = long(blockIdx.x) * blockDim.x + threadIdx.x;
    if (idx >= long(n) * groups) return;
    const int i = int(idx / groups), g = int(idx % groups);
    const float* x = in + size_t(gather ? gather[i] : i) * s.C * s.H * s.W;
    const DropoutGroup drop = dropout_group(seed, rate > 0.0f ? st->step : 0, layer_id, uint32_t(i), uint32_t(g), rate);
#pragma unroll
    for (int j = 0; j < 4; ++j) {
        const int e = 4 * g + j;
        if (e >= elems) break;
        const int f = e / per_image, pos = e % per_image;
        const int py = pos / s.Wp, px = pos % s.Wp;
        const float* wf = w + size_t(f) * s.C * s.K * s.K;
        int arg = 0;
        const float best = pool_window_max(
            s.P,
            [&](int dy, int dx) {
                const int oy = py * s.P + dy, ox = px * s.P + dx;
                float acc = b[f];
                for (int c = 0; c < s.C; ++c)
                    for (int ky = 0; ky < s.K; ++ky) {
                        const float* xr = x + (size_t(c) * s.H + oy + ky) * s.W + ox;
                        const float* wr = wf + (c * s.K + ky) * s.K;
                        for (int kx = 0; kx < s.K; ++kx) acc += wr[kx] * xr[kx];
                    }
                return acc;
            },
            arg);
        const size_t o = size_t(i) * elems + e;
        out[o] = relu(best) * drop.factor(j);
        argmax[o] = uint8_t(arg);
    }
}

int wgrad_params(const ConvShape& s) { return s.F * s.C * s.K * s.K + s.F; }
// At most this many chunks of images in the weight gradient (enough for ~64k threads in flight),
// WHATEVER n: the scratch size then depends on the shape alone (a size that shrank with n once
// let a smaller buffer from an inference pass be overrun by the next training batch).
int wgrad_max_chunks(const ConvShape& s) { return std::max(1, 65536 / wgrad_params(s)); }
// Images per chunk for n images.
int wgrad_chunk(const ConvShape& s, int n) {
    const int chunks = std::max(1, std::min(n, wgrad_max_chunks(s)));
    return (n + chunks - 1) / chunks;
}

// Thread j of chunk blockIdx.y: the sum over the chunk's images of weight (or bias) j's gradient.
__global__ void conv_wgrad_partial_kernel(ConvShape s, int n, int chunk, const float* __restrict__ in,
                                          const int* __restrict__ gather, const float* __restrict__ geff,
                                          const uint8_t* __restrict__ argmax, float* __restrict__ partial) {
    const int CKK = s.C * s.K * s.K, nw = s.F * CKK, nwb = nw + s.F;
    const int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= nwb) return;
    const bool bias = j >= nw;
    const int f = bias ? j - nw : j / CKK;
    const int rem = j % CKK, c = rem / (s.K * s.K), ky = (rem / s.K) % s.K, kx = rem % s.K;
    const int per_image = s.Hp * s.Wp;
    const int i0 = blockIdx.y * chunk, i1 = min(n, i0 + chunk);
    float acc = 0.0f;
    for (int i = i0; i < i1; ++i) {
        const float* x = in + size_t(gather ? gather[i] : i) * s.C * s.H * s.W + size_t(c) * s.H * s.W;
        const float* g = geff + (size_t(i) * s.F + f) * per_image;
        const uint8_t* a = argmax + (size_t(i) * s.F + f) * per_image;
        for (int pos = 0; pos < per_image; ++pos) {
            const float gv = g[pos];
            if (gv == 0.0f) continue;
            if (bias) {
                acc += gv;
            } else {
                const int py = pos / s.Wp, px = pos % s.Wp;
                const int oy = py * s.P + a[pos] / s.P, ox = px * s.P + a[pos] % s.P;
                acc += gv * x[(oy + ky) * s.W + ox + kx];
            }
        }
    }
    partial[size_t(blockIdx.y) * nwb + j] = acc;
}

// One thread per input element (i, c, y, x): every (filter, tap) whose conv output was its pool
// window's argmax contributes w * geff.
__global__ void conv_input_grad_kernel(ConvShape s, int n, const float* __restrict__ geff,
                                       const uint8_t* __restrict__ argmax, const float* __restrict__ w,
                                       float* __restrict__ din) {
    const long idx = long(blockIdx.x) * blockDim.x + threadIdx.x;
    const long total = long(n) * s.C * s.H * s.W;
    if (idx >= total) return;
    const int x = int(idx % s.W), y = int((idx / s.W) % s.H), c = int((idx / (s.W * s.H)) % s.C);
    const int i = int(idx / (long(s.W) * s.H * s.C));
    const int per_image = s.Hp * s.Wp;
    float acc = 0.0f;
    for (int f = 0; f < s.F; ++f) {
        const float* g = geff + (size_t(i) * s.F + f) * per_image;
        const uint8_t* a = argmax + (size_t(i) * s.F + f) * per_image;
        const float* wk = w + (size_t(f) * s.C + c) * s.K * s.K;
        for (int ky = 0; ky < s.K; ++ky) {
            const int oy = y - ky;
            if (oy < 0 || oy >= s.Hp * s.P) continue;
            for (int kx = 0; kx < s.K; ++kx) {
                const int ox = x - kx;
                if (ox < 0 || ox >= s.Wp * s.P) continue;
                const int py = oy / s.P, px = ox / s.P, p = py * s.Wp + px;
                if (a[p] != (oy - py * s.P) * s.P + (ox - px * s.P)) continue;
                acc += wk[ky * s.K + kx] * g[p];
            }
        }
    }
    din[idx] = acc;
}

}  // namespace

void conv_pool_forward(float* out, uint8_t* argmax, const float* in, const float* w, const float* b, const ConvShape& s,
                       int n, const int* gather, float rate, uint64_t seed, uint32_t layer_id, const StepState* st,
                       cudaStream_t stream) {
    NvtxRange r("conv_pool_forward");
    if (s.P > 8) throw UsageError("CUDA conv: pool size over 8 is not supported (argmax is one byte)");
    conv_pool_forward_kernel<<<blocks_for(long(n) * ((s.out_elems() + 3) / 4)), kThreads, 0, stream>>>(s, n, in, gather, w, b, out, argmax, rate, seed, layer_id, st);
    CUDA_CHECK_LAUNCH();
}

size_t conv_partial_elems(const ConvShape& s) { return size_t(wgrad_max_chunks(s)) * wgrad_params(s); }

size_t conv_partial_needed(const ConvShape& s, int n) {
    const int chunk = wgrad_chunk(s, n);
    return size_t((n + chunk - 1) / chunk) * wgrad_params(s);
}

void conv_backward_weights(float* grad_wb, const float* geff, const uint8_t* argmax, const float* in, const ConvShape& s,
                           int n, const int* gather, float* partial, size_t partial_elems, cudaStream_t stream) {
    NvtxRange r("conv_backward_weights");
    require_elems(partial_elems, conv_partial_needed(s, n), "conv_backward_weights: partial");
    const int nwb = wgrad_params(s);
    const int chunk = wgrad_chunk(s, n), chunks = (n + chunk - 1) / chunk;
    conv_wgrad_partial_kernel<<<dim3(blocks_for(nwb), unsigned(chunks)), kThreads, 0, stream>>>(s, n, chunk, in, gather,
                                                                                               geff, argmax, partial);
    CUDA_CHECK_LAUNCH();
    column_sums(grad_wb, partial, chunks, nwb, stream);  // the chunks in order
}

void conv_backward_input(float* din, const float* geff, const uint8_t* argmax, const float* w, const ConvShape& s, int n,
                         cudaStream_t stream) {
    NvtxRange r("conv_backward_input");
    conv_input_grad_kernel<<<blocks_for(long(n) * s.C * s.H * s.W), kThreads, 0, stream>>>(s, n, geff, argmax, w, din);
    CUDA_CHECK_LAUNCH();
}

}  // namespace siamese::cuda
