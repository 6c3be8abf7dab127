// The strong recipe's CUDA kernels against the CPU reference in double (outputs poisoned first),
// and P-K training steps of the CUDA engine against the CPU engine: the gradient of the first
// step, bit-identical repeats, graphs equal to eager launches across epoch ends.
#include <array>
#include <cmath>
#include <cstring>
#include <random>

#include "cuda_test_util.hpp"
#include "tensor_check.hpp"
#include "kernels.hpp"
#include "cpu/augment.hpp"
#include "cpu/batch_loss.hpp"
#include "cpu/embed_head.hpp"
#include "siamese/synth.hpp"
#include "siamese/trainer.hpp"
#include "test_util.hpp"

using namespace siamese;
using namespace siamese::cuda;
using cudatest::poisoned;
using cudatest::device_state;
using cudatest::to_device;

namespace {


}  // namespace

TEST_CASE("L2 head kernels match the CPU reference", "[cuda][strong]") {
    SKIP_WITHOUT_CUDA();
    std::mt19937_64 r(31);
    for (auto [n, E] : std::vector<std::pair<int, int>>{{1, 50}, {3, 7}, {257, 128}, {128, 33}}) {
        INFO("n " << n << " E " << E);
        auto e = testutil::random_vector(size_t(n) * E, r);
        const auto dz = testutil::random_vector(e.size(), r);
        std::vector<double> z(e.size()), norm(n), de(e.size());
        l2_normalize_forward(z.data(), norm.data(), e.data(), n, E);
        l2_normalize_backward(de.data(), dz.data(), z.data(), norm.data(), n, E);
        auto d_e = to_device<float>(e), d_dz = to_device<float>(dz);
        auto d_z = poisoned<float>(e.size()), d_norm = poisoned<float>(n);
        l2_normalize_forward(d_z.get(), d_norm.get(), d_e.get(), n, E, nullptr);
        l2_normalize_backward(d_dz.get(), d_dz.get(), d_z.get(), d_norm.get(), n, E, nullptr);  // in place, as the engine does
        CUDA_CHECK(cudaDeviceSynchronize());
        // fp32 sums of up to 128 squares: ~1e-7 relative.
        CHECK(testutil::rel_error(d_z.download(), z) < 1e-6);
        CHECK(testutil::rel_error(d_norm.download(), norm) < 1e-6);
        CHECK(testutil::rel_error(d_dz.download(), de) < 1e-5);
    }
}

TEST_CASE("in-batch contrastive loss kernel matches the CPU reference", "[cuda][strong]") {
    SKIP_WITHOUT_CUDA();
    std::mt19937_64 r(32);
    for (Mining m : {Mining::All, Mining::Balanced})
        for (auto [n, E] : std::vector<std::pair<int, int>>{{2, 5}, {5, 50}, {128, 50}, {257, 17}}) {
            INFO("mining " << int(m) << " n " << n << " E " << E);
            // The ids sit at an offset in the epoch's order (st->first), as in training.
            const int first = 7;
            std::vector<int> ids(first + n, -1);
            for (int i = 0; i < n; ++i) ids[first + i] = (i / 4) % 40;  // K = 4 images a person
            // Unit-ish embeddings so both hinge branches occur at margin 0.5.
            const auto emb = testutil::random_vector(size_t(n) * E, r, -0.3, 0.3);
            std::vector<double> g(emb.size());
            const double loss = batch_contrastive_loss<double>(g.data(), emb.data(), ids.data() + first, n, E, 0.5, m);
            auto d_emb = to_device<float>(emb);
            auto d_ids = to_device<int>(ids);
            const size_t scratch = batch_loss_scratch_elems(n);
            auto d_g = poisoned<float>(emb.size()), d_losses = poisoned<float>(4), d_rows = poisoned<float>(scratch);
            DeviceBuffer<StepState> st;
            batch_contrastive_loss(d_g.get(), d_losses.get(), d_emb.get(), d_ids.get(), n, E, 0.5f, m, d_rows.get(), scratch,
                                   device_state(st, first, 2, 0), nullptr);
            CUDA_CHECK(cudaDeviceSynchronize());
            // fp32 over n^2/2 pair terms in another order: 1e-5 relative.
            CHECK(double(d_losses.download()[2]) == Approx(loss).epsilon(1e-5));
            CHECK(testutil::rel_error(d_g.download(), g) < 1e-5);
        }
}

