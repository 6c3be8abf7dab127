// End-to-end CPU training: built-in data and (when present) the real ORL faces; determinism.
#include <catch2/catch.hpp>
#include <cstring>
#include <stdexcept>

#include "siamese/backend.hpp"
#include "siamese/files.hpp"
#include "siamese/dataset.hpp"
#include "siamese/synth.hpp"
#include "siamese/pgm.hpp"
#include "siamese/run.hpp"
#include "siamese/trainer.hpp"
#include "test_util.hpp"

#include <filesystem>

using namespace siamese;

namespace {
// A small bank (6 people x 5 generated images) and its tutorial pairs: quick to train on.
struct Small {
    ImageBank bank;
    PairSplit split;
    Small() {
        SynthOptions so;
        so.people = 6;
        so.images = 5;
        bank = synth_bank(so, Preprocess{});
        split = make_tutorial_pairs(bank, 2, 30, 20);
    }
};

struct Outcome {
    TrainResult result;
    TestReport report;
    std::vector<float> params;
};

Outcome train_and_test(const ImageBank& bank, const PairSplit& split, int epochs, uint64_t seed, int threads,
                       const std::vector<int>& oneshot = {}) {
    Recipe h;
    h.net.in_h = bank.height;
    h.net.in_w = bank.width;
    h.seed = seed;
    h.epochs = epochs;
    EngineOptions e;
    e.threads = threads;
    auto be = make_cpu_backend(h, e);
    be->upload_images(bank);
    be->set_params(glorot_init(make_layout(h.net), seed));
    Outcome out;
    out.result = train_model(*be, split, h, TrainOptions{}, {});
    out.report = evaluate_model(*be, bank, split.test, out.result.threshold, oneshot, seed);
    out.params = be->params();
    return out;
}
}  // namespace

TEST_CASE("built-in data: the loss falls and unseen people are told apart", "[training]") {
    const ImageBank bank = synth_bank(SynthOptions{}, Preprocess{});
    std::vector<int> train, test;
    for (int p = 0; p < 40; ++p) (p < 30 ? train : test).push_back(p);
    const PairSplit split = make_people_pairs(bank, train, test, 1);
    const Outcome o = train_and_test(bank, split, 3, 1, 0, test);
    INFO("AUC " << o.report.auc << " one-shot " << o.report.oneshot_accuracy);
    CHECK(o.result.epochs.back().train_loss < 0.8 * o.result.epochs.front().train_loss);
    // Learnable (well above chance 0.5 / 0.1) but not trivial (below perfect).
    CHECK(o.report.auc > 0.75);
    CHECK(o.report.auc < 0.999);
    CHECK(o.report.oneshot_accuracy > 0.3);
}

TEST_CASE("real ORL faces: the reference recipe learns (3 epochs)", "[training][orl]") {
    const std::string dir = testutil::find_orl_dir(SIAMESE_SOURCE_DIR);
    if (dir.empty()) {
        std::printf("SKIPPED: ORL faces not found (set SIAMESE_ORL_DIR or put them in ../shared/data/orl_faces)\n");
        return;
    }
    const ImageBank bank = load_dataset(dir, Preprocess{});
    REQUIRE(bank.size() == 400);
    const Outcome o = train_and_test(bank, make_tutorial_pairs(bank, 1), 3, 1, 0);
    INFO("AUC " << o.report.auc << " acc@thr " << o.report.accuracy_at_threshold);
    CHECK(o.result.epochs.back().train_loss < 0.6 * o.result.epochs.front().train_loss);
    CHECK(o.report.auc > 0.97);
    CHECK(o.report.accuracy_at_threshold > 0.9);
}

TEST_CASE("same seed: bit-identical weights for any thread count", "[training][determinism]") {
    SynthOptions so;
    so.people = 6;
    so.images = 4;
    const ImageBank bank = synth_bank(so, Preprocess{});
    const PairSplit split = make_tutorial_pairs(bank, 3, 20, 10);
    const Outcome a = train_and_test(bank, split, 2, 5, 1);
    const Outcome b = train_and_test(bank, split, 2, 5, 2);
    const Outcome c = train_and_test(bank, split, 2, 6, 2);
    CHECK(a.params == b.params);
    CHECK(a.params != c.params);
}

