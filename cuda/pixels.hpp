// The images the first conv layer (and the augment, gather and mirror kernels) read, as a type
// the kernels are templated on: FP32 pixels, or the FP16 bank of --half-bank (EngineOptions::
// half_bank) widened to float as each pixel is loaded. Both index and offset like the float
// pointer they replace, so the kernels' code (and the phases in conv_phases.hpp) reads either;
// the widening is exact, so a half bank gives the bits of an FP32 bank holding the same values.
// Loads go through the read-only path (what `const float* __restrict__` gave the kernels):
// these images are never written while a kernel reads them.
// Host-and-device (no CUDA header): the CPU suite runs the phases on both types.
#pragma once
#include <cstddef>
#include <cstdint>

#include "siamese/half.hpp"

namespace siamese::cuda {

template <class T>
SIAMESE_HD T load_read_only(const T* p) {
#ifdef __CUDA_ARCH__
    return __ldg(p);
#else
    return *p;
#endif
}

struct FloatPixels {
    const float* p = nullptr;
    SIAMESE_HD float operator[](size_t k) const { return load_read_only(p + k); }
    SIAMESE_HD FloatPixels operator+(size_t k) const { return {p + k}; }
};

struct HalfPixels {
    const uint16_t* p = nullptr;
    SIAMESE_HD float operator[](size_t k) const { return half_to_float(load_read_only(p + k)); }
    SIAMESE_HD HalfPixels operator+(size_t k) const { return {p + k}; }
};

// A launcher's input images: FP32 (f32) or the FP16 bank (f16), one of the two set (or neither:
// no images).
struct ImageIn {
    const float* f32 = nullptr;
    const uint16_t* f16 = nullptr;
    ImageIn(const float* p = nullptr) : f32(p) {}  // implicit: a float pointer is FP32 images
    static ImageIn half(const uint16_t* p) {
        ImageIn i;
        i.f16 = p;
        return i;
    }
    bool is_half() const { return f16 != nullptr; }
    // The images from element `elems` on.
    ImageIn offset(size_t elems) const {
        ImageIn i = *this;
        if (f16) i.f16 += elems;
        if (f32) i.f32 += elems;
        return i;
    }
    // f(FloatPixels) or f(HalfPixels): the kernel instantiated for the bank's type.
    template <class F>
    void visit(F&& f) const {
        if (f16)
            f(HalfPixels{f16});
        else
            f(FloatPixels{f32});
    }
};

}  // namespace siamese::cuda
