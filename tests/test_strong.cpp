// The strong recipe's operations on the CPU: the L2 embedding head and the linear embedding
// layer, the in-batch all-pairs loss (gradient checks in double), the augmentation warp, the
// P-K sampler, the cosine schedule, the eigenface baseline, TAR at FAR, and `cv`/`train
// --recipe strong` end to end on tiny generated data.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <set>

#include "cpu/augment.hpp"
#include "cpu/batch_loss.hpp"
#include "cpu/embed_head.hpp"
#include "cpu/twin.hpp"
#include "grad_check.hpp"
#include "tensor_check.hpp"
#include "siamese/backend.hpp"
#include "siamese/baselines.hpp"
#include "siamese/cv.hpp"
#include "siamese/metrics.hpp"
#include "siamese/optimizer.hpp"
#include "siamese/sampler.hpp"
#include "siamese/synth.hpp"
#include "siamese/train_state.hpp"
#include "siamese/files.hpp"
#include "test_util.hpp"

using namespace siamese;

namespace {

// The in-batch loss written plainly from its definition (pairs i < j, each class weighted), as
// an independent check of the row-wise form batch_contrastive_loss uses.
double loss_by_definition(const std::vector<double>& emb, const std::vector<int>& id, int E, double margin, Mining m) {
    const int n = int(id.size());
    long genuine = 0, pairs = 0;
    for (int i = 0; i < n; ++i)
        for (int j = i + 1; j < n; ++j) {
            ++pairs;
            genuine += id[i] == id[j];
        }
    double sg = 0, si = 0;
    for (int i = 0; i < n; ++i)
        for (int j = i + 1; j < n; ++j) {
            double s = 0;
            for (int k = 0; k < E; ++k) s += (emb[size_t(i) * E + k] - emb[size_t(j) * E + k]) * (emb[size_t(i) * E + k] - emb[size_t(j) * E + k]);
            const double d = std::sqrt(std::max(s, 1e-7));
            if (id[i] == id[j])
                sg += d * d;
            else
                si += std::pow(std::max(margin - d, 0.0), 2);
        }
    if (m == Mining::All) return (sg + si) / double(pairs);
    return (genuine ? 0.5 * sg / double(genuine) : 0.0) + (pairs - genuine ? 0.5 * si / double(pairs - genuine) : 0.0);
}

// The softmax loss written plainly: every anchor's log-probabilities of its partners, from a
// direct sum of exponentials (no max shift; the test's logits are small).
double softmax_loss_by_definition(const std::vector<double>& emb, const std::vector<int>& id, int E, double t) {
    const int n = int(id.size());
    auto logit = [&](int i, int j) {
        double d = 0;
        for (int k = 0; k < E; ++k) d += emb[size_t(i) * E + k] * emb[size_t(j) * E + k];
        return d / t;
    };
    double total = 0;
    int anchors = 0;
    for (int i = 0; i < n; ++i) {
        double z = 0, lp = 0;
        int partners = 0;
        for (int j = 0; j < n; ++j)
            if (j != i) z += std::exp(logit(i, j));
        for (int j = 0; j < n; ++j)
            if (j != i && id[j] == id[i]) lp += std::log(std::exp(logit(i, j)) / z), ++partners;
        if (partners) total += -lp / partners, ++anchors;
    }
    return anchors ? total / anchors : 0.0;
}

SynthOptions faces(int people, int images) {
    SynthOptions o;
    o.people = people;
    o.images = images;
    return o;
}

}  // namespace

TEST_CASE("in-batch contrastive loss equals its definition and its gradient matches finite differences", "[strong][gradcheck]") {
    std::mt19937_64 r(5);
    for (Mining m : {Mining::All, Mining::Balanced})
        for (int n : {2, 5, 12}) {
            INFO("mining " << int(m) << " n " << n);
            const int E = 7;
            std::vector<int> id(n);
            for (int i = 0; i < n; ++i) id[i] = i % 3;  // several images per person
            auto emb = testutil::random_vector(size_t(n) * E, r, -0.4, 0.4);
            std::vector<double> g(emb.size(), std::nan(""));
            const double loss = batch_contrastive_loss<double>(g.data(), emb.data(), id.data(), n, E, 1.0, m);
            CHECK(std::fabs(loss - loss_by_definition(emb, id, E, 1.0, m)) < 1e-12 * std::max(1.0, std::fabs(loss)));
            const auto fd = testutil::numeric_gradient(
                emb, [&] { return batch_contrastive_loss<double>(nullptr, emb.data(), id.data(), n, E, 1.0, m); });
            CHECK(testutil::rel_error(g, fd) < 1e-6);  // central differences in double: ~1e-9 truncation
        }
}