TEST_CASE("train_batch refuses a range beyond the epoch's pairs (every backend checks it)", "[training]") {
    // The range check lives in Backend itself, so the CUDA engine (whose kernels would read past
    // the device copy of the order) gets the same refusal; shown here on the CPU backend.
    SynthOptions so;
    so.people = 4;
    so.images = 3;
    const ImageBank bank = synth_bank(so, Preprocess{});
    const PairSplit split = make_tutorial_pairs(bank, 3, 5, 4);
    Recipe h;
    EngineOptions e;
    e.threads = 1;
    auto be = make_cpu_backend(h, e);
    be->upload_images(bank);
    be->set_params(glorot_init(make_layout(h.net), 1));
    CHECK_THROWS_AS(be->train_batch(0, 1, 0), std::logic_error);  // before any epoch
    const PairSet order = epoch_order(split.train, 1, 1);
    const int n = order.size();
    REQUIRE(n > 3);
    be->begin_epoch(order);
    CHECK_THROWS_AS(be->train_batch(n - 2, 3, 0), std::logic_error);
    CHECK_THROWS_AS(be->train_batch(-1, 2, 0), std::logic_error);
    CHECK_THROWS_AS(be->train_batch(0, 0, 0), std::logic_error);
    CHECK_NOTHROW(be->train_batch(n - 3, 3, 0));  // the exact end is fine
    CHECK(be->batch_losses().size() == 1);
}

TEST_CASE("a whole training run is one library call, observed as it goes", "[training][run]") {
    SynthOptions so;
    so.people = 4;
    so.images = 3;
    const std::string dir = testutil::temp_dir("run_call");
    write_synth(dir + "/faces", so);
    RunSpec spec;
    spec.recipe.data = dir + "/faces";
    spec.recipe.protocol = "people";
    spec.recipe.test_people = "3-4";
    spec.recipe.epochs = 2;
    spec.recipe.downsample = 4;  // 28 x 23: the run's course is what is checked, not the image size
    spec.engine.device = "cpu";
    spec.engine.threads = 1;
    spec.out = dir + "/run";
    struct Seen : RunObserver {
        RunStart start;
        int epochs = 0, batches = 0, evaluations = 0;
        void started(const RunStart& s) override { start = s; }
        void batch(int, int, int) override { ++batches; }
        void epoch(const EpochStats& s) override { epochs = s.epoch; }
        void evaluated(const RunOutcome&) override { ++evaluations; }
    } seen;
    const RunOutcome o = run_training(spec, seen);
    CHECK(seen.start.people == 4);
    CHECK(seen.start.device == "cpu");
    CHECK(seen.epochs == 2);
    CHECK(seen.batches == 2 * ((seen.start.train_pairs + 127) / 128));
    CHECK(seen.evaluations == 1);
    CHECK(o.identified);
    CHECK(o.test.auc > 0.5);
    for (const char* f : {"model.safetensors", "summary.json", "metrics.jsonl", "state.safetensors", "report.html"})
        CHECK(std::filesystem::exists(dir + "/run/" + f));
    // The same spec again: the same model, bit for bit.
    spec.out = dir + "/run2";
    RunObserver quiet;
    run_training(spec, quiet);
    CHECK(siamese::read_file_bytes(dir + "/run/model.safetensors") == siamese::read_file_bytes(dir + "/run2/model.safetensors"));
}

