// The convolution kernels' per-thread code as host-and-device functions (no CUDA header): the
// pool epilogue every conv forward shares (conv.cu, cudnn_conv.cu), the weight-gradient terms,
// and the tiled kernels (--conv tiled) phase by phase. The kernels in conv.cu run the phases with
// a barrier between each; tests/test_conv_emulation.cpp runs the very same functions on the CPU,
// block by block and thread by thread (each phase's iterations are independent of the other
// threads'), against the CPU reference: the kernels' indexing is checked where no GPU exists.
#pragma once
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "siamese/network.hpp"  // ConvShape
#include "siamese/rules.hpp"    // pool, ReLU, dropout rules

namespace siamese::cuda {

// A conv block's shape with every size a compile-time constant: the code templated on its shape
// type S reads s.C, s.Hp, s.in_elems()... from it exactly as from a run-time ConvShape, and the
// compiler unrolls the tap and pool loops and folds the index arithmetic. Used for the recipes'
// shapes (conv.cu); the same code, the same order of operations: the same bits.
template <int C_, int H_, int W_, int F_, int K_, int P_>
struct FixedShape {
    static constexpr int C = C_, H = H_, W = W_, F = F_, K = K_, P = P_;
    static constexpr int Ho = H - K + 1, Wo = W - K + 1, Hp = Ho / P, Wp = Wo / P;
    SIAMESE_HD static constexpr int in_elems() { return C * H * W; }
    SIAMESE_HD static constexpr int out_elems() { return F * Hp * Wp; }
    static bool matches(const ConvShape& s) {
        return s.C == C && s.H == H && s.W == W && s.F == F && s.K == K && s.P == P;
    }
};

template <class S>
struct IsFixedShape : std::false_type {};
template <int C, int H, int W, int F, int K, int P>
struct IsFixedShape<FixedShape<C, H, W, F, K, P>> : std::true_type {};

// Pooled outputs 4g..4g+3 of image i, each its window's max (pooled(f, py, px, arg): the max of
// the P x P conv values of pool window (py, px) of filter f, and the first maximum's position),
// ReLU and the group's dropout factor (one Philox call for the four, as on the CPU). step: the
// dropout stream's step (any value when rate is 0: no mask is drawn).
template <class S, class Pooled>
SIAMESE_HD void pool_relu_dropout_windows(const S& s, int i, int g, Pooled pooled, float* out, uint8_t* argmax,
                                          float rate, uint64_t seed, uint32_t layer_id, uint64_t step) {
    const int per_image = s.Hp * s.Wp, elems = s.F * per_image;
    const DropoutGroup drop = dropout_group(seed, rate > 0.0f ? step : 0, layer_id, uint32_t(i), uint32_t(g), rate);
    SIAMESE_UNROLL
    for (int j = 0; j < 4; ++j) {
        const int e = 4 * g + j;
        if (e >= elems) break;
        const int f = e / per_image, pos = e % per_image;
        int arg = 0;
        const float best = pooled(f, pos / s.Wp, pos % s.Wp, arg);
        const size_t o = size_t(i) * elems + e;
        out[o] = relu(best) * drop.factor(j);
        argmax[o] = uint8_t(arg);
    }
}

// The same with value(f, oy, ox), the conv output (bias included), computed value by value.
template <class S, class Value>
SIAMESE_HD void pool_relu_dropout_group(const S& s, int i, int g, Value value, float* out, uint8_t* argmax, float rate,
                                        uint64_t seed, uint32_t layer_id, uint64_t step) {
    pool_relu_dropout_windows(
        s, i, g,
        [&](int f, int py, int px, int& arg) {
            return pool_window_max(s.P, [&](int dy, int dx) { return value(f, py * s.P + dy, px * s.P + dx); }, arg);
        },
        out, argmax, rate, seed, layer_id, step);
}

// The conv output at (f, oy, ox) of image x (C, H, W; rows ld floats apart, ld >= W) with
// weights w (F, C, K, K) and bias b: the bias, then every (c, ky, kx) in order (the CPU
// reference's order). X: a float pointer, or the pixel types of pixels.hpp (the FP16 bank
// widened as it is read).
template <class S, class X>
SIAMESE_HD float conv_value(const S& s, X x, const float* w, const float* b, int f, int oy, int ox, int ld) {
    const float* wf = w + f * s.C * s.K * s.K;
    float acc = b[f];
    for (int c = 0; c < s.C; ++c)
        for (int ky = 0; ky < s.K; ++ky) {
            const X xr = x + size_t((c * s.H + oy + ky) * ld + ox);
            const float* wr = wf + (c * s.K + ky) * s.K;
            for (int kx = 0; kx < s.K; ++kx) acc += wr[kx] * xr[kx];
        }
    return acc;
}

// The P x P conv values of pool window (py, px) of filter f, vals[dy * P + dx], for a FixedShape
// (every size a constant: the arrays below are registers). Each value is summed exactly as
// conv_value sums it (the bias, then (c, ky, kx) in order: the same bits), but a channel's
// (P + K - 1)^2 input patch and K^2 taps are loaded once for the window's P^2 values: 25 loads
// a channel instead of 72 for the recipes' 3x3 conv and 2x2 pool.
template <class S, class X>
SIAMESE_HD void conv_window(const S&, X x, const float* w, const float* b, int f, int py, int px, int ld, float* vals) {
    constexpr int C = S::C, H = S::H, K = S::K, P = S::P, T = P + K - 1;
    SIAMESE_UNROLL
    for (int v = 0; v < P * P; ++v) vals[v] = b[f];
    const float* wf = w + f * C * K * K;
    for (int c = 0; c < C; ++c) {
        float patch[T * T], tap[K * K];
        SIAMESE_UNROLL
        for (int r = 0; r < T; ++r)
            SIAMESE_UNROLL
            for (int q = 0; q < T; ++q) patch[r * T + q] = x[size_t((c * H + py * P + r) * ld + px * P + q)];
        SIAMESE_UNROLL
        for (int k = 0; k < K * K; ++k) tap[k] = wf[c * K * K + k];
        SIAMESE_UNROLL
        for (int ky = 0; ky < K; ++ky)
            SIAMESE_UNROLL
            for (int kx = 0; kx < K; ++kx)
                SIAMESE_UNROLL
                for (int dy = 0; dy < P; ++dy)
                    SIAMESE_UNROLL
                    for (int dx = 0; dx < P; ++dx)
                        vals[dy * P + dx] += tap[ky * K + kx] * patch[(dy + ky) * T + dx + kx];
    }
}

// Pooled outputs 4g..4g+3 of image i (x: its pixels, a float pointer or pixels.hpp's types, rows
// ld floats apart) with weights w and biases b: for a FixedShape a window's values together
// (conv_window: its patch and taps in registers), for a run-time shape value by value
// (conv_value). The same bits either way.
template <class S, class X>
SIAMESE_HD void conv_pool_group(const S& s, int i, int g, X x, int ld, const float* w, const float* b, float* out,
                                uint8_t* argmax, float rate, uint64_t seed, uint32_t layer_id, uint64_t step) {
    if constexpr (IsFixedShape<S>::value) {
        pool_relu_dropout_windows(
            s, i, g,
            [&](int f, int py, int px, int& arg) {
                float vals[S::P * S::P];
                conv_window(s, x, w, b, f, py, px, ld, vals);
                return pool_window_max(S::P, [&](int dy, int dx) { return vals[dy * S::P + dx]; }, arg);
            },
            out, argmax, rate, seed, layer_id, step);
    } else {
        pool_relu_dropout_group(
            s, i, g, [&](int f, int oy, int ox) { return conv_value(s, x, w, b, f, oy, ox, ld); }, out, argmax, rate,
            seed, layer_id, step);
    }
}

// The pooled gradient as the backward kernels read it: g[k] itself, or (fused) masked on read
// by the block's output y: y > 0 ? g * scale : 0, relu_dropout_backward's expression.
SIAMESE_HD float pooled_grad(const float* g, const float* y, float scale, size_t k) {
    return y ? (y[k] > 0.0f ? g[k] * scale : 0.0f) : g[k];
}

template <class S>
SIAMESE_HD int wgrad_params(const S& s) { return s.F * s.C * s.K * s.K + s.F; }

// The weight gradient's chunks of images (host side: launch geometry). At most
// wgrad_max_chunks (enough for ~64k threads in flight) WHATEVER n: the scratch size then depends
// on the shape alone (a size that shrank with n once let a smaller buffer from an inference pass
// be overrun by the next training batch). The chunks' partial sums are the rows the last block
// (or column_sums) adds up: colsum_phases.hpp.
inline int wgrad_max_chunks(const ConvShape& s) { return 65536 / wgrad_params(s) > 1 ? 65536 / wgrad_params(s) : 1; }
// Images per chunk for n images.
inline int wgrad_chunk(const ConvShape& s, int n) {
    int chunks = n < wgrad_max_chunks(s) ? n : wgrad_max_chunks(s);
    if (chunks < 1) chunks = 1;
    return (n + chunks - 1) / chunks;
}

// Weight (or bias) j's gradient terms from one image, added to acc in position order: pooled
// positions first, first + step, ... of its filter's geff g (F, Hp, Wp) (masked by y when y is
// set: pooled_grad), each weight's tap read from the input x (C, H, W) at the window's argmax a.
template <class S, class X>
SIAMESE_HD float wgrad_terms(const S& s, int j, const float* g, const float* y, float scale, const uint8_t* a, X x,
                             int first, int step, float acc) {
    const int CKK = s.C * s.K * s.K, nw = s.F * CKK, per_image = s.Hp * s.Wp;
    const bool bias = j >= nw;
    const int f = bias ? j - nw : j / CKK;
    const int rem = j % CKK, c = rem / (s.K * s.K), ky = (rem / s.K) % s.K, kx = rem % s.K;
    g += f * per_image;
    if (y) y += f * per_image;
    a += f * per_image;
    x = x + size_t(c * s.H * s.W);
    for (int pos = first; pos < per_image; pos += step) {
        const float gv = pooled_grad(g, y, scale, pos);
        if (gv == 0.0f) continue;
        if (bias) {
            acc += gv;
        } else {
            const int py = pos / s.Wp, px = pos % s.Wp;
            const int oy = py * s.P + a[pos] / s.P, ox = px * s.P + a[pos] % s.P;
            acc += gv * x[(oy + ky) * s.W + ox + kx];
        }
    }
    return acc;
}

// The input gradient at element idx of the batch's inputs (flattened (n, C, H, W)), as
// conv_input_grad_kernel's thread computes it: every (filter, tap) whose conv output was its pool
// window's argmax contributes w * the pooled gradient (geff, masked by ymask when set:
// pooled_grad), filters and taps in order.
template <class S>
SIAMESE_HD float conv_input_grad_at(const S& s, long idx, const float* geff, const float* ymask, float scale,
                                    const uint8_t* argmax, const float* w) {
    const int x = int(idx % s.W), y = int((idx / s.W) % s.H), c = int((idx / (s.W * s.H)) % s.C);
    const int i = int(idx / (long(s.W) * s.H * s.C));
    const int per_image = s.Hp * s.Wp;
    float acc = 0.0f;
    for (int f = 0; f < s.F; ++f) {
        const float* g = geff + (size_t(i) * s.F + f) * per_image;
        const float* ym = ymask ? ymask + (size_t(i) * s.F + f) * per_image : nullptr;
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
                acc += wk[ky * s.K + kx] * pooled_grad(g, ym, scale, p);
            }
        }
    }
    return acc;
}

