// The CPU reference of dropout and of the ReLU/dropout gradient gate (CUDA twins: the dropout
// fused into cuda/conv.cu's and cuda/dense.cu's forward kernels, and relu_dropout_backward in
// cuda/dense.cu). The mask comes from the shared rule dropout_keep_mask4 (rules.hpp): one
// Philox call per four units, the same stream on both engines.
#pragma once
#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "cpu/avx512.hpp"
#include "siamese/rules.hpp"

namespace siamese {

// Inverted dropout of units [begin, count) of one image slot: y = x * mask, mask = 1/(1-rate)
// for kept units and 0 otherwise (kept for the backward pass). rate 0: the identity. begin is a
// multiple of 4 (a Philox group). The factors of up to 256 groups of four are drawn first, in a
// loop of independent Philox calls that the compiler vectorizes (5x faster than one call per
// group inside the unit loop); the draws are dropout_keep_mask4's.
template <class T>
void dropout_forward_portable(T* y, T* mask, const T* x, int count, float rate, uint64_t seed, uint64_t step,
                              uint32_t layer, int image, int begin = 0) {
    const T keep_scale = dropout_keep_scale<T>(rate);
    constexpr int kGroups = 256;
    alignas(64) T fac[4 * kGroups];
    const uint32_t key0 = dropout_key0(seed, step), key1 = dropout_key1(seed), st = uint32_t(step);
    for (int k0 = begin; k0 < count; k0 += 4 * kGroups) {
        const int n = std::min(4 * kGroups, count - k0), groups = (n + 3) / 4;
        const uint32_t g0 = uint32_t(k0) >> 2;
        if (rate > 0.0f) {
#pragma omp simd
            for (int g = 0; g < groups; ++g) {
                uint32_t w0, w1, w2, w3;
                philox4x32_10(g0 + uint32_t(g), uint32_t(image), layer, st, key0, key1, w0, w1, w2, w3);
                fac[4 * g] = dropout_keep_word(w0, rate) ? keep_scale : T(0);
                fac[4 * g + 1] = dropout_keep_word(w1, rate) ? keep_scale : T(0);
                fac[4 * g + 2] = dropout_keep_word(w2, rate) ? keep_scale : T(0);
                fac[4 * g + 3] = dropout_keep_word(w3, rate) ? keep_scale : T(0);
            }
        } else {
            std::fill(fac, fac + n, keep_scale);
        }
#pragma omp simd
        for (int k = 0; k < n; ++k) {
            mask[k0 + k] = fac[k];
            y[k0 + k] = x[k0 + k] * fac[k];
        }
    }
}

#if SIAMESE_AVX512
// Philox's 32 x 32 -> 64 products of 16 lanes: vpmuludq on the even and the odd lanes. GCC
// vectorized the portable loop's products as zero-extended 64-bit multiplies (vpmullq, three
// micro-ops each on Intel), the bulk of dropout's draw time.
inline void philox_mulhilo16(__m512i a, uint32_t m, __m512i& hi, __m512i& lo) {
    const __m512i mm = _mm512_set1_epi64(int64_t(m));
    const __m512i even = _mm512_mul_epu32(a, mm), odd = _mm512_mul_epu32(_mm512_srli_epi64(a, 32), mm);
    lo = _mm512_mask_blend_epi32(0xAAAA, even, _mm512_slli_epi64(odd, 32));
    hi = _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(even, 32), odd);
}

// dropout_forward_portable's result for float, 64 units (16 Philox calls) a step: the same
// counters, keys and rounds (philox4x32_10), the same keep test (dropout_keep_word), the same
// factors; the four words' keep bits interleaved into unit order with pdep. The units past the
// last whole 64 go through the portable loop.
inline void dropout_forward_avx512(float* y, float* mask, const float* x, int count, float rate, uint64_t seed,
                                   uint64_t step, uint32_t layer, int image) {
    const __m512 vscale = _mm512_set1_ps(dropout_keep_scale<float>(rate)), vrate = _mm512_set1_ps(rate);
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const uint32_t key0 = dropout_key0(seed, step), key1 = dropout_key1(seed);
    const auto keep = [&](__m512i w) {
        const __m512 u = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_srli_epi32(w, 8)), _mm512_set1_ps(1.0f / 16777216.0f));
        return uint64_t(_mm512_cmp_ps_mask(u, vrate, _CMP_GE_OQ));
    };
    int k0 = 0;
    for (; k0 + 64 <= count; k0 += 64) {
        __m512i c0 = _mm512_add_epi32(_mm512_set1_epi32(int(uint32_t(k0) >> 2)), lane);
        __m512i c1 = _mm512_set1_epi32(image), c2 = _mm512_set1_epi32(int(layer)), c3 = _mm512_set1_epi32(int(uint32_t(step)));
        uint32_t k0r = key0, k1r = key1;
        for (int round = 0; round < 10; ++round) {
            __m512i hi0, lo0, hi1, lo1;
            philox_mulhilo16(c0, kPhiloxM0, hi0, lo0);
            philox_mulhilo16(c2, kPhiloxM1, hi1, lo1);
            c0 = _mm512_xor_si512(_mm512_xor_si512(hi1, c1), _mm512_set1_epi32(int(k0r)));
            c2 = _mm512_xor_si512(_mm512_xor_si512(hi0, c3), _mm512_set1_epi32(int(k1r)));
            c1 = lo1;
            c3 = lo0;
            k0r += kPhiloxW0;
            k1r += kPhiloxW1;
        }
        // Bit 4g + j: word j of group g (unit 4g + j) kept.
        const uint64_t bits = _pdep_u64(keep(c0), 0x1111111111111111ull) | _pdep_u64(keep(c1), 0x2222222222222222ull) |
                              _pdep_u64(keep(c2), 0x4444444444444444ull) | _pdep_u64(keep(c3), 0x8888888888888888ull);
        for (int q = 0; q < 4; ++q) {
            const __m512 fac = _mm512_maskz_mov_ps(__mmask16(bits >> (16 * q)), vscale);
            _mm512_storeu_ps(mask + k0 + 16 * q, fac);
            _mm512_storeu_ps(y + k0 + 16 * q, _mm512_mul_ps(_mm512_loadu_ps(x + k0 + 16 * q), fac));
        }
    }
    if (k0 < count) dropout_forward_portable(y, mask, x, count, rate, seed, step, layer, image, k0);
}
#endif

// Inverted dropout of one image slot's `count` units (dropout_forward_portable), AVX-512 for
// float where the target has it (both CI machine kinds): the same bits.
template <class T>
void dropout_forward(T* y, T* mask, const T* x, int count, float rate, uint64_t seed, uint64_t step, uint32_t layer,
                     int image) {
#if SIAMESE_AVX512
    if constexpr (std::is_same_v<T, float>)
        if (rate > 0.0f) return dropout_forward_avx512(y, mask, x, count, rate, seed, step, layer, image);
#endif
    dropout_forward_portable(y, mask, x, count, rate, seed, step, layer, image);
}

// d (count) = gradient through dropout and ReLU: it passes where the unit was kept and active,
// scaled like the forward. mask from dropout_forward, act the ReLU output before dropout.
template <class T>
void relu_dropout_backward(T* d, const T* act, const T* mask, int count) {
    for (int k = 0; k < count; ++k) d[k] *= mask[k] * T(act[k] > T(0));
}

}  // namespace siamese
