// The CPU reference of cuda/augment.cu: a batch of augmented views gathered from the image
// bank, pixel by pixel through the shared rule (include/siamese/augment.hpp).
#pragma once
#include <cstddef>
#include <cstdint>

#include "siamese/augment.hpp"

namespace siamese {

// dst (n, H, W): slot i is a view of bank image gather[i], drawn from (seed, step, i).
inline void augment_images(float* dst, const float* bank, const int32_t* gather, int n, int H, int W,
                           const AugmentConfig& c, uint64_t seed, uint64_t step) {
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; ++i) {
        const Warp w = augment_draw(c, seed, step, uint32_t(i), H, W);
        const float* src = bank + size_t(gather[i]) * H * W;
        float* out = dst + size_t(i) * H * W;
        for (int y = 0; y < H; ++y)
            for (int x = 0; x < W; ++x) out[y * W + x] = augment_pixel(src, H, W, w, y, x);
    }
}

}  // namespace siamese
