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
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "cpu/avx512.hpp"
#include "cpu/dropout.hpp"
#include "cpu/madd.hpp"
#include "siamese/network.hpp"
#include "siamese/rules.hpp"

namespace siamese {

// Number of conv-output positions touched: the last row stops at Wo, so reads stay inside input.
inline int conv_span(const ConvShape& s) { return (s.Ho - 1) * s.W + s.Wo; }
// Leading zero pad of the conv-gradient buffer used by conv_backward_input's gather form.
inline int conv_grad_pad(const ConvShape& s) { return (s.K - 1) * s.W + (s.K - 1); }
// Floats in the conv-gradient buffer: pad + H*W (zero beyond the span too).
inline int conv_grad_elems(const ConvShape& s) { return conv_grad_pad(s) + s.H * s.W; }

// out (F, Ho, W-stride) = conv(in, w) + b. in (C,H,W), w (F,C,K,K), b (F). The readable form:
// one tap at a time, an axpy over the whole span. conv_forward computes exactly this, blocked.
template <class T>
void conv_forward_plain(T* out, const T* in, const T* w, const T* b, const ConvShape& s) {
    const int span = conv_span(s), K = s.K, W = s.W;
    for (int f = 0; f < s.F; ++f) {
        T* o = out + size_t(f) * s.Ho * W;
        for (int p = 0; p < span; ++p) o[p] = b[f];
        for (int c = 0; c < s.C; ++c) {
            const T* x = in + size_t(c) * s.H * W;
            const T* wk = w + (size_t(f) * s.C + c) * K * K;
            for (int ky = 0; ky < K; ++ky)
                for (int kx = 0; kx < K; ++kx) {
                    const T wv = wk[ky * K + kx];
                    const T* xs = x + ky * W + kx;
#pragma omp simd
                    for (int p = 0; p < span; ++p) o[p] = madd(wv, xs[p], o[p]);
                }
        }
    }
}

// FB filters x V positions from p0 on, accumulated in registers over every (c, ky, kx) in the
// plain loop's order, so each output sees the same chain of roundings. Filter f0+fb's value at
// position p0+v goes to out[fb * fstride + v].
template <int FB, int V, class T>
inline void conv_forward_tile(T* out, size_t fstride, const T* in, const T* w, const T* b, const ConvShape& s, int f0,
                              int p0) {
    T acc[FB][V];
    for (int fb = 0; fb < FB; ++fb)
#pragma omp simd
        for (int v = 0; v < V; ++v) acc[fb][v] = b[f0 + fb];
    const int K = s.K, W = s.W;
    for (int c = 0; c < s.C; ++c) {
        const T* x = in + size_t(c) * s.H * W + p0;
        for (int ky = 0; ky < K; ++ky)
            for (int kx = 0; kx < K; ++kx) {
                const T* xs = x + ky * W + kx;
#pragma GCC unroll 16
                for (int fb = 0; fb < FB; ++fb) {
                    const T wv = w[((size_t(f0 + fb) * s.C + c) * K + ky) * K + kx];
#pragma omp simd
                    for (int v = 0; v < V; ++v) acc[fb][v] = madd(wv, xs[v], acc[fb][v]);
                }
            }
    }
    for (int fb = 0; fb < FB; ++fb)
#pragma omp simd
        for (int v = 0; v < V; ++v) out[fb * fstride + v] = acc[fb][v];
}

// Vectors of positions a register tile of `rows` filters (or channels) spans: 24 accumulators
// of the 32 vector registers for 6 or 8 rows (more spill).
constexpr int tile_vectors(int rows) { return rows >= 8 ? 3 : 4; }

// Positions [p_begin, p_end) of every filter; filter f's position p goes to
// out[f * fstride + p - p_begin]. Tiles of FB filters x tile_vectors(FB) vectors: each tap's
// input vectors are loaded once for FB filters and each weight once for several vectors (one
// vector a tile loaded a weight per FMA: the loop was load-bound). Then single vectors, then
// halving widths.
template <int FB, class T>
void conv_forward_range(T* out, size_t fstride, const T* in, const T* w, const T* b, const ConvShape& s, int p_begin,
                        int p_end) {
    constexpr int V = 64 / sizeof(T);  // one AVX-512 register of T (two AVX2 ones)
    constexpr int NV = tile_vectors(FB);
    for (int f0 = 0; f0 < s.F; f0 += FB) {
        T* o = out + f0 * fstride;
        int p0 = p_begin;
        for (; p0 + NV * V <= p_end; p0 += NV * V)
            conv_forward_tile<FB, NV * V>(o + (p0 - p_begin), fstride, in, w, b, s, f0, p0);
        for (; p0 + V <= p_end; p0 += V) conv_forward_tile<FB, V>(o + (p0 - p_begin), fstride, in, w, b, s, f0, p0);
        // The tail in halving widths: a scalar tile costs as much as a full-width one.
        if constexpr (V >= 16) if (p0 + 8 <= p_end) { conv_forward_tile<FB, 8>(o + (p0 - p_begin), fstride, in, w, b, s, f0, p0); p0 += 8; }
        if (p0 + 4 <= p_end) { conv_forward_tile<FB, 4>(o + (p0 - p_begin), fstride, in, w, b, s, f0, p0); p0 += 4; }
        if (p0 + 2 <= p_end) { conv_forward_tile<FB, 2>(o + (p0 - p_begin), fstride, in, w, b, s, f0, p0); p0 += 2; }
        if (p0 < p_end) conv_forward_tile<FB, 1>(o + (p0 - p_begin), fstride, in, w, b, s, f0, p0);
    }
}

template <class T>
void conv_forward_range(T* out, size_t fstride, const T* in, const T* w, const T* b, const ConvShape& s, int p_begin,
                        int p_end) {
    if (s.F % 6 == 0) conv_forward_range<6>(out, fstride, in, w, b, s, p_begin, p_end);
    else if (s.F % 8 == 0) conv_forward_range<8>(out, fstride, in, w, b, s, p_begin, p_end);
    else if (s.F % 4 == 0) conv_forward_range<4>(out, fstride, in, w, b, s, p_begin, p_end);
    else conv_forward_range<1>(out, fstride, in, w, b, s, p_begin, p_end);
}

// conv_forward_plain's result (the same bits), 2-3x faster: several filters' outputs are kept in
// registers while each input vector is loaded once for all of them (docs/cpu-speed.md;
// tests/test_fast_paths.cpp checks the bits).
template <class T>
void conv_forward(T* out, const T* in, const T* w, const T* b, const ConvShape& s) {
    conv_forward_range(out, size_t(s.Ho) * s.W, in, w, b, s, 0, conv_span(s));
}

// act (F,Hp,Wp) = relu(maxpool(conv)); argmax per window. ReLU commutes with max, so the
// gradient flows to the argmax position only where act > 0. The readable form, any P.
// One P x P window whose top-left is base (rows W apart): relu(max) into act, argmax into arg.
template <class T>
inline void relu_maxpool_window(T& act, uint8_t& arg, const T* base, int W, int P) {
    T best = base[0];
    int at = 0;
    for (int dy = 0; dy < P; ++dy)
        for (int dx = 0; dx < P; ++dx)
            if (pool_takes(base[dy * W + dx], best)) {
                best = base[dy * W + dx];
                at = dy * P + dx;
            }
    act = relu(best);
    arg = uint8_t(at);
}

template <class T>
void relu_maxpool_forward_plain(T* act, uint8_t* argmax, const T* conv, const ConvShape& s) {
    for (int f = 0; f < s.F; ++f)
        for (int py = 0; py < s.Hp; ++py)
            for (int px = 0; px < s.Wp; ++px) {
                const size_t i = (size_t(f) * s.Hp + py) * s.Wp + px;
                relu_maxpool_window(act[i], argmax[i], conv + (size_t(f) * s.Ho + py * s.P) * s.W + px * s.P, s.W, s.P);
            }
}

// relu_maxpool_window's scan of one 2x2 window (v0 v1 / v2 v3) as selects: the first maximum
// and its position, NaN taken (pool_takes).
template <class T>
inline T pool2_select(T v0, T v1, T v2, T v3, int& arg) {
    T best = v0;
    arg = 0;
    bool t = pool_takes(v1, best);
    best = t ? v1 : best;
    arg = t ? 1 : arg;
    t = pool_takes(v2, best);
    best = t ? v2 : best;
    arg = t ? 2 : arg;
    t = pool_takes(v3, best);
    best = t ? v3 : best;
    arg = t ? 3 : arg;
    return best;
}

// One row of 2x2 windows: rows r0, r1 of the conv output into act/argmax [0, Wp). The window
// scan of the plain loop written as selects over chunks of 16 windows copied out first: a
// fixed trip count, so the whole chunk is vector code (a row of 22 windows otherwise ran
// mostly in the scalar remainder, with branches: 3.6x slower on the ORL block).
template <class T>
inline void relu_maxpool2_row(T* a, uint8_t* g, const T* r0, const T* r1, int Wp) {
    constexpr int C = 16;
    for (int x0 = 0; x0 < Wp; x0 += C) {
        const int m = std::min(C, Wp - x0);
        alignas(64) T q0[2 * C], q1[2 * C], best_of[C];
        alignas(64) uint8_t arg_of[C];
        std::fill(std::copy(r0 + 2 * x0, r0 + 2 * (x0 + m), q0), q0 + 2 * C, T(0));
        std::fill(std::copy(r1 + 2 * x0, r1 + 2 * (x0 + m), q1), q1 + 2 * C, T(0));
#pragma omp simd
        for (int px = 0; px < C; ++px) {
            int arg;
            best_of[px] = relu(pool2_select(q0[2 * px], q0[2 * px + 1], q1[2 * px], q1[2 * px + 1], arg));
            arg_of[px] = uint8_t(arg);
        }
        std::copy(best_of, best_of + m, a + x0);
        std::copy(arg_of, arg_of + m, g + x0);
    }
}

// Floats conv_relu_maxpool_forward's pool may read past a band's last row (a chunk of 16
// windows read whole in relu_maxpool2_row_padded).
constexpr int kPoolOverread = 32;

// relu_maxpool2_row's result (the same selects, the same bits) for rows that may be read up to
// kPoolOverread floats past the row's last window: each chunk of 16 windows is read in place,
// whole, and only its m windows stored, so a chunk is one vector loop with no copies (the
// copies in and out were half of relu_maxpool2_row's time). The windows past m read values of
// the next rows or the padding and are never stored.
template <class T>
inline void relu_maxpool2_row_padded(T* a, uint8_t* g, const T* r0, const T* r1, int Wp) {
    constexpr int C = 16;
    for (int x0 = 0; x0 < Wp; x0 += C) {
        const int m = std::min(C, Wp - x0);
        const T *q0 = r0 + 2 * x0, *q1 = r1 + 2 * x0;
        T* ax = a + x0;
        uint8_t* gx = g + x0;
#pragma omp simd
        for (int px = 0; px < C; ++px) {
            int arg;
            const T best = pool2_select(q0[2 * px], q0[2 * px + 1], q1[2 * px], q1[2 * px + 1], arg);
            if (px < m) {
                ax[px] = relu(best);
                gx[px] = uint8_t(arg);
            }
        }
    }
}

#if SIAMESE_AVX512
// relu_maxpool2_row_padded's result for float, written for AVX-512 (both CI machine kinds have
// it): a chunk of 16 windows is four loads, four permutes (even and odd columns of both rows),
// pool2_select's three steps as compares and masked moves, and two masked stores. GCC's
// vectorization of the portable loop split each chunk into four 128-bit quarters with a branch
// per quarter; this is 3.7x faster on the ORL block (docs/cpu-speed.md). The same selects on
// the same values, so the same bits (tests/test_fast_paths.cpp checks NaN and ties).
inline void relu_maxpool2_row_avx512(float* a, uint8_t* g, const float* r0, const float* r1, int Wp) {
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    for (int x0 = 0; x0 < Wp; x0 += 16) {
        const float *q0 = r0 + 2 * x0, *q1 = r1 + 2 * x0;
        const __m512 a0 = _mm512_loadu_ps(q0), a1 = _mm512_loadu_ps(q0 + 16);
        const __m512 b0 = _mm512_loadu_ps(q1), b1 = _mm512_loadu_ps(q1 + 16);
        const __m512 v[4] = {_mm512_permutex2var_ps(a0, even, a1), _mm512_permutex2var_ps(a0, odd, a1),
                             _mm512_permutex2var_ps(b0, even, b1), _mm512_permutex2var_ps(b0, odd, b1)};
        __m512 best = v[0];
        __m512i arg = _mm512_setzero_si512();
        for (int j = 1; j < 4; ++j) {
            // pool_takes: v > best, or v is NaN.
            const __mmask16 t = _mm512_cmp_ps_mask(v[j], best, _CMP_GT_OQ) | _mm512_cmp_ps_mask(v[j], v[j], _CMP_UNORD_Q);
            best = _mm512_mask_mov_ps(best, t, v[j]);
            arg = _mm512_mask_mov_epi32(arg, t, _mm512_set1_epi32(j));
        }
        // relu: v < 0 ? 0 : v (NaN stays).
        best = _mm512_mask_mov_ps(best, _mm512_cmp_ps_mask(best, _mm512_setzero_ps(), _CMP_LT_OQ), _mm512_setzero_ps());
        const __mmask16 k = __mmask16((1u << std::min(16, Wp - x0)) - 1u);
        _mm512_mask_storeu_ps(a + x0, k, best);
        _mm512_mask_cvtepi32_storeu_epi8(g + x0, k, arg);
    }
}
#endif

// The pool row conv_relu_maxpool_forward runs: the AVX-512 form for float where the target has
// it, else the portable loop. Both read up to kPoolOverread floats past the row's last window.
template <class T>
inline void relu_maxpool2_row_fast(T* a, uint8_t* g, const T* r0, const T* r1, int Wp) {
#if SIAMESE_AVX512
    if constexpr (std::is_same_v<T, float>) return relu_maxpool2_row_avx512(a, g, r0, r1, Wp);
#endif
    relu_maxpool2_row_padded(a, g, r0, r1, Wp);
}

// The plain loop's result; P = 2 (the recipe's) by relu_maxpool2_row.
template <class T>
void relu_maxpool_forward(T* act, uint8_t* argmax, const T* conv, const ConvShape& s) {
    if (s.P != 2) return relu_maxpool_forward_plain(act, argmax, conv, s);
    for (int f = 0; f < s.F; ++f)
        for (int py = 0; py < s.Hp; ++py) {
            const T* r0 = conv + (size_t(f) * s.Ho + py * 2) * s.W;
            const size_t i = (size_t(f) * s.Hp + py) * s.Wp;
            relu_maxpool2_row(act + i, argmax + i, r0, r0 + s.W, s.Wp);
        }
}

// Pool rows per band in conv_relu_maxpool_forward: 6 divides the reference recipe's second
// block (12 pool rows) and leaves the first (27) one short band; a band's scratch stays in L1
// (13 KB for either block). 4 gave more and shorter bands, more of them in narrow tail tiles.
constexpr int kBandRows = 6;

// conv_forward then relu_maxpool_forward, one band of kBandRows x P conv rows at a time: the
// band stays in the L1 cache between the convolution writing it and the pool reading it, where
// the whole conv output (60 KB for the first block) did not. The same bits.
template <class T>
void conv_relu_maxpool_forward(T* act, uint8_t* argmax, const T* in, const T* w, const T* b, const ConvShape& s,
                               T* band) {
    const int P = s.P, W = s.W;
    const size_t fstride = size_t(kBandRows) * P * W;
    for (int py0 = 0; py0 < s.Hp; py0 += kBandRows) {
        const int rows = std::min(kBandRows, s.Hp - py0), p_begin = py0 * P * W;
        conv_forward_range(band, fstride, in, w, b, s, p_begin, p_begin + (rows * P - 1) * W + s.Wo);
        for (int f = 0; f < s.F; ++f)
            for (int py = py0; py < py0 + rows; ++py) {
                const T* r = band + f * fstride + size_t(py - py0) * P * W;
                const size_t i = (size_t(f) * s.Hp + py) * s.Wp;
                if (P == 2)
                    relu_maxpool2_row_fast(act + i, argmax + i, r, r + W, s.Wp);
                else
                    for (int px = 0; px < s.Wp; ++px) relu_maxpool_window(act[i + px], argmax[i + px], r + px * P, W, P);
            }
    }
}

// Floats of conv_pool_forward's scratch: one band of conv rows of every filter, and the floats
// the pool may read past it.
inline size_t conv_band_elems(const ConvShape& s) { return size_t(s.F) * kBandRows * s.P * s.W + kPoolOverread; }

// One whole conv block for one image: conv + bias a band at a time into `band` (scratch,
// conv_band_elems), ReLU + max-pool into act with the argmax, dropout into out with its mask.
// The CPU twin of cuda/conv.cu's conv_pool_forward, which fuses all of it for n images and
// keeps neither act nor mask.
template <class T>
void conv_pool_forward(T* out, uint8_t* argmax, T* act, T* mask, const T* in, const T* w, const T* b, const ConvShape& s,
                       T* band, float rate, uint64_t seed, uint64_t step, uint32_t layer, int image) {
    conv_relu_maxpool_forward(act, argmax, in, w, b, s, band);
    dropout_forward(out, mask, act, s.out_elems(), rate, seed, step, layer, image);
}

// dconv (conv_grad_elems, zeroed here) from d_act: scatter to each window's argmax where act > 0.
// The portable form (relu_maxpool_backward runs the AVX-512 one for float where it can).
template <class T>
void relu_maxpool_backward_portable(T* dconv, const T* d_act, const T* act, const uint8_t* argmax, const ConvShape& s) {
    const int pad = conv_grad_pad(s), P = s.P;
    // The offset of each argmax value (dy*P + dx) within its window, so the loop below has no
    // division by the run-time P (an idiv per unit was most of this function's time).
    int offset[64];
    for (int a = 0; a < P * P; ++a) offset[a] = (a / P) * s.W + a % P;
    for (int f = 0; f < s.F; ++f) {
        T* d = dconv + size_t(f) * conv_grad_elems(s);
        std::fill(d, d + conv_grad_elems(s), T(0));
        for (int py = 0; py < s.Hp; ++py)
            for (int px = 0; px < s.Wp; ++px) {
                const size_t i = (size_t(f) * s.Hp + py) * s.Wp + px;
                // Branch-free: about half the units are active, at random, and a mispredicted
                // branch cost more than the store (an inactive unit stores the 0 already there).
                const T pick[2] = {T(0), d_act[i]};
                d[pad + py * P * s.W + px * P + offset[argmax[i]]] = pick[act[i] > T(0)];
            }
    }
}

#if SIAMESE_AVX512
// relu_maxpool_backward's buffer for float and P = 2, each float of it written once: the pad
// and what lies outside the windows (a row's last columns, the rows past the last window)
// zeroed, and every 2 x 2 window written whole, the gradient at its argmax and zeros around it,
// 16 windows at a time. The portable form fills the buffer (64 KB an ORL image) and then
// scatters one unit at a time. The same values in every float.
inline void relu_maxpool2_backward_avx512(float* dconv, const float* d_act, const float* act, const uint8_t* argmax,
                                          const ConvShape& s) {
    const int pad = conv_grad_pad(s), W = s.W, Wp = s.Wp;
    // Window x of the 16 goes to lanes 2x, 2x + 1 of a row pair: low half from lanes 0-7 of the
    // even and odd columns, high half from lanes 8-15.
    const __m512i lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i hi = _mm512_add_epi32(lo, _mm512_set1_epi32(8));
    const __m512 zero = _mm512_setzero_ps();
    for (int f = 0; f < s.F; ++f) {
        float* d = dconv + size_t(f) * conv_grad_elems(s);
        std::fill(d, d + pad, 0.0f);
        float* rows = d + pad;
        for (int py = 0; py < s.Hp; ++py) {
            float *r0 = rows + size_t(2 * py) * W, *r1 = r0 + W;
            const size_t i0 = (size_t(f) * s.Hp + py) * Wp;
            for (int x0 = 0; x0 < Wp; x0 += 16) {
                const int m = std::min(16, Wp - x0);
                const __mmask16 k = __mmask16((1u << m) - 1u);
                const __m512 a = _mm512_maskz_loadu_ps(k, act + i0 + x0), g = _mm512_maskz_loadu_ps(k, d_act + i0 + x0);
                const __m512i arg = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(k, argmax + i0 + x0));
                // The unit's gradient where act > 0, else 0 (relu_maxpool_backward's pick).
                const __m512 pick = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(a, zero, _CMP_GT_OQ), g);
                __m512 at[4];
                for (int j = 0; j < 4; ++j)
                    at[j] = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(arg, _mm512_set1_epi32(j)), pick);
                // 2m floats of each row: lanes [0, 16) and [16, 32).
                const __mmask16 klo = __mmask16(m >= 8 ? 0xFFFFu : (1u << (2 * m)) - 1u);
                const __mmask16 khi = __mmask16(m <= 8 ? 0u : (1u << (2 * (m - 8))) - 1u);
                _mm512_mask_storeu_ps(r0 + 2 * x0, klo, _mm512_permutex2var_ps(at[0], lo, at[1]));
                _mm512_mask_storeu_ps(r0 + 2 * x0 + 16, khi, _mm512_permutex2var_ps(at[0], hi, at[1]));
                _mm512_mask_storeu_ps(r1 + 2 * x0, klo, _mm512_permutex2var_ps(at[2], lo, at[3]));
                _mm512_mask_storeu_ps(r1 + 2 * x0 + 16, khi, _mm512_permutex2var_ps(at[2], hi, at[3]));
            }
            std::fill(r0 + 2 * Wp, r0 + W, 0.0f);
            std::fill(r1 + 2 * Wp, r1 + W, 0.0f);
        }
        std::fill(rows + size_t(2 * s.Hp) * W, rows + size_t(s.H) * W, 0.0f);
    }
}
#endif

