// The pixel branch of the hybrid embedding (--pixel-branch): the whitened eigenface fit, the
// unit-length scaled pixel part, its place in the backend's embeddings and distances, the model
// file, and the command line end to end.
#include <catch2/catch.hpp>
#include <cmath>
#include <nlohmann/json.hpp>

#include "cpu/embed_head.hpp"
#include <fstream>

#include "siamese/backend.hpp"
#include "siamese/files.hpp"
#include "siamese/metrics.hpp"
#include "siamese/model.hpp"
#include "siamese/pixel_branch.hpp"
#include "siamese/synth.hpp"
#include "test_util.hpp"

using namespace siamese;

namespace {

ImageBank small_bank() {
    SynthOptions o;
    o.people = 6;
    o.images = 4;
    return synth_bank(o, Preprocess{8, ResizeMode::Stride});  // 14 x 12 images
}

// A small twin (conv 3, 4; dense 8, 5) with a linear embedding on the CPU, Glorot weights from
// `seed`, the bank uploaded.
std::unique_ptr<Backend> small_backend(const ImageBank& bank, uint64_t seed, bool l2, bool flip) {
    Recipe h;
    h.net.in_h = bank.height;
    h.net.in_w = bank.width;
    h.net.conv_filters = {3, 4};
    h.net.dense = {8, 5};
    h.net.embed_relu = false;
    h.net.l2_normalize = l2;
    h.net.flip_average = flip;
    auto be = make_cpu_backend(h, EngineOptions{});
    be->set_params(glorot_init(be->layout(), seed));
    be->upload_images(bank);
    return be;
}

// basis (x - mean) in double, for image i of the bank.
std::vector<double> project(const PixelBranch& p, const float* x) {
    const size_t D = p.mean.size();
    std::vector<double> u(p.dims, 0.0);
    for (int c = 0; c < p.dims; ++c)
        for (size_t d = 0; d < D; ++d) u[c] += double(p.basis[c * D + d]) * (double(x[d]) - double(p.mean[d]));
    return u;
}

}  // namespace

TEST_CASE("pixel branch: whitened eigenfaces of the training people, weight-long rows, mirror-symmetric with flips", "[strong][pixel]") {
    const ImageBank bank = small_bank();
    const std::vector<int> fit_people = {0, 1, 2, 3};  // 16 images: up to 15 axes
    const PixelBranch p = fit_pixel_branch(bank, fit_people, 5, 0.7f);
    REQUIRE(p.dims == 5);
    REQUIRE(p.mean.size() == size_t(bank.image_elems()));
    // Whitened: over the fit images each component has unit variance (m - 1 in the
    // denominator) and no covariance with another. The basis is stored in float (~1e-7 relative),
    // the fit in double: 1e-4 leaves room for the float rounding summed over 168 pixels.
    std::vector<std::vector<double>> u;
    for (int person : fit_people)
        for (int i : bank.images_of[person]) u.push_back(project(p, bank.image(i)));
    const double m = double(u.size());
    for (int a = 0; a < p.dims; ++a)
        for (int b = 0; b < p.dims; ++b) {
            double s = 0;
            for (const auto& v : u) s += v[a] * v[b];
            CHECK(s / (m - 1) == Approx(a == b ? 1.0 : 0.0).margin(1e-4));
        }
    // Each row: weight * u / |u| (float output of a double computation).
    const int n = bank.size(), H = bank.height, W = bank.width;
    std::vector<float> out(size_t(n) * p.dims);
    pixel_branch_embed(p, bank.pixels.data(), n, H, W, false, out.data());
    for (int i = 0; i < n; ++i) {
        const auto v = project(p, bank.image(i));
        double norm = 0;
        for (double x : v) norm += x * x;
        norm = std::sqrt(norm);
        for (int c = 0; c < p.dims; ++c) CHECK(out[size_t(i) * p.dims + c] == Approx(0.7 * v[c] / norm).margin(1e-6));
    }
    // With flip averaging an image and its mirror get the same bits; without, other vectors.
    std::vector<float> mir(bank.pixels.size());
    mirror_images(mir.data(), bank.pixels.data(), n, H, W);
    std::vector<float> a(out.size()), b(out.size()), c(out.size());
    pixel_branch_embed(p, bank.pixels.data(), n, H, W, true, a.data());
    pixel_branch_embed(p, mir.data(), n, H, W, true, b.data());
    pixel_branch_embed(p, mir.data(), n, H, W, false, c.data());
    CHECK(a == b);
    CHECK(testutil::rel_error(c, out) > 1e-3);
    // Images of another size are refused, naming both sizes.
    CHECK_THROWS_AS(pixel_branch_embed(p, bank.pixels.data(), 1, H - 1, W, false, out.data()), DataError);
}