// ---- the tiled kernels' phases (--conv tiled). Each block works on one image (or one image's
// chunk of outputs) staged in shared memory `sm`; thread tid of nt.

// Forward: the staged image's row stride. A thread makes four consecutive pooled outputs, so at
// one load a warp's lanes read 8 floats apart along a row (the pool's 2 x 4 outputs): with rows
// W floats apart, every lane of a row falls in one of four banks, and the recipes' shapes meet
// 7.5-8.6 lanes a bank (wavefronts a load, counted for every load of the window code). One float
// of padding a row spreads the rows over the banks: 2.8-3.4. For the fixed shapes, whose
// conflicts were counted; a run-time shape keeps W.
template <class S>
SIAMESE_HD int staged_ld(const S& s) {
    if constexpr (IsFixedShape<S>::value)
        return S::W + 1;
    else
        return s.W;
}
// Forward: the floats of shared memory phase 1 stages (the image with its row stride, the
// weights, the biases).
template <class S>
SIAMESE_HD size_t tiled_forward_smem_floats(const S& s) {
    return size_t(s.C * s.H) * staged_ld(s) + size_t(s.F) * s.C * s.K * s.K + s.F;
}
// Forward, phase 1: the image x (a float pointer, or pixels.hpp's types), its rows staged_ld
// floats apart, the weights and biases into sm.
template <class S, class X>
SIAMESE_HD void tiled_forward_stage(const S& s, X x, const float* w, const float* b, float* sm, int tid, int nt) {
    const int img = s.C * s.H * s.W, ld = staged_ld(s), nw = s.F * s.C * s.K * s.K;
    float *xs = sm, *ws = sm + s.C * s.H * ld, *bs = ws + nw;
    for (int k = tid; k < img; k += nt) xs[(k / s.W) * ld + k % s.W] = x[k];
    for (int k = tid; k < nw; k += nt) ws[k] = w[k];
    for (int k = tid; k < s.F; k += nt) bs[k] = b[k];
}
// Forward: chunks of nt groups of four pooled outputs an image (phase 2 takes one a call).
template <class S>
SIAMESE_HD int tiled_forward_chunks(const S& s, int nt) {
    return ((s.F * s.Hp * s.Wp + 3) / 4 + nt - 1) / nt;
}
// Forward, phase 2: thread = one group of four pooled outputs of image i (group chunk * nt + tid).
template <class S>
SIAMESE_HD void tiled_forward_compute(const S& s, int i, int chunk, const float* sm, float* out, uint8_t* argmax,
                                      float rate, uint64_t seed, uint32_t layer_id, uint64_t step, int tid, int nt) {
    const int ld = staged_ld(s), nw = s.F * s.C * s.K * s.K;
    const float *xs = sm, *ws = sm + s.C * s.H * ld, *bs = ws + nw;
    const int groups = (s.F * s.Hp * s.Wp + 3) / 4, g = chunk * nt + tid;
    if (g >= groups) return;
    conv_pool_group(s, i, g, xs, ld, ws, bs, out, argmax, rate, seed, layer_id, step);
}