// relu_maxpool_backward_portable's buffer, bit for bit (tests/test_fast_paths.cpp).
template <class T>
void relu_maxpool_backward(T* dconv, const T* d_act, const T* act, const uint8_t* argmax, const ConvShape& s) {
#if SIAMESE_AVX512
    if constexpr (std::is_same_v<T, float>)
        if (s.P == 2) return relu_maxpool2_backward_avx512(dconv, d_act, act, argmax, s);
#endif
    relu_maxpool_backward_portable(dconv, d_act, act, argmax, s);
}

// The nine taps of a 3x3 kernel together: nine independent sums over the span, each vectorized
// exactly as the one-tap loop below is (the same omp simd reduction, so the same lanes and the
// same final reduction: the same bits, tests/test_fast_paths.cpp), but one pass over g instead
// of nine and nine accumulator chains in flight instead of one (a single chain waits on the FMA
// latency every step).
template <class T>
inline void conv_backward_weights_3x3(T* dw, const T* g, const T* x, int W, int span) {
    const T *x0 = x, *x1 = x + W, *x2 = x + 2 * W;
    T a0 = 0, a1 = 0, a2 = 0, a3 = 0, a4 = 0, a5 = 0, a6 = 0, a7 = 0, a8 = 0;
#pragma omp simd reduction(+ : a0, a1, a2, a3, a4, a5, a6, a7, a8)
    for (int p = 0; p < span; ++p) {
        const T gv = g[p];
        a0 = madd(gv, x0[p], a0);
        a1 = madd(gv, x0[p + 1], a1);
        a2 = madd(gv, x0[p + 2], a2);
        a3 = madd(gv, x1[p], a3);
        a4 = madd(gv, x1[p + 1], a4);
        a5 = madd(gv, x1[p + 2], a5);
        a6 = madd(gv, x2[p], a6);
        a7 = madd(gv, x2[p + 1], a7);
        a8 = madd(gv, x2[p + 2], a8);
    }
    dw[0] += a0, dw[1] += a1, dw[2] += a2, dw[3] += a3, dw[4] += a4, dw[5] += a5, dw[6] += a6, dw[7] += a7, dw[8] += a8;
}