TEST_CASE("in-batch softmax loss equals its definition and its gradient matches finite differences", "[strong][gradcheck]") {
    std::mt19937_64 r(7);
    for (double t : {0.05, 0.5})
        for (int n : {2, 5, 12}) {
            INFO("temperature " << t << " n " << n);
            const int E = 7;
            std::vector<int> id(n);
            for (int i = 0; i < n; ++i) id[i] = i % 3;  // several images a person...
            id[n - 1] = 99;                             // ...and one without a partner: not an anchor
            auto emb = testutil::random_vector(size_t(n) * E, r, -0.4, 0.4);
            std::vector<double> g(emb.size(), std::nan(""));
            const double loss = batch_softmax_loss<double>(g.data(), emb.data(), id.data(), n, E, t);
            CHECK(std::fabs(loss - softmax_loss_by_definition(emb, id, E, t)) < 1e-12 * std::max(1.0, std::fabs(loss)));
            const auto fd = testutil::numeric_gradient(
                emb, [&] { return batch_softmax_loss<double>(nullptr, emb.data(), id.data(), n, E, t); });
            CHECK(testutil::rel_error(g, fd) < 1e-6);  // central differences in double: ~1e-9 truncation
        }
    // No anchor at all (every person once, or a single image): loss 0, gradient exactly 0.
    for (int n : {1, 4}) {
        std::vector<int> id(n);
        for (int i = 0; i < n; ++i) id[i] = i;
        auto emb = testutil::random_vector(size_t(n) * 3, r);
        std::vector<double> g(emb.size(), std::nan(""));
        CHECK(batch_softmax_loss<double>(g.data(), emb.data(), id.data(), n, 3, 0.1) == 0.0);
        for (double v : g) CHECK(v == 0.0);
    }
}

TEST_CASE("L2 head: unit rows, gradient matches finite differences, clamped rows stay finite", "[strong][gradcheck]") {
    std::mt19937_64 r(6);
    const int n = 4, E = 9;
    auto e = testutil::random_vector(size_t(n) * E, r);
    std::vector<double> z(e.size()), norm(n);
    l2_normalize_forward(z.data(), norm.data(), e.data(), n, E);
    for (int i = 0; i < n; ++i) {
        double s = 0;
        for (int k = 0; k < E; ++k) s += z[size_t(i) * E + k] * z[size_t(i) * E + k];
        CHECK(std::fabs(s - 1.0) < 1e-12);
    }
    // A loss of z: sum_k c_k z_k; dL/de by the head's backward against finite differences.
    const auto c = testutil::random_vector(e.size(), r);
    auto loss = [&] {
        std::vector<double> zz(e.size()), nn(n);
        l2_normalize_forward(zz.data(), nn.data(), e.data(), n, E);
        double s = 0;
        for (size_t k = 0; k < zz.size(); ++k) s += c[k] * zz[k];
        return s;
    };
    std::vector<double> de(e.size());
    l2_normalize_backward(de.data(), c.data(), z.data(), norm.data(), n, E);
    CHECK(testutil::rel_error(de, testutil::numeric_gradient(e, loss)) < 1e-7);
    // An all-zero embedding (a dead unit set) is clamped: finite output and gradient.
    std::vector<double> zero(E, 0.0), z0(E), n0(1), d0(E);
    l2_normalize_forward(z0.data(), n0.data(), zero.data(), 1, E);
    l2_normalize_backward(d0.data(), c.data(), z0.data(), n0.data(), 1, E);
    for (int k = 0; k < E; ++k) CHECK((std::isfinite(z0[k]) && std::isfinite(d0[k])));
}