TEST_CASE("train_run gives the bits of its batches one by one, a short last batch included", "[training][run]") {
    // The CUDA engine replays a run as one graph; every engine must give the same results as
    // the steps taken one at a time. Checked here on the CPU engine (the base class's split into
    // full batches and the remainder, the step numbers); [cuda] tests check the graph.
    const Small small;
    const ImageBank& bank = small.bank;
    const PairSplit& split = small.split;
    Recipe h;
    h.seed = 4;
    const int n = int(split.train.size()), per = 16, batches = (n + per - 1) / per;
    REQUIRE(n % per != 0);  // a short last batch
    auto one = make_cpu_backend(h, EngineOptions{});
    auto run = make_cpu_backend(h, EngineOptions{});
    const std::vector<float> init = glorot_init(one->layout(), 4);
    for (auto* be : {one.get(), run.get()}) {
        be->upload_images(bank);
        be->set_params(init);
        be->begin_epoch(epoch_order(split.train, 4, 1));
    }
    for (int b = 0; b < batches; ++b) one->train_batch(b * per, std::min(per, n - b * per), uint64_t(7 + b));
    run->train_run(false, 0, per, 2, 7);  // two full batches
    run->train_run(false, 2 * per, per, batches - 2, 9);  // the rest, with the short one
    const auto p1 = one->params(), p2 = run->params();
    CHECK(std::memcmp(p1.data(), p2.data(), p1.size() * sizeof(float)) == 0);
    CHECK(one->batch_losses() == run->batch_losses());
    // A run past the epoch's end is refused like a batch.
    CHECK_THROWS_AS(run->train_run(false, n, per, 1, 0), std::logic_error);
    CHECK_THROWS_AS(run->train_run(false, 0, per, 0, 0), std::logic_error);
}

namespace {
// The CPU engine behind an engine that, like the CUDA one with graphs, asks for whole runs: the
// trainer then takes its whole-epoch path (train_epoch), whose calls this counts.
class WholeEpochs : public Backend {
public:
    explicit WholeEpochs(std::unique_ptr<Backend> inner) : in_(std::move(inner)) {}
    std::string name() const override { return "whole epochs over " + in_->name(); }
    const ParamLayout& layout() const override { return in_->layout(); }
    const NetConfig& net_config() const override { return in_->net_config(); }
    void set_params(const std::vector<float>& p) override { in_->set_params(p); }
    std::vector<float> params() override { return in_->params(); }
    std::vector<float> opt_state() override { return in_->opt_state(); }
    std::vector<float> last_gradient() override { return in_->last_gradient(); }
    void set_opt_state(const std::vector<float>& s) override { in_->set_opt_state(s); }
    std::vector<float> batch_losses() override { return in_->batch_losses(); }
    int preferred_run() const override { return 1 << 20; }
    int epochs = 0;

protected:
    void do_upload_images(const ImageBank& bank) override { in_->upload_images(bank); }
    std::vector<float> net_embed_bank() override { return in_->embed_bank(); }
    std::vector<float> net_embed(const float* images, int n) override { return in_->embed(images, n); }
    void do_begin_epoch(const PairSet& ordered) override { in_->begin_epoch(ordered); }
    void do_train_batch(int first, int count, uint64_t step) override { in_->train_batch(first, count, step); }
    void do_begin_epoch_groups(const GroupOrder& order) override { in_->begin_epoch_groups(order); }
    void do_train_group(int first, int count, uint64_t step) override { in_->train_group(first, count, step); }
    EpochOutput do_train_epoch(const PairSet& train, uint64_t seed, int epoch, int per, uint64_t step,
                               const PairSet& val) override {
        ++epochs;
        return Backend::do_train_epoch(train, seed, epoch, per, step, val);
    }
    EpochOutput do_train_epoch_groups(const GroupOrder& order, int per, uint64_t step, const PairSet& val) override {
        ++epochs;
        return Backend::do_train_epoch_groups(order, per, step, val);
    }

private:
    std::unique_ptr<Backend> in_;
};
}  // namespace