TEST_CASE("in-batch softmax loss kernel matches the CPU reference", "[cuda][strong]") {
    SKIP_WITHOUT_CUDA();
    std::mt19937_64 r(34);
    for (double t : {0.05, 1.0})
        for (auto [n, E] : std::vector<std::pair<int, int>>{{2, 5}, {5, 50}, {128, 50}, {257, 17}}) {
            INFO("temperature " << t << " n " << n << " E " << E);
            const int first = 7;
            std::vector<int> ids(first + n, -1);
            for (int i = 0; i < n; ++i) ids[first + i] = (i / 4) % 40;  // K = 4 images a person
            ids[first + n - 1] = 1000;                                  // one image without a partner
            // Unit-scale rows (as the L2 head gives): logits up to 1/t.
            auto emb = testutil::random_vector(size_t(n) * E, r, -1.0, 1.0);
            for (int i = 0; i < n; ++i) {
                double s = 0;
                for (int k = 0; k < E; ++k) s += emb[size_t(i) * E + k] * emb[size_t(i) * E + k];
                for (int k = 0; k < E; ++k) emb[size_t(i) * E + k] /= std::sqrt(s);
            }
            std::vector<double> g(emb.size());
            const double loss = batch_softmax_loss<double>(g.data(), emb.data(), ids.data() + first, n, E, t);
            auto d_emb = to_device<float>(emb);
            auto d_ids = to_device<int>(ids);
            const size_t scratch = batch_loss_scratch_elems(n);
            auto d_g = poisoned<float>(emb.size()), d_losses = poisoned<float>(4), d_scratch = poisoned<float>(scratch);
            DeviceBuffer<StepState> st;
            batch_softmax_loss(d_g.get(), d_losses.get(), d_emb.get(), d_ids.get(), n, E, float(t), d_scratch.get(), scratch,
                               device_state(st, first, 2, 0), nullptr);
            CUDA_CHECK(cudaDeviceSynchronize());
            // fp32 logits up to 1/t = 20 go through exp: an ulp of a logit (~1e-6 at 20) is
            // ~2e-6 relative in the softmax; sums over n in another order: 1e-4 relative.
            CHECK(double(d_losses.download()[2]) == Approx(loss).epsilon(1e-4));
            CHECK(testutil::rel_error(d_g.download(), g) < 1e-4);
        }
}

TEST_CASE("flip-averaging kernels (mirror, mean of the views) match the CPU reference", "[cuda][strong]") {
    SKIP_WITHOUT_CUDA();
    std::mt19937_64 r(35);
    for (auto [n, H, W, E] : std::vector<std::array<int, 4>>{{1, 3, 1, 1}, {5, 56, 46, 50}, {513, 9, 7, 33}}) {
        INFO("n " << n << " H " << H << " W " << W << " E " << E);
        auto img = testutil::random_vector(size_t(n) * H * W, r, 0, 1);
        for (double& v : img) v = double(float(v));  // float values, so that the copy compares exactly
        std::vector<double> mir(img.size());
        mirror_images(mir.data(), img.data(), n, H, W);
        auto d_img = to_device<float>(img);
        auto d_mir = poisoned<float>(img.size());
        mirror_images(d_mir.get(), d_img.get(), n, H, W, nullptr);
        for (bool l2 : {false, true}) {
            INFO("l2 " << l2);
            auto a = testutil::random_vector(size_t(n) * E, r);
            const auto b = testutil::random_vector(a.size(), r);
            auto d_a = to_device<float>(a), d_b = to_device<float>(b);
            flip_average(a.data(), b.data(), n, E, l2);
            flip_average(d_a.get(), d_b.get(), n, E, l2, nullptr);
            CUDA_CHECK(cudaDeviceSynchronize());
            CHECK(testutil::rel_error(d_a.download(), a) < 1e-6);  // fp32 sums of E squares: ~1e-7
        }
        CHECK(testutil::rel_error(d_mir.download(), mir) == 0.0);  // a copy: exact
    }
}

