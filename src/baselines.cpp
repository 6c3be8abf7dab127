#include "siamese/baselines.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "siamese/common.hpp"

namespace siamese {

std::vector<float> pixel_embeddings(const ImageBank& bank) { return bank.pixels; }

void symmetric_eigen(std::vector<double>& a, int n, std::vector<double>& w, std::vector<double>& v) {
    v.assign(size_t(n) * n, 0.0);
    for (int i = 0; i < n; ++i) v[size_t(i) * n + i] = 1.0;
    auto A = [&](int i, int j) -> double& { return a[size_t(i) * n + j]; };
    for (int sweep = 0; sweep < 100; ++sweep) {
        double off = 0, diag = 0;
        for (int i = 0; i < n; ++i)
            for (int j = 0; j < n; ++j) (i == j ? diag : off) += A(i, j) * A(i, j);
        if (off <= 1e-24 * std::max(diag, 1e-300)) break;
        for (int p = 0; p < n; ++p)
            for (int q = p + 1; q < n; ++q) {
                if (A(p, q) == 0.0) continue;
                // The rotation that zeroes A(p,q) (Golub & Van Loan, 8.5.2).
                const double theta = (A(q, q) - A(p, p)) / (2.0 * A(p, q));
                const double t = (theta >= 0 ? 1.0 : -1.0) / (std::fabs(theta) + std::sqrt(theta * theta + 1.0));
                const double c = 1.0 / std::sqrt(t * t + 1.0), s = t * c;
                for (int k = 0; k < n; ++k) {  // columns p, q
                    const double akp = A(k, p), akq = A(k, q);
                    A(k, p) = c * akp - s * akq;
                    A(k, q) = s * akp + c * akq;
                }
                for (int k = 0; k < n; ++k) {  // rows p, q
                    const double apk = A(p, k), aqk = A(q, k);
                    A(p, k) = c * apk - s * aqk;
                    A(q, k) = s * apk + c * aqk;
                }
                for (int k = 0; k < n; ++k) {
                    double& vkp = v[size_t(k) * n + p];
                    double& vkq = v[size_t(k) * n + q];
                    const double x = vkp, y = vkq;
                    vkp = c * x - s * y;
                    vkq = s * x + c * y;
                }
            }
    }
    std::vector<int> order(n);
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](int x, int y) { return A(x, x) > A(y, y); });
    std::vector<double> vs(size_t(n) * n);
    w.resize(n);
    for (int c = 0; c < n; ++c) {
        w[c] = A(order[c], order[c]);
        for (int k = 0; k < n; ++k) vs[size_t(k) * n + c] = v[size_t(k) * n + order[c]];
    }
    v.swap(vs);
}

namespace {

// Orthonormalises the q columns of Q (m x q, row-major) in place (modified Gram-Schmidt).
void orthonormalize(std::vector<double>& Q, int m, int q) {
    for (int c = 0; c < q; ++c) {
        for (int p = 0; p < c; ++p) {
            double dot = 0;
            for (int k = 0; k < m; ++k) dot += Q[size_t(k) * q + c] * Q[size_t(k) * q + p];
            for (int k = 0; k < m; ++k) Q[size_t(k) * q + c] -= dot * Q[size_t(k) * q + p];
        }
        double nrm = 0;
        for (int k = 0; k < m; ++k) nrm += Q[size_t(k) * q + c] * Q[size_t(k) * q + c];
        nrm = std::sqrt(nrm);
        for (int k = 0; k < m; ++k) Q[size_t(k) * q + c] = nrm > 0 ? Q[size_t(k) * q + c] / nrm : 0.0;
    }
}

}  // namespace

