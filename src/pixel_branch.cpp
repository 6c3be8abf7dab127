#include "siamese/pixel_branch.hpp"

#include <cmath>
#include <string>

#include "siamese/baselines.hpp"
#include "siamese/common.hpp"

namespace siamese {

PixelBranch fit_pixel_branch(const ImageBank& bank, const std::vector<int>& fit_people, int components, float weight) {
    if (components < 1) throw UsageError("--pixel-branch " + std::to_string(components) + ": needs at least one component");
    const Eigenfaces e = fit_eigenfaces(bank, fit_people, components);
    PixelBranch p;
    p.dims = e.k;
    p.weight = weight;
    p.mean.assign(e.mean.begin(), e.mean.end());
    p.basis.resize(size_t(e.k) * e.D);
    for (int c = 0; c < e.k; ++c) {
        const double inv_sd = 1.0 / std::sqrt(std::max(e.variance[c], 1e-300));
        for (int d = 0; d < e.D; ++d) p.basis[size_t(c) * e.D + d] = float(e.axes[size_t(c) * e.D + d] * inv_sd);
    }
    return p;
}

namespace {

// u (dims) = basis (x - mean) for one image; mirrored reads x left-right reversed. The centred
// image is formed once, not once per component.
void project(const PixelBranch& p, const float* x, int H, int W, bool mirrored, double* u) {
    const int D = H * W;
    std::vector<double> centred(D);
    for (int y = 0; y < H; ++y)
        for (int k = 0; k < W; ++k) {
            const int d = y * W + k;
            centred[d] = double(x[mirrored ? y * W + (W - 1 - k) : d]) - double(p.mean[d]);
        }
    for (int c = 0; c < p.dims; ++c) {
        const float* b = p.basis.data() + size_t(c) * D;
        double s = 0;
        for (int d = 0; d < D; ++d) s += double(b[d]) * centred[d];
        u[c] = s;
    }
}

}  // namespace

void pixel_branch_embed(const PixelBranch& p, const float* images, int n, int H, int W, bool flip, float* out) {
    if (p.mean.size() != size_t(H) * W)
        throw DataError("pixel branch fit on " + std::to_string(p.mean.size()) + "-pixel images, given " +
                        std::to_string(H) + "x" + std::to_string(W));
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; ++i) {
        std::vector<double> u(p.dims), v;
        const float* x = images + size_t(i) * H * W;
        project(p, x, H, W, false, u.data());
        if (flip) {
            v.resize(p.dims);
            project(p, x, H, W, true, v.data());
            for (int c = 0; c < p.dims; ++c) u[c] = (u[c] + v[c]) * 0.5;  // commutative: mirror-symmetric bits
        }
        double sq = 0;
        for (double a : u) sq += a * a;
        const double scale = sq > 0 ? double(p.weight) / std::sqrt(sq) : 0.0;
        for (int c = 0; c < p.dims; ++c) out[size_t(i) * p.dims + c] = float(u[c] * scale);
    }
}

std::vector<float> append_pixel_branch(const PixelBranch& p, const std::vector<float>& net, int E, const float* images,
                                       int n, int H, int W, bool flip) {
    if (p.empty()) return net;
    std::vector<float> px(size_t(n) * p.dims);
    pixel_branch_embed(p, images, n, H, W, flip, px.data());
    const int F = E + p.dims;
    std::vector<float> out(size_t(n) * F);
    for (int i = 0; i < n; ++i) {
        std::copy(net.begin() + long(i) * E, net.begin() + long(i + 1) * E, out.begin() + long(i) * F);
        std::copy(px.begin() + long(i) * p.dims, px.begin() + long(i + 1) * p.dims, out.begin() + long(i) * F + E);
    }
    return out;
}

}  // namespace siamese
