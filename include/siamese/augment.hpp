// On-the-fly augmentation: a random similarity warp (shift, rotation, scale, horizontal flip)
// with bilinear sampling, then a brightness/contrast jitter, drawn per image slot and step from
// the Philox stream. One __host__ __device__ rule, so the CPU reference (src/cpu/augment.hpp)
// and the CUDA gather-and-warp kernel (cuda/augment.cu) produce the same pixels up to FP32
// rounding. Seeded by (seed, step, slot): a resumed or repeated run sees the same views.
#pragma once
#include <cmath>
#include <cstdint>

#include "siamese/philox.hpp"

namespace siamese {

struct AugmentConfig {
    bool enabled = false;
    float shift = 0.06f;      // max translation, as a fraction of each side (3 px on 56 x 46)
    float rotate = 8.0f;      // max rotation, degrees
    float scale = 0.08f;      // max relative zoom in or out
    bool flip = true;         // mirror left-right with probability 1/2 (faces are near-symmetric)
    float brightness = 0.1f;  // max offset added, in [0,1] pixel units
    float contrast = 0.15f;   // max relative contrast change around mid-grey
    // Random erasing (cutout): a mid-grey rectangle of up to `erase` of each side, centred
    // anywhere in the view, hides part of the face (0: none, the default).
    float erase = 0.0f;
};

// The inverse map of one augmented view: output pixel (x, y) samples the source at
// (m00 u + m01 v + cx + tx, m10 u + m11 v + cy + ty), u = x - cx, v = y - cy (centre cx, cy);
// the sampled value v' = gain (v - 0.5) + 0.5 + bias.
struct Warp {
    float m00, m01, m10, m11, tx, ty, gain, bias;
    float ex0, ex1, ey0, ey1;  // the erased rectangle [ex0, ex1) x [ey0, ey1) (empty: no erasing)
};

constexpr uint32_t kAugmentStreamId = 32;  // Philox layer id (dropout uses 0..31)

SIAMESE_HD float augment_uniform(uint32_t word) { return float(word >> 8) * (1.0f / 16777216.0f) * 2.0f - 1.0f; }

SIAMESE_HD Warp augment_draw(const AugmentConfig& c, uint64_t seed, uint64_t step, uint32_t slot, int H, int W) {
    const Philox4 r0 = dropout_bits(seed, step, kAugmentStreamId, slot, 0);
    const Philox4 r1 = dropout_bits(seed, step, kAugmentStreamId, slot, 1);
    const float angle = augment_uniform(r0.v[0]) * c.rotate * 0.017453292519943295f;
    const float zoom = 1.0f + augment_uniform(r0.v[1]) * c.scale;  // > 1 zooms in
    const float flip = c.flip && (r1.v[2] >> 31) ? -1.0f : 1.0f;
#if defined(__CUDA_ARCH__)
    const float cs = cosf(angle), sn = sinf(angle);
#else
    const float cs = std::cos(angle), sn = std::sin(angle);
#endif
    Warp w;
    // Source = R(angle) S(1/zoom) F(flip) applied to the centred output position.
    w.m00 = cs / zoom * flip;
    w.m01 = -sn / zoom;
    w.m10 = sn / zoom * flip;
    w.m11 = cs / zoom;
    w.tx = augment_uniform(r0.v[2]) * c.shift * float(W);
    w.ty = augment_uniform(r0.v[3]) * c.shift * float(H);
    w.gain = 1.0f + augment_uniform(r1.v[0]) * c.contrast;
    w.bias = augment_uniform(r1.v[1]) * c.brightness;
    w.ex0 = w.ex1 = w.ey0 = w.ey1 = 0.0f;
    if (c.erase > 0.0f) {  // a third draw, so that views without erasing keep their bits
        const Philox4 r2 = dropout_bits(seed, step, kAugmentStreamId, slot, 2);
        const float u01[4] = {0.5f * (augment_uniform(r2.v[0]) + 1.0f), 0.5f * (augment_uniform(r2.v[1]) + 1.0f),
                              0.5f * (augment_uniform(r2.v[2]) + 1.0f), 0.5f * (augment_uniform(r2.v[3]) + 1.0f)};
        const float hw = 0.5f * u01[0] * c.erase * float(W), hh = 0.5f * u01[1] * c.erase * float(H);
        const float x = u01[2] * float(W), y = u01[3] * float(H);
        w.ex0 = x - hw; w.ex1 = x + hw; w.ey0 = y - hh; w.ey1 = y + hh;
    }
    return w;
}

// Output pixel (x, y) of the view `w` of img (H, W): bilinear, edges clamped (the border
// repeats, as faces continue past the crop).
template <class Img>  // a float pointer, or (CUDA) a pixel type that widens the FP16 bank
SIAMESE_HD float augment_pixel(Img img, int H, int W, const Warp& w, int y, int x) {
    const float cx = 0.5f * float(W - 1), cy = 0.5f * float(H - 1);
    const float u = float(x) - cx, v = float(y) - cy;
    float sx = w.m00 * u + w.m01 * v + cx + w.tx;
    float sy = w.m10 * u + w.m11 * v + cy + w.ty;
    sx = sx < 0.0f ? 0.0f : (sx > float(W - 1) ? float(W - 1) : sx);
    sy = sy < 0.0f ? 0.0f : (sy > float(H - 1) ? float(H - 1) : sy);
    const int x0 = int(sx), y0 = int(sy);
    const int x1 = x0 + 1 < W ? x0 + 1 : x0, y1 = y0 + 1 < H ? y0 + 1 : y0;
    const float fx = sx - float(x0), fy = sy - float(y0);
    const float top = img[y0 * W + x0] * (1.0f - fx) + img[y0 * W + x1] * fx;
    const float bot = img[y1 * W + x0] * (1.0f - fx) + img[y1 * W + x1] * fx;
    const float val = top * (1.0f - fy) + bot * fy;
    if (float(x) >= w.ex0 && float(x) < w.ex1 && float(y) >= w.ey0 && float(y) < w.ey1) return 0.5f;
    return w.gain * (val - 0.5f) + 0.5f + w.bias;
}

}  // namespace siamese