Eigenfaces fit_eigenfaces(const ImageBank& bank, const std::vector<int>& fit_people, int components) {
    std::vector<int> fit;
    for (int p : fit_people) fit.insert(fit.end(), bank.images_of[p].begin(), bank.images_of[p].end());
    if (int(fit.size()) > kMaxPcaImages) {
        Rng r(0x9CA5EEDull);
        r.shuffle(fit);
        fit.resize(kMaxPcaImages);
        std::sort(fit.begin(), fit.end());
    }
    const int m = int(fit.size()), D = bank.image_elems();
    if (m < 2) throw UsageError("eigenfaces need at least two training images");
    std::vector<double> mean(D, 0.0);
    for (int i : fit)
        for (int d = 0; d < D; ++d) mean[d] += bank.image(i)[d];
    for (double& v : mean) v /= m;
    std::vector<double> X(size_t(m) * D);
    for (int r = 0; r < m; ++r)
        for (int d = 0; d < D; ++d) X[size_t(r) * D + d] = bank.image(fit[r])[d] - mean[d];
    // Gram matrix G = X X^T (m x m): the principal axes are X^T u / sqrt(lambda) for its
    // eigenpairs (u, lambda), the cheap side when images are fewer than pixels.
    // Each entry is one sum over d in order; they are computed 4 x 4 at a time (sixteen chains
    // in flight where one sum at a time waited on the add latency; the same bits).
    std::vector<double> G(size_t(m) * m);
    const int blocks = (m + 3) / 4;
#pragma omp parallel for schedule(dynamic)
    for (int bi = 0; bi < blocks; ++bi)
        for (int bj = bi; bj < blocks; ++bj) {
            const int i0 = 4 * bi, j0 = 4 * bj;
            const double* xi[4];
            const double* xj[4];
            for (int t = 0; t < 4; ++t) {  // rows past m repeat the last row; never stored
                xi[t] = X.data() + size_t(std::min(i0 + t, m - 1)) * D;
                xj[t] = X.data() + size_t(std::min(j0 + t, m - 1)) * D;
            }
            double s[4][4] = {};
            for (int d = 0; d < D; ++d)
                for (int a = 0; a < 4; ++a)
                    for (int b = 0; b < 4; ++b) s[a][b] += xi[a][d] * xj[b][d];
            for (int a = 0; a < 4 && i0 + a < m; ++a)
                for (int b = 0; b < 4 && j0 + b < m; ++b)
                    G[size_t(i0 + a) * m + (j0 + b)] = G[size_t(j0 + b) * m + (i0 + a)] = s[a][b];
        }
    const int k = std::max(1, std::min(components, m - 1));
    const int q = std::min(m, k + 10);
    // Subspace iteration on G from a seeded random start, then Rayleigh-Ritz.
    std::vector<double> Q(size_t(m) * q), Z(size_t(m) * q);
    Rng r(0xE16E4FACEull);
    for (double& v : Q) v = r.uniform() - 0.5;
    orthonormalize(Q, m, q);
    // Z = G Q: each Z(i, c) one sum over j in order, the q sums of a row side by side (a vector
    // loop over c instead of one latency-bound sum at a time; the same bits).
    auto times_G = [&](std::vector<double>& out, const std::vector<double>& in) {
#pragma omp parallel for schedule(static)
        for (int i = 0; i < m; ++i) {
            double* z = out.data() + size_t(i) * q;
            std::fill(z, z + q, 0.0);
            for (int j = 0; j < m; ++j) {
                const double g = G[size_t(i) * m + j];
                const double* qj = in.data() + size_t(j) * q;
                for (int c = 0; c < q; ++c) z[c] += g * qj[c];
            }
        }
    };
    for (int it = 0; it < 60; ++it) {
        times_G(Z, Q);
        Q.swap(Z);
        orthonormalize(Q, m, q);
    }
    // Rayleigh-Ritz: T = Q^T (G Q), each entry one sum over i in order (G Q formed once, not
    // once per entry of T).
    times_G(Z, Q);
    std::vector<double> T(size_t(q) * q, 0.0), w, V;
    for (int a = 0; a < q; ++a) {
        double* t = T.data() + size_t(a) * q;
        for (int i = 0; i < m; ++i) {
            const double qa = Q[size_t(i) * q + a];
            const double* gq = Z.data() + size_t(i) * q;
            for (int b = 0; b < q; ++b) t[b] += qa * gq[b];
        }
    }
    symmetric_eigen(T, q, w, V);
    int kk = 0;
    while (kk < k && w[kk] > 1e-9 * std::max(w[0], 1e-300)) ++kk;
    kk = std::max(kk, 1);
    // Axes (kk x D): X^T (Q V[:, c]) / sqrt(w_c).
    std::vector<double> axes(size_t(kk) * D, 0.0);
    for (int c = 0; c < kk; ++c) {
        std::vector<double> u(m, 0.0);
        for (int i = 0; i < m; ++i)
            for (int b = 0; b < q; ++b) u[i] += Q[size_t(i) * q + b] * V[size_t(b) * q + c];
        const double inv = 1.0 / std::sqrt(std::max(w[c], 1e-300));
        for (int i = 0; i < m; ++i)
            for (int d = 0; d < D; ++d) axes[size_t(c) * D + d] += X[size_t(i) * D + d] * u[i] * inv;
    }
    Eigenfaces e;
    e.D = D;
    e.k = kk;
    e.mean = std::move(mean);
    e.axes = std::move(axes);
    for (int c = 0; c < kk; ++c) e.variance.push_back(w[c] / double(m - 1));
    return e;
}

std::vector<float> eigenface_embeddings(const ImageBank& bank, const std::vector<int>& fit_people, int components,
                                        int* k_out) {
    const Eigenfaces e = fit_eigenfaces(bank, fit_people, components);
    const int D = e.D, kk = e.k;
    std::vector<float> emb(size_t(bank.size()) * kk);
#pragma omp parallel for schedule(static)
    for (int n = 0; n < bank.size(); ++n)
        for (int c = 0; c < kk; ++c) {
            double s = 0;
            for (int d = 0; d < D; ++d) s += (double(bank.image(n)[d]) - e.mean[d]) * e.axes[size_t(c) * D + d];
            emb[size_t(n) * kk + c] = float(s);
        }
    if (k_out) *k_out = kk;
    return emb;
}

}  // namespace siamese