// Input gradient, phase 1: a zero (F, Hp*P, Wp*P) tile and the weights beside it.
template <class S>
SIAMESE_HD void tiled_input_grad_clear(const S& s, const float* w, float* sm, int tid, int nt) {
    const int dc = s.F * s.Hp * s.P * s.Wp * s.P, nw = s.F * s.C * s.K * s.K;
    float *ds = sm, *ws = sm + dc;
    for (int k = tid; k < dc; k += nt) ds[k] = 0.0f;
    for (int k = tid; k < nw; k += nt) ws[k] = w[k];
}
// Input gradient, phase 2: image i's pooled gradient scattered through its argmax into the tile.
template <class S>
SIAMESE_HD void tiled_input_grad_scatter(const S& s, int i, const float* geff, const float* ymask, float scale,
                                         const uint8_t* argmax, float* sm, int tid, int nt) {
    const int Hc = s.Hp * s.P, Wc = s.Wp * s.P, per_image = s.Hp * s.Wp;
    float* ds = sm;
    const float* g = geff + size_t(i) * s.F * per_image;
    const float* ym = ymask ? ymask + size_t(i) * s.F * per_image : nullptr;
    const uint8_t* a = argmax + size_t(i) * s.F * per_image;
    for (int e = tid; e < s.F * per_image; e += nt) {
        const int f = e / per_image, p = e % per_image, py = p / s.Wp, px = p % s.Wp;
        ds[(f * Hc + py * s.P + a[e] / s.P) * Wc + px * s.P + a[e] % s.P] = pooled_grad(g, ym, scale, e);
    }
}
// Input gradient, phase 3: thread = input elements of the block's chunk, each a plain transposed
// convolution over the tile, summing (f, ky, kx) in conv_input_grad_kernel's order (the zero
// terms off the argmax add nothing).
template <class S>
SIAMESE_HD void tiled_input_grad_compute(const S& s, int i, int chunk, int per_chunk, const float* sm, float* din,
                                         int tid, int nt) {
    const int Hc = s.Hp * s.P, Wc = s.Wp * s.P, dc = s.F * Hc * Wc, KK = s.K * s.K;
    const float *ds = sm, *ws = sm + dc;
    const int img = s.C * s.H * s.W, end = (chunk + 1) * per_chunk, e1 = img < end ? img : end;
    for (int e = chunk * per_chunk + tid; e < e1; e += nt) {
        const int x = e % s.W, y = (e / s.W) % s.H, c = e / (s.W * s.H);
        float acc = 0.0f;
        for (int f = 0; f < s.F; ++f) {
            const float* wk = ws + (f * s.C + c) * KK;
            const float* df = ds + f * Hc * Wc;
            for (int ky = 0; ky < s.K; ++ky) {
                const int oy = y - ky;
                if (oy < 0 || oy >= Hc) continue;
                for (int kx = 0; kx < s.K; ++kx) {
                    const int ox = x - kx;
                    if (ox < 0 || ox >= Wc) continue;
                    acc += wk[ky * s.K + kx] * df[oy * Wc + ox];
                }
            }
        }
        din[size_t(i) * img + e] = acc;
    }
}