TEST_CASE("strong twin (linear + L2 embedding) with the in-batch loss: gradient matches finite differences", "[strong][gradcheck]") {
    NetConfig cfg;
    cfg.in_h = 14;
    cfg.in_w = 12;
    cfg.conv_filters = {3, 4};
    cfg.dense = {8, 5};
    cfg.conv_dropout = 0.0f;
    cfg.dense_dropout = 0.0f;
    cfg.embed_relu = false;
    cfg.l2_normalize = true;
    CpuTwin<double> twin(cfg);
    const ParamLayout& L = twin.layout();
    std::mt19937_64 r(8);
    const auto p32 = glorot_init(L, 4);
    std::vector<double> params(p32.begin(), p32.end());
    for (auto& v : params) v += 0.05 * std::uniform_real_distribution<double>(-1, 1)(r);
    const int n = 6, E = L.embed_dim();
    std::vector<std::vector<double>> imgs;
    for (int i = 0; i < n; ++i) imgs.push_back(testutil::random_vector(size_t(cfg.in_h) * cfg.in_w, r, 0, 1));
    std::vector<const double*> ptr;
    for (auto& im : imgs) ptr.push_back(im.data());
    const std::vector<int> id = {0, 0, 1, 1, 2, 2};
    auto loss = [&](std::vector<double>* demb) {
        twin.forward(ptr.data(), n, params.data(), true, 3, 1);
        if (demb) demb->assign(size_t(n) * E, 0.0);
        return batch_contrastive_loss<double>(demb ? demb->data() : nullptr, twin.embeddings(), id.data(), n, E, 0.5,
                                              Mining::All);
    };
    std::vector<double> demb, grad(L.total, std::nan(""));
    loss(&demb);
    // The embeddings are unit vectors, and the last layer is linear (negative values survive).
    bool negative = false;
    for (int i = 0; i < n; ++i) {
        double s = 0;
        for (int k = 0; k < E; ++k) {
            s += twin.embeddings()[size_t(i) * E + k] * twin.embeddings()[size_t(i) * E + k];
            negative |= twin.embeddings()[size_t(i) * E + k] < 0;
        }
        CHECK(std::fabs(s - 1.0) < 1e-12);
    }
    CHECK(negative);
    twin.backward(demb.data(), params.data(), grad.data());
    const auto fd = testutil::numeric_gradient(params, [&] { return loss(nullptr); });
    testutil::check_per_tensor(L, grad, fd, 1e-5);
}

TEST_CASE("flip averaging: an image and its mirror embed alike, bit for bit, as the mean of the two views", "[strong]") {
    Recipe h;
    h.net.in_h = 14;
    h.net.in_w = 12;
    h.net.conv_filters = {3, 4};
    h.net.dense = {8, 5};
    h.net.embed_relu = false;
    h.net.l2_normalize = true;
    Recipe hf = h;
    hf.net.flip_average = true;
    auto plain = make_cpu_backend(h, EngineOptions{});
    auto flip = make_cpu_backend(hf, EngineOptions{});
    const auto params = glorot_init(make_layout(h.net), 3);
    plain->set_params(params);
    flip->set_params(params);
    std::mt19937_64 r(10);
    const int n = 3, elems = h.net.in_h * h.net.in_w, E = 5;
    const auto d = testutil::random_vector(size_t(n) * elems, r, 0, 1);
    const std::vector<float> img(d.begin(), d.end());
    std::vector<float> mir(img.size()), back(img.size());
    mirror_images(mir.data(), img.data(), n, h.net.in_h, h.net.in_w);
    mirror_images(back.data(), mir.data(), n, h.net.in_h, h.net.in_w);
    CHECK(back == img);
    CHECK(mir != img);
    const auto e = flip->embed(img.data(), n), em = flip->embed(mir.data(), n);
    CHECK(e == em);  // (a + b) and (b + a) are the same float
    // The mean of the plain embeddings of both views, re-normalised.
    auto want = plain->embed(img.data(), n);
    const auto pm = plain->embed(mir.data(), n);
    CHECK(testutil::rel_error(want, e) > 1e-3);  // the plain embedding is another vector
    flip_average(want.data(), pm.data(), n, E, true);
    CHECK(want == e);
    for (int i = 0; i < n; ++i) {
        double sq = 0;
        for (int k = 0; k < E; ++k) sq += double(e[size_t(i) * E + k]) * e[size_t(i) * E + k];
        CHECK(std::fabs(sq - 1.0) < 1e-6);  // float unit vectors
    }
    // Saved with the network (and absent from a network without it).
    CHECK(NetConfig::from_json(hf.net.to_json()).flip_average);
    CHECK(h.net.to_json().find("flip_average") == std::string::npos);
}

