// The CPU reference of the dense layers (CUDA twin: cuda/dense.cu, same names and argument
// order), templated on the scalar type (float for training, double for the gradient checks).
#pragma once
#include <algorithm>
#include <cstddef>

#include "cpu/madd.hpp"

#include "siamese/rules.hpp"

namespace siamese {

// Outputs o and o+1 of rows r = 0..3 (X rows I apart, Y rows O apart): eight sums over i, each
// vectorized exactly as dense_forward's one-row loop (the same omp simd reduction: the same bits,
// tests/test_fast_paths.cpp), with eight accumulator chains in flight instead of one (a single
// chain waits on the FMA latency every step) and each x and w vector loaded once for several.
template <class T>
inline void dense_forward_4x2(T* y, int O, const T* x, int I, const T* w, const T* b, bool relu) {
    const T *x0 = x, *x1 = x + I, *x2 = x + 2 * size_t(I), *x3 = x + 3 * size_t(I), *w0 = w, *w1 = w + I;
    T a0 = 0, a1 = 0, a2 = 0, a3 = 0, c0 = 0, c1 = 0, c2 = 0, c3 = 0;
#pragma omp simd reduction(+ : a0, a1, a2, a3, c0, c1, c2, c3)
    for (int i = 0; i < I; ++i) {
        a0 = madd(x0[i], w0[i], a0);
        a1 = madd(x1[i], w0[i], a1);
        a2 = madd(x2[i], w0[i], a2);
        a3 = madd(x3[i], w0[i], a3);
        c0 = madd(x0[i], w1[i], c0);
        c1 = madd(x1[i], w1[i], c1);
        c2 = madd(x2[i], w1[i], c2);
        c3 = madd(x3[i], w1[i], c3);
    }
    const T s[2][4] = {{a0, a1, a2, a3}, {c0, c1, c2, c3}};
    for (int j = 0; j < 2; ++j)
        for (int r = 0; r < 4; ++r) {
            const T v = s[j][r] + b[j];
            y[size_t(r) * O + j] = relu ? siamese::relu(v) : v;
        }
}

// Outputs o .. o+3 of rows r = 0..3: sixteen sums in one loop, each the same omp simd reduction
// as dense_forward's one-row loop (the same bits): 8 loads for 16 FMAs where dense_forward_4x2
// makes 6 for 8.
template <class T>
inline void dense_forward_4x4(T* y, int O, const T* x, int I, const T* w, const T* b, bool relu) {
    const T *x0 = x, *x1 = x + I, *x2 = x + 2 * size_t(I), *x3 = x + 3 * size_t(I);
    const T *w0 = w, *w1 = w + I, *w2 = w + 2 * size_t(I), *w3 = w + 3 * size_t(I);
    T a00 = 0, a01 = 0, a02 = 0, a03 = 0, a10 = 0, a11 = 0, a12 = 0, a13 = 0;
    T a20 = 0, a21 = 0, a22 = 0, a23 = 0, a30 = 0, a31 = 0, a32 = 0, a33 = 0;
#pragma omp simd reduction(+ : a00, a01, a02, a03, a10, a11, a12, a13, a20, a21, a22, a23, a30, a31, a32, a33)
    for (int i = 0; i < I; ++i) {
        const T u0 = x0[i], u1 = x1[i], u2 = x2[i], u3 = x3[i];
        const T v0 = w0[i], v1 = w1[i], v2 = w2[i], v3 = w3[i];
        a00 = madd(u0, v0, a00), a01 = madd(u0, v1, a01), a02 = madd(u0, v2, a02), a03 = madd(u0, v3, a03);
        a10 = madd(u1, v0, a10), a11 = madd(u1, v1, a11), a12 = madd(u1, v2, a12), a13 = madd(u1, v3, a13);
        a20 = madd(u2, v0, a20), a21 = madd(u2, v1, a21), a22 = madd(u2, v2, a22), a23 = madd(u2, v3, a23);
        a30 = madd(u3, v0, a30), a31 = madd(u3, v1, a31), a32 = madd(u3, v2, a32), a33 = madd(u3, v3, a33);
    }
    const T s[4][4] = {{a00, a01, a02, a03}, {a10, a11, a12, a13}, {a20, a21, a22, a23}, {a30, a31, a32, a33}};
    for (int r = 0; r < 4; ++r)
        for (int j = 0; j < 4; ++j) {
            const T v = s[r][j] + b[j];
            y[size_t(r) * O + j] = relu ? siamese::relu(v) : v;
        }
}

// Y (N,O) = relu?(X (N,I) . W(O,I)^T + b). Rows in blocks of 4 so each weight row is read once
// per block; one omp simd reduction per (row, output) (the readable form: blocked false), or
// four outputs of a full block of four rows in one loop (dense_forward_4x4), two where fewer
// than four are left (dense_forward_4x2): the same bits. The blocks go by chunks of
// kDenseRowChunk rows x kDenseOutChunk outputs, so that a chunk's rows of X and of W stay in L2
// while every block of the chunk reads them (the strong recipe's W, 3.9 MB, was read from L3
// once per block of four rows). Each output is one block's, so the bits do not depend on the
// order of the blocks or on the thread count.
constexpr int kDenseRowChunk = 32, kDenseOutChunk = 32;

// Rows [n_begin, n_end) x outputs [o_begin, o_end) of dense_forward_impl.
template <class T>
void dense_forward_chunk(T* Y, const T* X, const T* Wt, const T* b, int I, int O, bool relu, bool blocked, int n_begin,
                         int n_end, int o_begin, int o_end) {
    for (int n0 = n_begin; n0 < n_end; n0 += 4) {
        const int nb = std::min(4, n_end - n0);
        for (int o = o_begin; o < o_end; ++o) {
            const T* w = Wt + size_t(o) * I;
            if (blocked && nb == 4 && o + 3 < o_end) {
                dense_forward_4x4(Y + size_t(n0) * O + o, O, X + size_t(n0) * I, I, w, b + o, relu);
                o += 3;
                continue;
            }
            if (blocked && nb == 4 && o + 1 < o_end) {
                dense_forward_4x2(Y + size_t(n0) * O + o, O, X + size_t(n0) * I, I, w, b + o, relu);
                ++o;
                continue;
            }
            T s[4] = {0, 0, 0, 0};
            for (int r = 0; r < nb; ++r) {
                const T* x = X + size_t(n0 + r) * I;
                T acc = 0;
#pragma omp simd reduction(+ : acc)
                for (int i = 0; i < I; ++i) acc = madd(x[i], w[i], acc);
                s[r] = acc;
            }
            for (int r = 0; r < nb; ++r) {
                const T v = s[r] + b[o];
                Y[size_t(n0 + r) * O + o] = relu ? siamese::relu(v) : v;
            }
        }
    }
}

template <class T>
void dense_forward_impl(T* Y, const T* X, const T* Wt, const T* b, int N, int I, int O, bool relu, bool blocked) {
    const int row_chunks = (N + kDenseRowChunk - 1) / kDenseRowChunk, out_chunks = (O + kDenseOutChunk - 1) / kDenseOutChunk;
#pragma omp parallel for schedule(static)
    for (int t = 0; t < row_chunks * out_chunks; ++t) {
        const int n_begin = (t / out_chunks) * kDenseRowChunk, o_begin = (t % out_chunks) * kDenseOutChunk;
        dense_forward_chunk(Y, X, Wt, b, I, O, relu, blocked, n_begin, std::min(N, n_begin + kDenseRowChunk), o_begin,
                            std::min(O, o_begin + kDenseOutChunk));
    }
}

template <class T>
void dense_forward(T* Y, const T* X, const T* Wt, const T* b, int N, int I, int O, bool relu) {
    dense_forward_impl(Y, X, Wt, b, N, I, O, relu, true);
}
template <class T>
void dense_forward_plain(T* Y, const T* X, const T* Wt, const T* b, int N, int I, int O, bool relu) {
    dense_forward_impl(Y, X, Wt, b, N, I, O, relu, false);
}

// dX (N,I) = dY . W (skipped when dX is null); dW (O,I) = dY^T . X and db (O) = sum_n dY,
// both OVERWRITTEN. The readable form; dense_backward computes exactly this, blocked. Every sum
// runs in a fixed order (deterministic); zero gradients (most rows after a ReLU) are skipped.
template <class T>
void dense_backward_plain(T* dX, T* dW, T* db, const T* dY, const T* X, const T* Wt, int N, int I, int O) {
    if (dX) {
#pragma omp parallel for schedule(static)
        for (int n = 0; n < N; ++n) {
            T* dx = dX + size_t(n) * I;
            std::fill(dx, dx + I, T(0));
            for (int o = 0; o < O; ++o) {
                const T g = dY[size_t(n) * O + o];
                if (g == T(0)) continue;
                const T* w = Wt + size_t(o) * I;
#pragma omp simd
                for (int i = 0; i < I; ++i) dx[i] = madd(g, w[i], dx[i]);
            }
        }
    }
#pragma omp parallel for schedule(static)
    for (int o = 0; o < O; ++o) {
        T* dw = dW + size_t(o) * I;
        std::fill(dw, dw + I, T(0));
        T sb = 0;
        for (int n = 0; n < N; ++n) {
            const T g = dY[size_t(n) * O + o];
            sb += g;
            if (g == T(0)) continue;
            const T* x = X + size_t(n) * I;
#pragma omp simd
            for (int i = 0; i < I; ++i) dw[i] = madd(g, x[i], dw[i]);
        }
        db[o] = sb;
    }
}

// out[r][v] = sum over k of a[r*a_row + k*a_k] * b[k*b_k + v], k in order: the plain loops'
// chain for RB rows x IC columns, held in registers (a is dY or its transpose, b is W or X).
// No branch on zero coefficients (half of them, at random: the mispredictions cost more than
// the work): for finite b, fma(0, b, acc) is acc exactly (acc is never -0: it starts at +0 and
// an exact zero sum rounds to +0), so the bits are the plain loops'. A non-finite b makes the
// step non-finite either way, which the divergence check reports.
template <int RB, int IC, class T>
inline void dense_grad_tile(T* out, size_t out_stride, const T* a, size_t a_row, size_t a_k, const T* b, size_t b_k,
                            int K) {
    T acc[RB][IC];
    for (int r = 0; r < RB; ++r)
#pragma omp simd
        for (int v = 0; v < IC; ++v) acc[r][v] = T(0);
    for (int k = 0; k < K; ++k) {
        const T* bk = b + size_t(k) * b_k;
#pragma GCC unroll 8
        for (int r = 0; r < RB; ++r) {
            const T g = a[r * a_row + size_t(k) * a_k];
#pragma omp simd
            for (int v = 0; v < IC; ++v) acc[r][v] = madd(g, bk[v], acc[r][v]);
        }
    }
    for (int r = 0; r < RB; ++r)
#pragma omp simd
        for (int v = 0; v < IC; ++v) out[r * out_stride + v] = acc[r][v];
}

// A tile of the products below: 8 rows x 3 vectors, 24 accumulators of the 32 vector registers
// (11 loads for 24 FMAs a step; 4 x 4 made 8 for 16). On the Xeon, one thread, batch 256:
// dense1's backward 2.0-2.2 -> 1.3-1.4 ms with the tile order below (docs/cpu-speed.md).
constexpr int kDenseTileRows = 8, kDenseTileVectors = 3;

// Rows r .. r+RB-1, columns [c, c_end) of such a product: one kDenseTileVectors-vector tile,
// then 1-vector tiles, then single columns.
template <int RB, class T>
void dense_grad_rows(T* out, const T* a, size_t a_row, size_t a_k, const T* b, size_t b_k, int r, int c, int c_end, int C,
                     int K) {
    constexpr int V = 64 / sizeof(T), IC = kDenseTileVectors * V;
    T* o = out + size_t(r) * C;
    const T* ar = a + r * a_row;
    if (c + IC <= c_end) {
        dense_grad_tile<RB, IC>(o + c, C, ar, a_row, a_k, b + c, b_k, K);
        c += IC;
    }
    for (; c + V <= c_end; c += V) dense_grad_tile<RB, V>(o + c, C, ar, a_row, a_k, b + c, b_k, K);
    for (; c < c_end; ++c) dense_grad_tile<RB, 1>(o + c, C, ar, a_row, a_k, b + c, b_k, K);
}

// Rows [0, R) x columns [0, C) of such a product, in tiles of kDenseTileRows rows x
// kDenseTileVectors vectors (narrower at the edges), in parallel: each output is one tile's, so
// any thread count gives the same bits. Consecutive tiles share their columns, so the column
// block of b (W or X) they all read stays in L1.
template <class T>
void dense_grad(T* out, const T* a, size_t a_row, size_t a_k, const T* b, size_t b_k, int R, int C, int K) {
    constexpr int RB = kDenseTileRows, IC = kDenseTileVectors * (64 / sizeof(T));
    const int rb = (R + RB - 1) / RB, cb = (C + IC - 1) / IC;
#pragma omp parallel for schedule(static)
    for (int t = 0; t < rb * cb; ++t) {
        const int r0 = (t % rb) * RB, c0 = (t / rb) * IC, c_end = std::min(c0 + IC, C);
        if (r0 + RB <= R)
            dense_grad_rows<RB>(out, a, a_row, a_k, b, b_k, r0, c0, c_end, C, K);
        else
            for (int r = r0; r < R; ++r) dense_grad_rows<1>(out, a, a_row, a_k, b, b_k, r, c0, c_end, C, K);
    }
}

// db (O) = sum_n dY, each column summed over n in order (dense_backward_plain's sums).
template <class T>
void dense_bias_grad(T* db, const T* dY, int N, int O) {
#pragma omp parallel for schedule(static)
    for (int o = 0; o < O; ++o) {
        T sb = 0;
        for (int n = 0; n < N; ++n) sb += dY[size_t(n) * O + o];
        db[o] = sb;
    }
}

// dense_backward_plain's result (the same bits), with the sums kept in registers: dX = dY . W
// over o, dW = dY^T . X over n, each in the plain loops' order. db is skipped when null.
template <class T>
void dense_backward(T* dX, T* dW, T* db, const T* dY, const T* X, const T* Wt, int N, int I, int O) {
    if (dX) dense_grad(dX, dY, size_t(O), size_t(1), Wt, size_t(I), N, I, O);
    dense_grad(dW, dY, size_t(1), size_t(O), X, size_t(I), O, I, N);
    if (db) dense_bias_grad(db, dY, N, O);
}

}  // namespace siamese