// conv_backward_weights_3x3 for two filters at once (dw0 from g0, dw1 from g1): each input
// vector loaded serves both, 11 loads for 18 FMAs where two calls make 20 for 18 (the loop is
// load-bound). Each of the 18 sums is the same omp simd reduction as before: the same bits.
template <class T>
inline void conv_backward_weights_3x3_f2(T* dw0, T* dw1, const T* g0, const T* g1, const T* x, int W, int span) {
    const T *x0 = x, *x1 = x + W, *x2 = x + 2 * W;
    T a0 = 0, a1 = 0, a2 = 0, a3 = 0, a4 = 0, a5 = 0, a6 = 0, a7 = 0, a8 = 0;
    T b0 = 0, b1 = 0, b2 = 0, b3 = 0, b4 = 0, b5 = 0, b6 = 0, b7 = 0, b8 = 0;
#pragma omp simd reduction(+ : a0, a1, a2, a3, a4, a5, a6, a7, a8, b0, b1, b2, b3, b4, b5, b6, b7, b8)
    for (int p = 0; p < span; ++p) {
        const T u = g0[p], v = g1[p];
        const T x00 = x0[p], x01 = x0[p + 1], x02 = x0[p + 2];
        const T x10 = x1[p], x11 = x1[p + 1], x12 = x1[p + 2];
        const T x20 = x2[p], x21 = x2[p + 1], x22 = x2[p + 2];
        a0 = madd(u, x00, a0), b0 = madd(v, x00, b0);
        a1 = madd(u, x01, a1), b1 = madd(v, x01, b1);
        a2 = madd(u, x02, a2), b2 = madd(v, x02, b2);
        a3 = madd(u, x10, a3), b3 = madd(v, x10, b3);
        a4 = madd(u, x11, a4), b4 = madd(v, x11, b4);
        a5 = madd(u, x12, a5), b5 = madd(v, x12, b5);
        a6 = madd(u, x20, a6), b6 = madd(v, x20, b6);
        a7 = madd(u, x21, a7), b7 = madd(v, x21, b7);
        a8 = madd(u, x22, a8), b8 = madd(v, x22, b8);
    }
    dw0[0] += a0, dw0[1] += a1, dw0[2] += a2, dw0[3] += a3, dw0[4] += a4, dw0[5] += a5, dw0[6] += a6, dw0[7] += a7, dw0[8] += a8;
    dw1[0] += b0, dw1[1] += b1, dw1[2] += b2, dw1[3] += b3, dw1[4] += b4, dw1[5] += b5, dw1[6] += b6, dw1[7] += b7, dw1[8] += b8;
}