TEST_CASE("augmentation: zero strengths are the identity, flip mirrors, views differ by slot and step", "[strong]") {
    std::mt19937_64 r(9);
    const int H = 9, W = 7;
    const auto src = testutil::random_vector(size_t(H) * W, r, 0, 1);
    const std::vector<float> bank(src.begin(), src.end());
    const int32_t gather[2] = {0, 0};
    AugmentConfig none;
    none.enabled = true;
    none.shift = none.rotate = none.scale = none.brightness = none.contrast = 0.0f;
    none.flip = false;
    std::vector<float> out(2 * size_t(H) * W);
    augment_images(out.data(), bank.data(), gather, 2, H, W, none, 1, 0);
    for (size_t k = 0; k < size_t(H) * W; ++k) CHECK(std::fabs(out[k] - bank[k]) < 1e-6f);
    // Flip only: some slot/step is mirrored exactly (probability 1/2 each; 8 slots).
    AugmentConfig flip = none;
    flip.flip = true;
    const std::vector<int32_t> g8(8, 0);
    std::vector<float> o8(8 * size_t(H) * W);
    augment_images(o8.data(), bank.data(), g8.data(), 8, H, W, flip, 1, 0);
    int mirrored = 0, same = 0;
    for (int s = 0; s < 8; ++s) {
        bool is_mirror = true, is_same = true;
        for (int y = 0; y < H; ++y)
            for (int x = 0; x < W; ++x) {
                const float v = o8[size_t(s) * H * W + size_t(y) * W + x];
                is_mirror &= std::fabs(v - bank[size_t(y) * W + (W - 1 - x)]) < 1e-5f;
                is_same &= std::fabs(v - bank[size_t(y) * W + x]) < 1e-5f;
            }
        mirrored += is_mirror;
        same += is_same;
    }
    CHECK(mirrored + same == 8);
    CHECK(mirrored > 0);
    CHECK(same > 0);
    // The default jitter: different slots and steps see different views; the same key, the same.
    AugmentConfig c;
    c.enabled = true;
    std::vector<float> a(2 * size_t(H) * W), b(2 * size_t(H) * W), s2(2 * size_t(H) * W);
    augment_images(a.data(), bank.data(), gather, 2, H, W, c, 1, 5);
    augment_images(b.data(), bank.data(), gather, 2, H, W, c, 1, 5);
    augment_images(s2.data(), bank.data(), gather, 2, H, W, c, 1, 6);
    CHECK(a == b);
    CHECK(!std::equal(a.begin(), a.begin() + H * W, a.begin() + H * W));  // slot 0 vs slot 1
    CHECK(a != s2);
}

TEST_CASE("random erasing: a mid-grey rectangle, the rest of the view unchanged, a new one per slot", "[strong]") {
    std::mt19937_64 r(10);
    const int H = 28, W = 23, n = 16;
    const auto src = testutil::random_vector(size_t(H) * W, r, 0, 1);
    const std::vector<float> bank(src.begin(), src.end());
    const std::vector<int32_t> gather(n, 0);
    AugmentConfig plain;
    plain.enabled = true;
    AugmentConfig erased = plain;
    erased.erase = 0.5f;
    std::vector<float> a(size_t(n) * H * W), b(a.size());
    augment_images(a.data(), bank.data(), gather.data(), n, H, W, plain, 3, 7);
    augment_images(b.data(), bank.data(), gather.data(), n, H, W, erased, 3, 7);
    int slots_erased = 0;
    std::set<std::vector<int>> boxes;
    for (int s = 0; s < n; ++s) {
        int x0 = W, x1 = -1, y0 = H, y1 = -1, count = 0;
        for (int y = 0; y < H; ++y)
            for (int x = 0; x < W; ++x) {
                const size_t k = size_t(s) * H * W + size_t(y) * W + x;
                if (b[k] == a[k]) continue;  // outside the rectangle: the very same view
                CHECK(b[k] == 0.5f);
                x0 = std::min(x0, x); x1 = std::max(x1, x); y0 = std::min(y0, y); y1 = std::max(y1, y);
                ++count;
            }
        if (count == 0) continue;
        ++slots_erased;
        // The changed pixels form one rectangle, at most half of each side.
        CHECK(count == (x1 - x0 + 1) * (y1 - y0 + 1));
        CHECK(x1 - x0 + 1 <= W / 2 + 1);
        CHECK(y1 - y0 + 1 <= H / 2 + 1);
        boxes.insert({x0, x1, y0, y1});
    }
    CHECK(slots_erased >= n / 2);
    CHECK(boxes.size() >= size_t(slots_erased) - 1);  // each slot its own draw
}