TEST_CASE("augmentation kernel matches the CPU reference", "[cuda][strong]") {
    SKIP_WITHOUT_CUDA();
    std::mt19937_64 r(33);
    const int H = 56, W = 46, images = 10, n = 13, first = 3;
    const auto bank = testutil::random_vector(size_t(images) * H * W, r, 0, 1);
    const std::vector<float> bankf(bank.begin(), bank.end());
    std::vector<int> order(first + n);
    for (auto& v : order) v = int(r() % images);
    auto d_bank = to_device<float>(bank);
    auto d_order = to_device<int>(order);
    for (float erase : {0.0f, 0.4f}) {  // without and with random erasing
        INFO("erase " << erase);
        AugmentConfig c;
        c.enabled = true;
        c.erase = erase;
        std::vector<float> ref(size_t(n) * H * W);
        augment_images(ref.data(), bankf.data(), order.data() + first, n, H, W, c, 9, 4);
        auto d_out = poisoned<float>(ref.size());
        DeviceBuffer<StepState> st;
        augment_images(d_out.get(), d_bank.get(), d_order.get(), n, H, W, c, 9, device_state(st, first, 0, 4), nullptr);
        CUDA_CHECK(cudaDeviceSynchronize());
        // Same float rule on both sides; FMA contraction and sincosf differ by an ulp or two, which
        // bilinear weights turn into ~1e-6 of a pixel (the erased rectangle's bounds are computed
        // without transcendentals, so both sides erase the same pixels).
        CHECK(testutil::rel_error(d_out.download(), ref) < 1e-5);
    }
}

namespace {

struct PkSetup {
    ImageBank bank;
    PairSplit split;
    GroupSource src;
    PkSetup() {
        SynthOptions so;
        so.people = 10;
        so.images = 6;
        bank = synth_bank(so, Preprocess{});
        split = make_people_pairs(bank, {0, 1, 2, 3, 4, 5, 6, 7}, {8, 9}, 4, 20);
        src = group_source(split);
    }
};

Recipe strong_recipe(uint64_t seed, bool augment) {
    Recipe h;
    h.seed = seed;
    h.net.embed_relu = false;
    h.net.l2_normalize = true;
    h.net.conv_dropout = 0.0f;
    h.net.dense_dropout = 0.0f;
    h.opt.kind = OptKind::Adam;
    h.opt.decay_steps = 20;
    h.opt.warmup_steps = 2;
    h.margin = 0.5f;
    h.sampler = Recipe::Sampler::PK;
    h.P = 3;
    h.K = 4;
    h.augment.enabled = augment;
    return h;
}

// `steps` P-K steps walking through epochs (the engine's group path).
std::vector<float> run_group_steps(Backend& be, const PkSetup& s, const Recipe& h, int steps) {
    be.upload_images(s.bank);
    be.set_params(glorot_init(be.layout(), h.seed));
    const int per = group_batch_images(s.src, h.P, h.K);
    int epoch = 1, first = 0, size = 0;
    for (int k = 0; k < steps; ++k) {
        if (first >= size) {
            if (k > 0) {
                be.batch_losses();
                be.embed_bank();  // validation between epochs, as in training
            }
            const GroupOrder o = group_epoch_order(s.src, h.P, h.K, h.seed, epoch++);
            be.begin_epoch_groups(o);
            size = o.size();
            first = 0;
        }
        be.train_group(first, per, uint64_t(k));
        first += per;
    }
    be.batch_losses();
    return be.params();
}

}  // namespace

TEST_CASE("P-K CUDA steps (augmented, L2 head) match the CPU: first gradient, then determinism and graphs", "[cuda][strong][training]") {
    SKIP_WITHOUT_CUDA();
    const PkSetup s;
    // Contrastive without and with augmentation, then the softmax loss (augmented), on cuBLAS and
    // (variant 3) on the custom dense products (--gemm custom).
    for (int variant : {0, 1, 2, 3}) {
        const bool augment = variant > 0;
        INFO("augment " << augment << " softmax " << (variant >= 2) << " custom gemm " << (variant == 3));
        Recipe h = strong_recipe(21, augment);
        if (variant >= 2) h.loss = BatchLoss::Softmax;
        EngineOptions base;
        base.custom_gemm = variant == 3;
        auto cpu = make_cpu_backend(h, EngineOptions{});
        auto gpu = make_cuda_backend(h, base);
        run_group_steps(*cpu, s, h, 1);
        run_group_steps(*gpu, s, h, 1);
        const auto gc = cpu->last_gradient(), gg = gpu->last_gradient();
        REQUIRE(cudatest::all_finite(gg));
        testutil::check_per_tensor(make_layout(h.net), gg, gc, 1e-4);  // fp32, different summation orders
        // 9 steps cross epoch ends (2 batches an epoch here): graphs twice, and eager.
        EngineOptions eager = base;
        eager.graphs = false;
        auto g1 = make_cuda_backend(h, base);
        auto g2 = make_cuda_backend(h, base);
        auto g3 = make_cuda_backend(h, eager);
        const auto p1 = run_group_steps(*g1, s, h, 9), p2 = run_group_steps(*g2, s, h, 9), p3 = run_group_steps(*g3, s, h, 9);
        CHECK(std::memcmp(p1.data(), p2.data(), p1.size() * sizeof(float)) == 0);
        CHECK(std::memcmp(p1.data(), p3.data(), p1.size() * sizeof(float)) == 0);
        // And near the CPU after 9 Adam steps (Adam's first steps amplify tiny differences).
        const auto pc = run_group_steps(*cpu, s, h, 9);
        CHECK(testutil::rel_error(p1, pc) < 1e-3);
    }
}

