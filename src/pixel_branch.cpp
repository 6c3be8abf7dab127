#include "siamese/pixel_branch.hpp"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "siamese/baselines.hpp"
#include "siamese/common.hpp"

namespace siamese {

namespace {

// The images of `fit_people`, then their mirror images, each under its person (0.. in the order
// of fit_people): the photos the within-person metric is fit on.
ImageBank with_mirror_images(const ImageBank& bank, const std::vector<int>& fit_people) {
    ImageBank b;
    b.height = bank.height;
    b.width = bank.width;
    const int H = bank.height, W = bank.width;
    b.images_of.resize(fit_people.size());
    for (int mirrored = 0; mirrored < 2; ++mirrored)
        for (size_t q = 0; q < fit_people.size(); ++q)
            for (int i : bank.images_of[fit_people[q]]) {
                const float* x = bank.image(i);
                for (int y = 0; y < H; ++y)
                    for (int k = 0; k < W; ++k) b.pixels.push_back(x[y * W + (mirrored ? W - 1 - k : k)]);
                b.images_of[q].push_back(b.size());
                b.person.push_back(int(q));
            }
    for (int p : fit_people) b.people.push_back(bank.people[p]);
    return b;
}

// The within-person whitening T = (S_w + reg I)^(-1/2) (k x k, symmetric) of the whitened
// eigenface coordinates z (one row of k per image of b): S_w the covariance of each photo's z
// about its person's mean z, over all of b's photos.
std::vector<double> within_whitening(const ImageBank& b, const Eigenfaces& e, double reg) {
    const int k = e.k, D = e.D, n = b.size();
    std::vector<double> z(size_t(n) * k);
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; ++i) {
        std::vector<double> centred(D);
        for (int d = 0; d < D; ++d) centred[d] = double(b.image(i)[d]) - e.mean[d];
        for (int c = 0; c < k; ++c) {
            double s = 0;
            for (int d = 0; d < D; ++d) s += e.axes[size_t(c) * D + d] * centred[d];
            z[size_t(i) * k + c] = s / std::sqrt(std::max(e.variance[c], 1e-300));
        }
    }
    std::vector<double> sw(size_t(k) * k, 0.0), mu(k);
    for (const std::vector<int>& photos : b.images_of) {
        if (photos.empty()) continue;
        std::fill(mu.begin(), mu.end(), 0.0);
        for (int i : photos)
            for (int c = 0; c < k; ++c) mu[c] += z[size_t(i) * k + c];
        for (double& v : mu) v /= double(photos.size());
        for (int i : photos)
            for (int a = 0; a < k; ++a)
                for (int c = 0; c < k; ++c) sw[size_t(a) * k + c] += (z[size_t(i) * k + a] - mu[a]) * (z[size_t(i) * k + c] - mu[c]);
    }
    for (double& v : sw) v /= double(n);
    for (int a = 0; a < k; ++a) sw[size_t(a) * k + a] += reg;
    std::vector<double> w, V;
    symmetric_eigen(sw, k, w, V);  // S_w = V diag(w) V^T, w >= reg > 0
    std::vector<double> t(size_t(k) * k, 0.0);
    for (int a = 0; a < k; ++a)
        for (int c = 0; c < k; ++c) {
            double s = 0;
            for (int j = 0; j < k; ++j) s += V[size_t(a) * k + j] * V[size_t(c) * k + j] / std::sqrt(w[j]);
            t[size_t(a) * k + c] = s;
        }
    return t;
}

}  // namespace

PixelBranch fit_pixel_branch(const ImageBank& bank, const std::vector<int>& fit_people, int components, float weight,
                             PixelMetric metric, double reg) {
    if (components < 1) throw UsageError("--pixel-branch " + std::to_string(components) + ": needs at least one component");
    if (metric == PixelMetric::Within && !(reg > 0 && std::isfinite(reg)))
        throw UsageError("--pixel-reg " + std::to_string(reg) + ": must be a number > 0");
    const bool within = metric == PixelMetric::Within;
    const ImageBank mirrored = within ? with_mirror_images(bank, fit_people) : ImageBank{};
    std::vector<int> all(mirrored.images_of.size());
    for (size_t q = 0; q < all.size(); ++q) all[q] = int(q);
    const Eigenfaces e = within ? fit_eigenfaces(mirrored, all, components) : fit_eigenfaces(bank, fit_people, components);
    PixelBranch p;
    p.dims = e.k;
    p.weight = weight;
    p.mean.assign(e.mean.begin(), e.mean.end());
    // Whitened axes (k x D); Within: then rows mixed by T (basis = T . whitened axes).
    std::vector<double> axes(size_t(e.k) * e.D);
    for (int c = 0; c < e.k; ++c) {
        const double inv_sd = 1.0 / std::sqrt(std::max(e.variance[c], 1e-300));
        for (int d = 0; d < e.D; ++d) axes[size_t(c) * e.D + d] = e.axes[size_t(c) * e.D + d] * inv_sd;
    }
    p.basis.resize(axes.size());
    if (!within) {
        for (size_t i = 0; i < axes.size(); ++i) p.basis[i] = float(axes[i]);
        return p;
    }
    const std::vector<double> t = within_whitening(mirrored, e, reg);
#pragma omp parallel for schedule(static)
    for (int c = 0; c < e.k; ++c)
        for (int d = 0; d < e.D; ++d) {
            double s = 0;
            for (int j = 0; j < e.k; ++j) s += t[size_t(c) * e.k + j] * axes[size_t(j) * e.D + d];
            p.basis[size_t(c) * e.D + d] = float(s);
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