TEST_CASE("pixel branch, --pixel-metric within: the training people's photos and mirror images vary alike in every direction", "[strong][pixel]") {
    const ImageBank bank = small_bank();
    const std::vector<int> fit_people = {0, 1, 2, 3};  // 16 photos, 32 with the mirror images
    const int H = bank.height, W = bank.width;
    // The photos the metric is fit on, grouped by person: each photo and its mirror image.
    std::vector<std::vector<std::vector<float>>> photos;
    for (int person : fit_people) {
        photos.emplace_back();
        for (int i : bank.images_of[person]) {
            const float* x = bank.image(i);
            std::vector<float> m(size_t(H) * W);
            mirror_images(m.data(), x, 1, H, W);
            photos.back().emplace_back(x, x + size_t(H) * W);
            photos.back().push_back(m);
        }
    }
    // Covariance of u = basis (x - mean) about each person's mean u, over all 32 photos.
    auto within = [&](const PixelBranch& p) {
        std::vector<double> s(size_t(p.dims) * p.dims, 0.0);
        for (const auto& person : photos) {
            std::vector<std::vector<double>> u;
            for (const auto& x : person) u.push_back(project(p, x.data()));
            std::vector<double> mu(p.dims, 0.0);
            for (const auto& v : u)
                for (int c = 0; c < p.dims; ++c) mu[c] += v[c] / double(u.size());
            for (const auto& v : u)
                for (int a = 0; a < p.dims; ++a)
                    for (int b = 0; b < p.dims; ++b) s[size_t(a) * p.dims + b] += (v[a] - mu[a]) * (v[b] - mu[b]) / 32.0;
        }
        return s;
    };
    // 5 components, 28 within-person degrees of freedom: with a negligible regulariser the
    // within-person covariance becomes the identity (1e-3: the float basis, and 1e-6 of reg).
    const PixelBranch p = fit_pixel_branch(bank, fit_people, 5, 0.7f, PixelMetric::Within, 1e-6);
    REQUIRE(p.dims == 5);
    const std::vector<double> s = within(p);
    for (int a = 0; a < p.dims; ++a)
        for (int b = 0; b < p.dims; ++b) CHECK(s[size_t(a) * p.dims + b] == Approx(a == b ? 1.0 : 0.0).margin(1e-3));
    // The eigenface branch is not (its whitening is over all photos, not within people), and a
    // regulariser shrinks the result below the identity: (S + r)^(-1/2) S (S + r)^(-1/2) < 1.
    const std::vector<double> sp = within(fit_pixel_branch(bank, fit_people, 5, 0.7f));
    double off = 0;
    for (int a = 0; a < 5; ++a) off = std::max(off, std::abs(sp[size_t(a) * 5 + a] - 1.0));
    CHECK(off > 0.05);
    const std::vector<double> sr = within(fit_pixel_branch(bank, fit_people, 5, 0.7f, PixelMetric::Within, 1.0));
    for (int a = 0; a < 5; ++a) CHECK(sr[size_t(a) * 5 + a] < 0.99);
    CHECK_THROWS_AS(fit_pixel_branch(bank, fit_people, 5, 0.7f, PixelMetric::Within, 0.0), UsageError);
}

// The CPU engine's validation embeds only the bank images its pairs name (each once, then
// renumbered): the distances must be those of the whole bank's embeddings, bit for bit.
TEST_CASE("validation distances from the images the pairs name equal the whole bank's, with and without flips", "[strong][validation]") {
    const ImageBank bank = small_bank();
    for (const bool flip : {false, true}) {
        INFO("flip averaging " << flip);
        auto be = small_backend(bank, 6, flip, flip);
        const int n = bank.size(), E = be->embed_dim();
        // A few images, out of order, one named twice, one paired with itself, the last image.
        PairSet pairs;
        pairs.push(7, 2, 0.0f);
        pairs.push(2, 3, 1.0f);
        pairs.push(n - 1, 7, 0.0f);
        pairs.push(5, 5, 1.0f);
        const std::vector<float> whole = pair_distances(be->embed_bank(), E, pairs);
        const std::vector<float> named = be->bank_pair_distances(pairs);
        REQUIRE(named.size() == 4);
        CHECK(named == whole);
        CHECK(named[0] != named[1]);  // distinct pairs, distinct distances: the rows are not mixed up
        CHECK(named[3] < 0.01f);      // an image against itself (the safe sqrt's floor)
    }
}