TEST_CASE("P-K sampler: P different people x K of their images per batch, only training images, seeded", "[strong]") {
    const ImageBank bank = synth_bank(faces(12, 5), Preprocess{4, ResizeMode::Stride});
    const PairSplit split = make_people_pairs(bank, {0, 1, 2, 3, 4, 5, 6, 7}, {8, 9, 10, 11}, 3);
    const GroupSource src = group_source(split);
    for (int32_t i : src.image) CHECK(bank.person[i] < 8);
    const int P = 3, K = 4;
    const GroupOrder o = group_epoch_order(src, P, K, 7, 1);
    const int per = group_batch_images(src, P, K);
    REQUIRE(per == P * K);
    REQUIRE(o.size() == group_batches(src, P, K) * per);
    for (int b = 0; b < o.size() / per; ++b) {
        std::set<int> people;
        for (int k = 0; k < per; ++k) {
            const int at = b * per + k;
            CHECK(o.person[at] == bank.person[o.image[at]]);
            people.insert(o.person[at]);
        }
        CHECK(int(people.size()) == P);
        for (int p : people) CHECK(std::count(o.person.begin() + b * per, o.person.begin() + (b + 1) * per, p) == K);
    }
    CHECK(group_order_checksum(o) == group_order_checksum(group_epoch_order(src, P, K, 7, 1)));
    CHECK(group_order_checksum(o) != group_order_checksum(group_epoch_order(src, P, K, 7, 2)));
    // P above the number of training people is capped.
    CHECK(group_batch_images(src, 50, 2) == 8 * 2);
}

TEST_CASE("cosine schedule: warm-up, decay to zero, and no schedule is the exact lr", "[strong]") {
    OptimizerConfig c;
    c.lr = 1e-3f;
    CHECK(scheduled_lr(c, 1) == c.lr);
    CHECK(scheduled_lr(c, 1000000) == c.lr);
    c.decay_steps = 100;
    c.warmup_steps = 10;
    CHECK(scheduled_lr(c, 1) == Approx(1e-4 * 0.5 * (1 + std::cos(0.0))).epsilon(1e-6));
    CHECK(scheduled_lr(c, 5) < scheduled_lr(c, 10));
    CHECK(scheduled_lr(c, 51) == Approx(0.5e-3).epsilon(1e-5));  // half way: cos(pi/2) = 0
    CHECK(scheduled_lr(c, 100) == 0.0f);
    for (uint64_t t = 11; t < 100; ++t) CHECK(scheduled_lr(c, t + 1) <= scheduled_lr(c, t));
}

TEST_CASE("eigenfaces: full-rank PCA keeps the fit images' distances, and symmetric_eigen diagonalises", "[strong][baselines]") {
    std::vector<double> a = {4, 1, 0, 1, 3, 1, 0, 1, 2}, w, v;
    const std::vector<double> a0 = a;
    symmetric_eigen(a, 3, w, v);
    REQUIRE(w.size() == 3);
    CHECK(w[0] >= w[1]);
    CHECK(w[1] >= w[2]);
    for (int c = 0; c < 3; ++c)  // A v = w v
        for (int i = 0; i < 3; ++i) {
            double s = 0;
            for (int k = 0; k < 3; ++k) s += a0[size_t(i) * 3 + k] * v[size_t(k) * 3 + c];
            CHECK(s == Approx(w[c] * v[size_t(i) * 3 + c]).margin(1e-10));
        }
    const ImageBank bank = synth_bank(faces(6, 3), Preprocess{8, ResizeMode::Stride});
    int k = 0;
    // 3 people x 3 images: 9 fit images span 8 dimensions after the mean: every one kept.
    const std::vector<float> e = eigenface_embeddings(bank, {0, 1, 2}, 50, &k);
    REQUIRE(k == 8);
    const std::vector<float> px = pixel_embeddings(bank);
    const int D = bank.image_elems();
    for (int i = 0; i < 9; ++i)
        for (int j = i + 1; j < 9; ++j) {
            double dp = 0, de = 0;
            for (int d = 0; d < D; ++d) dp += std::pow(double(px[size_t(i) * D + d]) - px[size_t(j) * D + d], 2);
            for (int c = 0; c < k; ++c) de += std::pow(double(e[size_t(i) * k + c]) - e[size_t(j) * k + c], 2);
            CHECK(std::sqrt(de) == Approx(std::sqrt(dp)).epsilon(1e-4));  // float projections of float pixels
        }
}