// dw (F,C,K,K) and db (F) ACCUMULATE this image's contribution. dconv as from relu_maxpool_backward.
// One omp simd reduction per tap (the readable form: blocked_3x3 false), or the nine taps of a
// 3x3 kernel in one loop (conv_backward_weights_3x3: the same bits).
template <class T>
void conv_backward_weights_impl(T* dw, T* db, const T* dconv, const T* in, const ConvShape& s, bool blocked_3x3) {
    const int span = conv_span(s), K = s.K, W = s.W, pad = conv_grad_pad(s);
    const bool pairs = blocked_3x3 && K == 3 && s.F % 2 == 0;
    for (int f = 0; f < s.F; ++f) {
        const T* g = dconv + size_t(f) * conv_grad_elems(s) + pad;
        T sb = 0;
#pragma omp simd reduction(+ : sb)
        for (int p = 0; p < span; ++p) sb += g[p];
        db[f] += sb;
        if (pairs) {
            if (f % 2 == 0) continue;  // filter f-1 and f together, once f-1's bias sum is done
            for (int c = 0; c < s.C; ++c)
                conv_backward_weights_3x3_f2(dw + (size_t(f - 1) * s.C + c) * 9, dw + (size_t(f) * s.C + c) * 9,
                                             g - conv_grad_elems(s), g, in + size_t(c) * s.H * W, W, span);
            continue;
        }
        for (int c = 0; c < s.C; ++c) {
            const T* x = in + size_t(c) * s.H * W;
            if (blocked_3x3 && K == 3) {
                conv_backward_weights_3x3(dw + (size_t(f) * s.C + c) * 9, g, x, W, span);
                continue;
            }
            for (int ky = 0; ky < K; ++ky)
                for (int kx = 0; kx < K; ++kx) {
                    const T* xs = x + ky * W + kx;
                    T acc = 0;
#pragma omp simd reduction(+ : acc)
                    for (int p = 0; p < span; ++p) acc = madd(g[p], xs[p], acc);
                    dw[((size_t(f) * s.C + c) * K + ky) * K + kx] += acc;
                }
        }
    }
}