TEST_CASE("hybrid embedding: the backend appends the pixel part, squared distances add, the model file keeps it", "[strong][pixel]") {
    const ImageBank bank = small_bank();
    auto be = small_backend(bank, 4, true, false);
    const std::vector<float> params = be->params();
    const int E = 5, n = bank.size();
    const std::vector<float> net = be->embed_bank();
    REQUIRE(be->embed_dim() == E);
    const PixelBranch p = fit_pixel_branch(bank, {0, 1, 2}, 4, 0.6f);
    be->set_pixel_branch(p);
    REQUIRE(be->embed_dim() == E + p.dims);
    const std::vector<float> hy = be->embed_bank();
    REQUIRE(hy.size() == size_t(n) * (E + p.dims));
    std::vector<float> px(size_t(n) * p.dims);
    pixel_branch_embed(p, bank.pixels.data(), n, bank.height, bank.width, false, px.data());
    for (int i = 0; i < n; ++i) {
        for (int k = 0; k < E; ++k) CHECK(hy[size_t(i) * (E + p.dims) + k] == net[size_t(i) * E + k]);
        for (int c = 0; c < p.dims; ++c) CHECK(hy[size_t(i) * (E + p.dims) + E + c] == px[size_t(i) * p.dims + c]);
    }
    CHECK(be->embed(bank.pixels.data(), n) == hy);
    // d^2 = d_net^2 + d_pixels^2, for the host path and the bank path alike.
    PairSet pairs;
    for (int i = 0; i + 1 < n; i += 2) pairs.push(i, i + 1, 1.0f);
    const auto d = be->distances(hy, pairs), db = be->bank_pair_distances(pairs);
    CHECK(d == db);
    for (long k = 0; k < pairs.size(); ++k) {
        double dn = 0, dp = 0;
        const int a = pairs.a[k], b = pairs.b[k];
        for (int j = 0; j < E; ++j) dn += std::pow(double(net[size_t(a) * E + j]) - net[size_t(b) * E + j], 2);
        for (int c = 0; c < p.dims; ++c) dp += std::pow(double(px[size_t(a) * p.dims + c]) - px[size_t(b) * p.dims + c], 2);
        CHECK(d[k] == Approx(std::sqrt(dn + dp)).epsilon(1e-5));  // float sums of ~10 terms
    }
    // The model file: the branch round-trips; a model without one has no pixel tensors.
    const std::string dir = testutil::temp_dir("pixel");
    Model m;
    m.net = be->net_config();
    m.params = params;
    save_model(dir + "/plain.safetensors", m);
    CHECK(load_model(dir + "/plain.safetensors").pixel.empty());
    CHECK(read_file_bytes(dir + "/plain.safetensors").find("pixel") == std::string::npos);
    m.pixel = p;
    save_model(dir + "/hybrid.safetensors", m);
    const Model back = load_model(dir + "/hybrid.safetensors");
    CHECK(back.pixel.dims == p.dims);
    CHECK(back.pixel.weight == p.weight);
    CHECK(back.pixel.mean == p.mean);
    CHECK(back.pixel.basis == p.basis);
    m.pixel.mean.pop_back();  // a branch for other images
    CHECK_THROWS_AS(save_model(dir + "/bad.safetensors", m), DataError);
}

TEST_CASE("train --pixel-branch: the saved model reproduces the run's test figures, and bad values exit 2", "[strong][pixel][cli]") {
    const std::string dir = testutil::temp_dir("pixel_cli");
    REQUIRE(testutil::run_cli("synth --out " + dir + "/faces --people 8 --images 4").status == 0);
    std::vector<float> basis[2];
    for (const std::string metric : {"pca", "within"}) {
        INFO("--pixel-metric " << metric);
        const std::string run = dir + "/run_" + metric;
        const auto t = testutil::run_cli("train --recipe strong --data " + dir + "/faces --protocol people --test-people 7-8 "
                                         "--epochs 2 --pk-people 3 --pk-images 4 --downsample 4 --pixel-branch 6 "
                                         "--pixel-weight 0.8 --pixel-metric " + metric +
                                         " --device cpu --threads 2 --quiet --out " + run);
        INFO(t.out);
        REQUIRE(t.status == 0);
        const Model m = load_model(run + "/model.safetensors");
        CHECK(m.pixel.dims == 6);
        CHECK(m.pixel.weight == 0.8f);
        basis[metric == "within"] = m.pixel.basis;
        std::ifstream sf(run + "/summary.json");
        const auto summary = nlohmann::json::parse(sf);
        CHECK(summary["recipe"]["pixel_metric"] == metric);
        const auto ev = testutil::run_cli("eval --model " + run + "/model.safetensors --data " + dir +
                                          "/faces --people 7-8 --json");
        INFO(ev.out);
        REQUIRE(ev.status == 0);
        const auto je = nlohmann::json::parse(ev.out.substr(ev.out.find('{')));
        // The same pairs (all of the test people's) and the same embeddings: the same AUC.
        CHECK(je["auc"].get<double>() == Approx(summary["test"]["auc"].get<double>()).margin(1e-9));
    }
    CHECK(basis[0] != basis[1]);  // the metric is not ignored
    CHECK(testutil::run_cli("train --pixel-branch -1 --epochs 1 --out " + dir + "/x").status == 2);
    CHECK(testutil::run_cli("train --pixel-branch 4 --pixel-weight 0 --epochs 1 --out " + dir + "/x").status == 2);
    CHECK(testutil::run_cli("train --pixel-branch 4 --pixel-metric lda --epochs 1 --out " + dir + "/x").status == 2);
    CHECK(testutil::run_cli("train --pixel-branch 4 --pixel-metric within --pixel-reg 0 --epochs 1 --out " + dir + "/x").status == 2);
    CHECK(testutil::run_cli("train --pixel-branch 4 --pixel-reg nan --epochs 1 --out " + dir + "/x").status == 2);
}
