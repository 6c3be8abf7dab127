// The CPU reference of the dense layers (CUDA twin: cuda/dense.cu, same names and argument
// order), templated on the scalar type (float for training, double for the gradient checks).
#pragma once
#include <algorithm>
#include <cstddef>

#include "siamese/rules.hpp"

namespace siamese {

// Y (N,O) = relu?(X (N,I) . W(O,I)^T + b). Rows in blocks of 4 so each weight row is read once
// per block.
template <class T>
void dense_forward(T* Y, const T* X, const T* Wt, const T* b, int N, int I, int O, bool relu) {
#pragma omp parallel for schedule(static)
    for (int n0 = 0; n0 < N; n0 += 4) {
        const int nb = std::min(4, N - n0);
        for (int o = 0; o < O; ++o) {
            const T* w = Wt + size_t(o) * I;
            T s[4] = {0, 0, 0, 0};
            for (int r = 0; r < nb; ++r) {
                const T* x = X + size_t(n0 + r) * I;
                T acc = 0;
#pragma omp simd reduction(+ : acc)
                for (int i = 0; i < I; ++i) acc += x[i] * w[i];
                s[r] = acc;
            }
            for (int r = 0; r < nb; ++r) {
                const T v = s[r] + b[o];
                Y[size_t(n0 + r) * O + o] = relu ? siamese::relu(v) : v;
            }
        }
    }
}

// dX (N,I) = dY . W (skipped when dX is null); dW (O,I) = dY^T . X and db (O) = sum_n dY,
// both OVERWRITTEN. Parallel over rows; every sum runs in a fixed order (deterministic).
template <class T>
void dense_backward(T* dX, T* dW, T* db, const T* dY, const T* X, const T* Wt, int N, int I, int O) {
    if (dX) {
#pragma omp parallel for schedule(static)
        for (int n = 0; n < N; ++n) {
            T* dx = dX + size_t(n) * I;
            std::fill(dx, dx + I, T(0));
            for (int o = 0; o < O; ++o) {
                const T g = dY[size_t(n) * O + o];
                if (g == T(0)) continue;  // most rows after a ReLU
                const T* w = Wt + size_t(o) * I;
#pragma omp simd
                for (int i = 0; i < I; ++i) dx[i] += g * w[i];
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
            for (int i = 0; i < I; ++i) dw[i] += g * x[i];
        }
        db[o] = sb;
    }
}

}  // namespace siamese