template <class T>
void conv_backward_weights(T* dw, T* db, const T* dconv, const T* in, const ConvShape& s) {
    conv_backward_weights_impl(dw, db, dconv, in, s, true);
}
template <class T>
void conv_backward_weights_plain(T* dw, T* db, const T* dconv, const T* in, const ConvShape& s) {
    conv_backward_weights_impl(dw, db, dconv, in, s, false);
}

// din (C,H,W) = transposed convolution of dconv, in gather form over the zero-padded buffer.
// The readable form; conv_backward_input computes exactly this, blocked.
template <class T>
void conv_backward_input_plain(T* din, const T* dconv, const T* w, const ConvShape& s) {
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
                    for (int q = 0; q < HW; ++q) d[q] = madd(wv, gs[q], d[q]);
                }
        }
    }
}

// CB input channels x V positions from q0 on, in registers over every (f, ky, kx) in the plain
// loop's order.
template <int CB, int V, class T>
inline void conv_backward_input_tile(T* din, const T* dconv, const T* w, const ConvShape& s, int c0, int q0) {
    T acc[CB][V];
    for (int cb = 0; cb < CB; ++cb)
#pragma omp simd
        for (int v = 0; v < V; ++v) acc[cb][v] = T(0);
    const int K = s.K, W = s.W, pad = conv_grad_pad(s);
    for (int f = 0; f < s.F; ++f) {
        const T* g = dconv + size_t(f) * conv_grad_elems(s) + pad + q0;
        for (int ky = 0; ky < K; ++ky)
            for (int kx = 0; kx < K; ++kx) {
                const T* gs = g - ky * W - kx;
#pragma GCC unroll 16
                for (int cb = 0; cb < CB; ++cb) {
                    const T wv = w[((size_t(f) * s.C + c0 + cb) * K + ky) * K + kx];
#pragma omp simd
                    for (int v = 0; v < V; ++v) acc[cb][v] = madd(wv, gs[v], acc[cb][v]);
                }
            }
    }
    for (int cb = 0; cb < CB; ++cb)
#pragma omp simd
        for (int v = 0; v < V; ++v) din[size_t(c0 + cb) * s.H * W + q0 + v] = acc[cb][v];
}