TEST_CASE("TAR at FAR: the genuine pairs accepted below the threshold that admits the given impostor share", "[metrics]") {
    // 4 genuine at 0.1..0.4, 10 impostors at 0.35, 0.5..1.3: at FAR 0 the threshold stops at
    // 0.35 (three genuine below it); at FAR 10% the impostor at 0.35 is admitted (all four).
    std::vector<float> d = {0.1f, 0.2f, 0.3f, 0.4f, 0.35f};
    std::vector<float> y = {1, 1, 1, 1, 0};
    for (int k = 0; k < 9; ++k) {
        d.push_back(0.5f + 0.1f * k);
        y.push_back(0);
    }
    CHECK(tar_at_far(d, y, 0.0) == Approx(0.75));
    CHECK(tar_at_far(d, y, 0.1) == Approx(1.0));
}

TEST_CASE("cv and train --recipe strong run end to end on tiny generated faces", "[strong][cli]") {
    const std::string dir = testutil::temp_dir("strong");
    REQUIRE(testutil::run_cli("synth --out " + dir + "/faces --people 8 --images 4").status == 0);
    const auto t = testutil::run_cli("train --recipe strong --data " + dir + "/faces --protocol people --test-people 7-8 "
                                     "--epochs 2 --pk-people 3 --pk-images 4 --downsample 4 --device cpu --threads 2 --quiet --out " +
                                     dir + "/run");
    INFO(t.out);
    REQUIRE(t.status == 0);
    const auto v = testutil::run_cli("verify --model " + dir + "/run/model.safetensors " + dir + "/faces/s1/1.pgm " + dir +
                                     "/faces/s1/2.pgm");
    INFO(v.out);
    CHECK(v.status == 0);
    // The model records its head: a linear, L2-normalised embedding (distances at most 2).
    const auto ev = testutil::run_cli("eval --model " + dir + "/run/model.safetensors --data " + dir +
                                      "/faces --people 7-8 --baselines --json");
    INFO(ev.out);
    REQUIRE(ev.status == 0);
    const auto je = nlohmann::json::parse(ev.out.substr(ev.out.find('{')));
    CHECK(je["baselines"]["pixels"]["auc"].get<double>() > 0.0);
    CHECK(je["baselines"]["eigenfaces"]["auc"].get<double>() > 0.0);  // fit on people 1-6
    const auto cv = testutil::run_cli("cv --recipe strong --data " + dir + "/faces --folds 2 --epochs 1 --pk-people 3 "
                                      "--pk-images 4 --downsample 4 --device cpu --threads 2 --json");
    INFO(cv.out);
    REQUIRE(cv.status == 0);
    const auto j = nlohmann::json::parse(cv.out.substr(cv.out.find('{')));
    REQUIRE(j["folds"].size() == 2);
    for (const char* m : {"learned", "pixels", "eigenfaces"}) {
        INFO(m);
        CHECK(j["folds"][0].contains(m));
        CHECK(j["mean"][m]["auc"].get<double>() > 0.0);
    }
    CHECK(j["recipe"]["sampler"] == "pk");
    // The printed table: each column's name stands over its values ("0.9697 +- 0.0108").
    const auto cvt = testutil::run_cli("cv --recipe strong --data " + dir + "/faces --folds 2 --epochs 1 --pk-people 3 "
                                       "--pk-images 4 --downsample 4 --device cpu --threads 2");
    INFO(cvt.out);
    REQUIRE(cvt.status == 0);
    const auto line_at = [&](const std::string& start) {
        const size_t at = cvt.out.find("\n" + start);
        REQUIRE(at != std::string::npos);
        return cvt.out.substr(at + 1, cvt.out.find('\n', at + 1) - at - 1);
    };
    const std::string header = line_at("method "), learned = line_at("learned ");
    size_t value = 0;
    for (const char* column : {"AUC", "EER", "TAR@FAR1%", "one-shot", "rank-1", "DIR@FAR1%"}) {
        INFO(column);
        value = learned.find(" +- ", value + 1);
        REQUIRE(value != std::string::npos);
        CHECK(header.find(column) == value - 6);  // a value starts 6 characters before its " +- "
    }
    CHECK(cvt.out.find("1 epoch, device cpu") != std::string::npos);
    // --val-people: that many training people a fold, held out, scored as "validation".
    const auto cvv = testutil::run_cli("cv --recipe strong --data " + dir + "/faces --folds 2 --epochs 1 --pk-people 3 "
                                       "--pk-images 4 --downsample 4 --device cpu --threads 2 --no-baselines --val-people 2 --json");
    INFO(cvv.out);
    REQUIRE(cvv.status == 0);
    const auto jv = nlohmann::json::parse(cvv.out.substr(cvv.out.find('{')));
    for (const auto& f : jv["folds"]) {
        REQUIRE(f["validation_people"].size() == 2);
        const std::string test = f["test_people"];  // "1-4" or "5-8"
        const int lo = std::stoi(test), hi = std::stoi(test.substr(test.find('-') + 1));
        for (int p : f["validation_people"]) CHECK((p < lo || p > hi));  // never a test person
        CHECK(f["validation_people"][0] != f["validation_people"][1]);
        CHECK(f["validation"]["test"]["pairs"] == 28);  // 2 people x 4 images: 8*7/2 pairs
    }
    CHECK(jv["mean"]["validation"]["auc"].get<double>() > 0.0);
    CHECK(testutil::run_cli("cv --data " + dir + "/faces --folds 2 --val-people 3").status == 2);  // 4 - 3 < 2 to train on
    const auto nine = testutil::run_cli("cv --data " + dir + "/faces --folds 9");
    CHECK(nine.status == 2);  // 8 people: at most 4 folds
    CHECK(nine.out.find("must be 2..4 for 8 people") != std::string::npos);
    // Under 4 people no fold count works: say so, not "must be 2..1".
    REQUIRE(testutil::run_cli("synth --out " + dir + "/three --people 3 --images 2").status == 0);
    const auto three = testutil::run_cli("cv --data " + dir + "/three --folds 2");
    CHECK(three.status == 2);
    CHECK(three.out.find("3 people; cross-validation needs at least 4") != std::string::npos);
    CHECK(testutil::run_cli("train --sampler pairs --augment true --epochs 1 --out " + dir + "/x").status == 2);
}