// Weight gradient: a block sums a chunk of images, each staged in turn. With fewer weights than
// threads (conv1: 60), `split` threads share a weight, each taking every split-th pooled
// position, and their sums are added in slice order; otherwise each thread keeps up to
// kWgradPerThread weights (acc: a thread's kWgradPerThread running sums, zero at the start).
constexpr int kWgradPerThread = 32;
// The weights a thread keeps for shape type S, at the kernel's kWgradThreads threads: every size
// known at compile time (FixedShape), just as many as its weights need (conv1's 60: one, with
// threads sharing it; conv2's 660: three), so the unrolled per-thread arrays stay small (with
// 32: 227 registers a thread, one block an SM); kWgradPerThread for run-time shapes. The slots
// dropped were never used by these shapes: the same sums, the same bits.
constexpr int kWgradThreads = 256;
template <class S>
struct WgradSlots {
    static constexpr int value = kWgradPerThread;
};
template <int C, int H, int W, int F, int K, int P>
struct WgradSlots<FixedShape<C, H, W, F, K, P>> {
    static constexpr int nwb = F * C * K * K + F;
    static constexpr int need = (nwb + kWgradThreads - 1) / kWgradThreads;
    static constexpr int value = need < kWgradPerThread ? need : kWgradPerThread;
};
// Shared memory: the image (floats), its pooled gradient (floats), split * nwb floats for the
// slices' sums (split > 1), then the argmax (bytes).
struct WgradTiles {
    float *xs, *gs, *red;
    uint8_t* as;
};
template <class S>
SIAMESE_HD WgradTiles wgrad_tiles(const S& s, float* sm, int split) {
    const int img = s.C * s.H * s.W, pooled = s.F * s.Hp * s.Wp;
    WgradTiles t;
    t.xs = sm;
    t.gs = sm + img;
    t.red = t.gs + pooled;
    t.as = reinterpret_cast<uint8_t*>(t.red + (split > 1 ? split * wgrad_params(s) : 0));
    return t;
}
// Phase 1 (per image i): the input x, the pooled gradient (masked when ymask is set) and argmax.
template <class S, class X>
SIAMESE_HD void tiled_wgrad_stage(const S& s, int i, X x, const float* geff, const float* ymask, float scale,
                                  const uint8_t* argmax, const WgradTiles& t, int tid, int nt) {
    const int img = s.C * s.H * s.W, pooled = s.F * s.Hp * s.Wp;
    for (int k = tid; k < img; k += nt) t.xs[k] = x[k];
    for (int k = tid; k < pooled; k += nt) {
        t.gs[k] = pooled_grad(geff, ymask, scale, size_t(i) * pooled + k);
        t.as[k] = argmax[size_t(i) * pooled + k];
    }
}
// Phase 2 (per image): this thread's weights' terms added to acc (WgradSlots<S> of them; nt must
// be kWgradThreads for a FixedShape, whose slots are counted for that many threads).
template <class S>
SIAMESE_HD void tiled_wgrad_accumulate(const S& s, const WgradTiles& t, int split, float* acc, int tid, int nt) {
    const int nwb = wgrad_params(s), slice = split > 1 ? tid / nwb : 0;
    SIAMESE_UNROLL
    for (int q = 0; q < WgradSlots<S>::value; ++q) {
        const int j = split > 1 ? tid % nwb : tid + q * nt;
        if ((split > 1 && (q > 0 || slice >= split)) || j >= nwb) break;
        acc[q] = wgrad_terms(s, j, t.gs, nullptr, 1.0f, t.as, t.xs, slice, split, acc[q]);
    }
}
// Phase 3: the block's partial sums into dst (split 1), or each slice's sum into t.red (split > 1).
template <class S>
SIAMESE_HD void tiled_wgrad_write(const S& s, const WgradTiles& t, int split, const float* acc, float* dst, int tid,
                                  int nt) {
    const int nwb = wgrad_params(s);
    if (split == 1) {
        SIAMESE_UNROLL
        for (int q = 0; q < WgradSlots<S>::value; ++q) {
            const int j = tid + q * nt;
            if (j < nwb) dst[j] = acc[q];
        }
        return;
    }
    const int slice = tid / nwb;
    if (slice < split) t.red[slice * nwb + tid % nwb] = acc[0];
}
// Phase 4 (split > 1 only): the slices' sums added in slice order into dst.
template <class S>
SIAMESE_HD void tiled_wgrad_sum_slices(const S& s, const WgradTiles& t, int split, float* dst, int tid, int nt) {
    const int nwb = wgrad_params(s);
    for (int j = tid; j < nwb; j += nt) {
        float sum = 0.0f;
        for (int q = 0; q < split; ++q) sum += t.red[q * nwb + j];
        dst[j] = sum;
    }
}

}  // namespace siamese::cuda
