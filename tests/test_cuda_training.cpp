// The CUDA engine as a whole: a training step against the CPU reference, determinism, graphs
// against eager launches, and the clear error where no device exists.
#include <cstring>

#include "cuda_test_util.hpp"
#include "siamese/synth.hpp"
#include "siamese/trainer.hpp"
#include "test_util.hpp"

using namespace siamese;

namespace {

struct Setup {
    ImageBank bank;
    PairSplit split;
    Setup() {
        SynthOptions so;
        so.people = 8;
        so.images = 5;
        bank = synth_bank(so, Preprocess{});
        split = make_tutorial_pairs(bank, 2, 40, 30);
    }
};

std::vector<float> run_steps(Backend& be, const Setup& s, int steps, int batch, uint64_t seed) {
    be.upload_images(s.bank);
    TrainHyper h;
    be.set_params(glorot_init(make_layout(h.net), seed));
    const PairSet order = epoch_order(s.split.train, seed, 1);
    be.begin_epoch(order);
    for (int k = 0; k < steps; ++k) be.train_batch(k * batch, batch, uint64_t(k));
    be.batch_losses();
    return be.params();
}

TrainHyper hyper(uint64_t seed) {
    TrainHyper h;
    h.seed = seed;
    return h;
}

}  // namespace

TEST_CASE("asking for the CUDA engine without a device fails with a clear message", "[cuda][device]") {
    std::string why;
    if (cuda_device_available(&why)) {
        std::printf("SKIPPED: a CUDA device is present; this case checks the message where none is\n");
        return;
    }
    try {
        make_cuda_backend(TrainHyper{});
        FAIL("no error without a device");
    } catch (const DataError& e) {
        CHECK(std::string(e.what()).find("no CUDA device") != std::string::npos);
    }
}

TEST_CASE("three CUDA training steps match the CPU reference, every parameter", "[cuda][training]") {
    SKIP_WITHOUT_CUDA();
    const Setup s;
    for (const char* conv : {"custom", "cudnn"}) {
        INFO(conv);
        TrainHyper h = hyper(11);
        h.conv = conv;
        auto cpu = make_cpu_backend(h, 0);
        auto gpu = make_cuda_backend(h);
        const auto pc = run_steps(*cpu, s, 3, 16, 11);
        const auto pg = run_steps(*gpu, s, 3, 16, 11);
        REQUIRE(cudatest::all_finite(pg));
        // Per tensor: fp32 on both sides, different summation orders; RMSprop divides by
        // sqrt(v), so early steps amplify tiny gradient differences: 1e-3 relative.
        const ParamLayout L = make_layout(h.net);
        for (const auto& t : L.tensors) {
            INFO(t.name);
            const std::vector<float> a(pg.begin() + long(t.offset), pg.begin() + long(t.offset + t.size));
            const std::vector<float> b(pc.begin() + long(t.offset), pc.begin() + long(t.offset + t.size));
            CHECK(testutil::rel_error(a, b) < 1e-3);
        }
    }
}

TEST_CASE("CUDA training is deterministic: bit-identical after 50 steps and graphs equal eager launches", "[cuda][training][determinism]") {
    SKIP_WITHOUT_CUDA();
    const Setup s;
    TrainHyper h = hyper(12);
    auto g1 = make_cuda_backend(h);
    auto g2 = make_cuda_backend(h);
    h.graphs = false;
    auto eager = make_cuda_backend(h);
    const auto p1 = run_steps(*g1, s, 50, 8, 12);
    const auto p2 = run_steps(*g2, s, 50, 8, 12);
    const auto p3 = run_steps(*eager, s, 50, 8, 12);
    CHECK(std::memcmp(p1.data(), p2.data(), p1.size() * sizeof(float)) == 0);
    CHECK(std::memcmp(p1.data(), p3.data(), p1.size() * sizeof(float)) == 0);
}

TEST_CASE("CUDA embeddings and pair distances match the CPU's", "[cuda][eval]") {
    SKIP_WITHOUT_CUDA();
    const Setup s;
    TrainHyper h = hyper(13);
    auto cpu = make_cpu_backend(h, 0);
    auto gpu = make_cuda_backend(h);
    for (Backend* be : {cpu.get(), gpu.get()}) {
        be->upload_images(s.bank);
        be->set_params(glorot_init(make_layout(h.net), 13));
    }
    CHECK(testutil::rel_error(gpu->embed_bank(), cpu->embed_bank()) < 1e-5);
    const auto dg = gpu->bank_pair_distances(s.split.test), dc = cpu->bank_pair_distances(s.split.test);
    REQUIRE(dg.size() == size_t(s.split.test.size()));
    CHECK(cudatest::all_finite(dg));
    CHECK(testutil::rel_error(dg, dc) < 1e-5);
}