TEST_CASE("a whole P-K epoch replayed as one graph gives the bits of its calls made one by one", "[cuda][strong][training][epoch]") {
    // train_epoch_groups with graphs (epoch 1: the separate calls; 2: captured; 3: replayed with a
    // new order copied in; 4: new validation pairs, the calls again; 5: captured again) against
    // the same epochs without graphs: losses, validation distances and weights, bit for bit.
    SKIP_WITHOUT_CUDA();
    const PkSetup s;
    for (bool augment : {false, true}) {
        INFO("augment " << augment);
        Recipe h = strong_recipe(25, augment);
        h.net.flip_average = augment;  // the validation's mirror view in the graph too
        EngineOptions no_graphs;
        no_graphs.graphs = false;
        auto graph = make_cuda_backend(h, EngineOptions{});
        auto eager = make_cuda_backend(h, no_graphs);
        const std::vector<float> init = glorot_init(graph->layout(), 25);
        for (auto* be : {graph.get(), eager.get()}) {
            be->upload_images(s.bank);
            be->set_params(init);
        }
        const int per = group_batch_images(s.src, h.P, h.K);
        uint64_t step = 0;
        for (int epoch = 1; epoch <= 5; ++epoch) {
            INFO("epoch " << epoch);
            const GroupOrder order = group_epoch_order(s.src, h.P, h.K, h.seed, epoch);
            const PairSet& val = epoch < 4 ? s.split.val : s.split.test;
            const auto g = graph->train_epoch_groups(order, per, step, val);
            const auto e = eager->train_epoch_groups(order, per, step, val);
            step += uint64_t(order.size() / per);
            cudatest::check_same_epoch(g, e, size_t(order.size() / per), size_t(val.size()));
        }
        CHECK(graph->epochs_as_graph() == 3);  // epochs 2, 3 and 5
        const auto pg = graph->params(), pe = eager->params();
        CHECK(std::memcmp(pg.data(), pe.data(), pg.size() * sizeof(float)) == 0);
    }
}

TEST_CASE("a P-K epoch on an FP16 bank gives the bits of an FP32 bank holding its rounded values", "[cuda][strong][training][half]") {
    // --half-bank with the strong recipe's readers of the bank: the augment kernel (or conv1
    // through the gather), and the validation's flip view (the mirror kernel), in epoch graphs.
    SKIP_WITHOUT_CUDA();
    const PkSetup s;
    const ImageBank rounded = half_rounded(s.bank);
    REQUIRE(rounded.pixels != s.bank.pixels);
    for (bool augment : {false, true}) {
        INFO("augment " << augment);
        Recipe h = strong_recipe(26, augment);
        h.net.flip_average = true;
        EngineOptions half;
        half.half_bank = true;
        auto a = make_cuda_backend(h, half);
        auto b = make_cuda_backend(h, EngineOptions{});
        const std::vector<float> init = glorot_init(a->layout(), 26);
        a->upload_images(s.bank);
        b->upload_images(rounded);
        for (auto* be : {a.get(), b.get()}) be->set_params(init);
        const int per = group_batch_images(s.src, h.P, h.K);
        uint64_t step = 0;
        for (int epoch = 1; epoch <= 3; ++epoch) {
            INFO("epoch " << epoch);
            const GroupOrder order = group_epoch_order(s.src, h.P, h.K, h.seed, epoch);
            const auto ga = a->train_epoch_groups(order, per, step, s.split.val);
            const auto gb = b->train_epoch_groups(order, per, step, s.split.val);
            step += uint64_t(order.size() / per);
            cudatest::check_same_epoch(ga, gb, size_t(order.size() / per), size_t(s.split.val.size()));
        }
        const auto pa = a->params(), pb = b->params();
        CHECK(std::memcmp(pa.data(), pb.data(), pa.size() * sizeof(float)) == 0);
        const auto ea = a->embed_bank(), eb = b->embed_bank();
        CHECK(std::memcmp(ea.data(), eb.data(), ea.size() * sizeof(float)) == 0);
    }
}