TEST_CASE("the trainer's whole-epoch path gives the bits of its batch-by-batch path", "[training][run]") {
    // The CUDA engine with graphs takes every epoch through train_epoch or train_epoch_groups (one
    // graph); the trainer's bookkeeping there (steps, losses, validation, the threshold) must match
    // the batch-by-batch path exactly. Checked on the CPU engine, over three epochs: pairs with a
    // short last batch, and P-K batches.
    const Small small;
    const ImageBank& bank = small.bank;
    const PairSplit& split = small.split;
    const bool pk = GENERATE(false, true);
    INFO("P-K " << pk);
    Recipe h;
    h.seed = 6;
    h.epochs = 3;
    h.batch = 16;
    if (pk) {
        h.sampler = Recipe::Sampler::PK;
        h.P = 3;
        h.K = 4;
        h.net.embed_relu = false;
        h.net.l2_normalize = true;
    }
    REQUIRE(split.train.size() % h.batch != 0);
    auto plain = make_cpu_backend(h, EngineOptions{});
    WholeEpochs whole(make_cpu_backend(h, EngineOptions{}));
    const std::vector<float> init = glorot_init(plain->layout(), 6);
    for (Backend* be : {static_cast<Backend*>(plain.get()), static_cast<Backend*>(&whole)}) {
        be->upload_images(bank);
        be->set_params(init);
    }
    std::vector<uint64_t> seen;
    TrainCallbacks cb;
    cb.on_batch = [&](int, int, uint64_t step) { seen.push_back(step); };
    const TrainResult a = train_model(*plain, split, h, TrainOptions{}, {});
    const TrainResult b = train_model(whole, split, h, TrainOptions{}, cb);
    CHECK(whole.epochs == 3);
    const GroupSource src = group_source(split);
    const uint64_t per_epoch =
        pk ? uint64_t(group_batches(src, h.P, h.K)) : uint64_t((split.train.size() + h.batch - 1) / h.batch);
    CHECK(seen == std::vector<uint64_t>{per_epoch, 2 * per_epoch, 3 * per_epoch});
    REQUIRE(a.epochs.size() == b.epochs.size());
    for (size_t e = 0; e < a.epochs.size(); ++e) {
        CHECK(a.epochs[e].train_loss == b.epochs[e].train_loss);
        CHECK(a.epochs[e].val_loss == b.epochs[e].val_loss);
        CHECK(a.epochs[e].val_accuracy == b.epochs[e].val_accuracy);
    }
    CHECK(a.threshold == b.threshold);
    const auto p1 = plain->params(), p2 = whole.params();
    CHECK(std::memcmp(p1.data(), p2.data(), p1.size() * sizeof(float)) == 0);
}

namespace {
// One epoch (seed 6) of the small pairs on a CPU engine trained on `bank`: its weights and the
// bank's embeddings after it.
std::pair<std::vector<float>, std::vector<float>> one_epoch(const Small& small, const ImageBank& bank,
                                                            const EngineOptions& e) {
    Recipe h;
    h.net.in_h = small.bank.height;
    h.net.in_w = small.bank.width;
    h.seed = 6;
    h.epochs = 1;
    auto be = make_cpu_backend(h, e);
    be->upload_images(bank);
    be->set_params(glorot_init(make_layout(h.net), 6));
    train_model(*be, small.split, h, TrainOptions{}, {});
    return {be->params(), be->embed_bank()};
}
}  // namespace

TEST_CASE("the CPU engine with --tf32 trains on the TF32 emulation, deterministically", "[training][tf32]") {
    // EngineOptions::tf32 reaches the CPU twin (tests/test_twin.cpp checks the cuts themselves):
    // an epoch differs from FP32's, and two runs give the same bits.
    const Small small;
    EngineOptions tf32;
    tf32.tf32 = true;
    const auto a = one_epoch(small, small.bank, tf32).first, b = one_epoch(small, small.bank, tf32).first,
               c = one_epoch(small, small.bank, EngineOptions{}).first;
    CHECK(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
    CHECK(a != c);
}

TEST_CASE("a half bank (--half-bank) trains on the FP16-rounded pixels: the bits of an FP32 bank holding them", "[training][half]") {
    // EngineOptions::half_bank: the CPU engine trains on the FP16-rounded pixels, the floats the
    // CUDA engine's 16-bit bank widens to ([cuda] tests hold the GPU to the same bits). So a
    // half-bank engine on the bank and a plain one on the rounded bank agree to the bit, and both
    // differ from a plain one on the raw bank (the rounding reaches the weights).
    const Small small;
    const ImageBank rounded = half_rounded(small.bank);
    REQUIRE(rounded.pixels != small.bank.pixels);
    EngineOptions half;
    half.half_bank = true;
    const auto a = one_epoch(small, small.bank, half), b = one_epoch(small, rounded, EngineOptions{}),
               c = one_epoch(small, small.bank, EngineOptions{});
    CHECK(std::memcmp(a.first.data(), b.first.data(), a.first.size() * sizeof(float)) == 0);
    CHECK(std::memcmp(a.second.data(), b.second.data(), a.second.size() * sizeof(float)) == 0);
    CHECK(a.first != c.first);
}