// Tiles of CB channels x NV vectors, as conv_forward_range's (each gradient vector loaded once
// for CB channels, each weight once for NV vectors), then single vectors and positions.
template <int CB, class T>
void conv_backward_input_blocked(T* din, const T* dconv, const T* w, const ConvShape& s) {
    constexpr int V = 64 / sizeof(T);
    constexpr int NV = tile_vectors(CB);
    const int HW = s.H * s.W;
    for (int c0 = 0; c0 < s.C; c0 += CB) {
        int q0 = 0;
        for (; q0 + NV * V <= HW; q0 += NV * V) conv_backward_input_tile<CB, NV * V>(din, dconv, w, s, c0, q0);
        for (; q0 + V <= HW; q0 += V) conv_backward_input_tile<CB, V>(din, dconv, w, s, c0, q0);
        for (; q0 < HW; ++q0) conv_backward_input_tile<CB, 1>(din, dconv, w, s, c0, q0);
    }
}

// conv_backward_input_plain's result (the same bits), with several channels in registers.
template <class T>
void conv_backward_input(T* din, const T* dconv, const T* w, const ConvShape& s) {
    if (s.C % 8 == 0) conv_backward_input_blocked<8>(din, dconv, w, s);
    else if (s.C % 6 == 0) conv_backward_input_blocked<6>(din, dconv, w, s);
    else if (s.C % 4 == 0) conv_backward_input_blocked<4>(din, dconv, w, s);
    else conv_backward_input_blocked<1>(din, dconv, w, s);
}

}  // namespace siamese