TEST_CASE("a strong (P-K, augmented) run killed mid-epoch resumes to a bit-identical model, on any thread count", "[strong][resume]") {
    const std::string dir = testutil::temp_dir("strong_resume");
    REQUIRE(testutil::run_cli("synth --out " + dir + "/faces --people 6 --images 4").status == 0);
    // 4 training people x 4 images, P-K 3 x 4: 2 batches an epoch. Checkpoints every step; the
    // kill comes in step 4's progress callback, before its checkpoint: the last one is step 3,
    // mid-epoch 2.
    const std::string common = "train --recipe strong --data " + dir + "/faces --protocol people --test-people 5-6 "
                               "--epochs 3 --pk-people 3 --pk-images 4 --downsample 4 --checkpoint-every 1 --device cpu --quiet ";
    REQUIRE(testutil::run_cli(common + "--threads 2 --out " + dir + "/full").status == 0);
    CHECK(testutil::run_cli(common + "--threads 1 --out " + dir + "/part --crash-after-steps 4").status == 128 + 9);
    const TrainState st = load_train_state(dir + "/part/state.safetensors");
    CHECK(st.progress.step == 3);
    CHECK(st.progress.next_batch == 1);
    const auto resumed = testutil::run_cli("train --resume " + dir + "/part --device cpu --quiet --threads 1");
    INFO(resumed.out);
    REQUIRE(resumed.status == 0);
    CHECK(read_file_bytes(dir + "/part/model.safetensors") == read_file_bytes(dir + "/full/model.safetensors"));
}
