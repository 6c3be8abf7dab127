// The host's cost per epoch around an engine that takes no time: what the trainer adds to every
// epoch of the CUDA engine's epoch graph (as if the device were infinitely fast), with and
// without the epoch-end checkpoint's snapshot (handed to the checkpoint writer's thread). The
// reference recipe's pairs on 400 generated images.
//   usage: host_overhead [EPOCHS]      (default 200)
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "siamese/backend.hpp"
#include "siamese/checkpoint_writer.hpp"
#include "siamese/pairs.hpp"
#include "siamese/synth.hpp"
#include "siamese/trainer.hpp"

using namespace siamese;

namespace {

// An engine whose epoch (train_epoch, the trainer's call for engines that run whole epochs)
// returns at once with losses and distances of the right sizes.
class NullEngine : public Backend {
public:
    explicit NullEngine(const Recipe& r)
        : net_(r.net), L_(make_layout(r.net)), params_(L_.total, 0.01f), state_(2 * L_.total, 0.0f) {}
    std::string name() const override { return "null"; }
    const ParamLayout& layout() const override { return L_; }
    const NetConfig& net_config() const override { return net_; }
    void set_params(const std::vector<float>& p) override { params_ = p; }
    std::vector<float> params() override { return params_; }
    std::vector<float> opt_state() override { return state_; }
    std::vector<float> last_gradient() override { return params_; }
    void set_opt_state(const std::vector<float>& s) override { state_ = s; }
    std::vector<float> batch_losses() override { return {}; }
    int preferred_run() const override { return 1 << 20; }

protected:
    void do_upload_images(const ImageBank&) override {}
    std::vector<float> net_embed_bank() override { return {}; }
    std::vector<float> net_embed(const float*, int) override { return {}; }
    void do_begin_epoch(const PairSet&) override {}
    void do_train_batch(int, int, uint64_t) override {}
    void do_begin_epoch_groups(const GroupOrder&) override {}
    void do_train_group(int, int, uint64_t) override {}
    EpochOutput do_train_epoch(const PairSet& train, uint64_t, int, int per, uint64_t, const PairSet& val) override {
        EpochOutput o;
        o.losses.assign(size_t((train.size() + per - 1) / per), 0.5f);
        o.val_distances.assign(size_t(val.size()), 0.7f);
        return o;
    }

private:
    NetConfig net_;
    ParamLayout L_;
    std::vector<float> params_, state_;
};

}  // namespace

int main(int argc, char** argv) {
    if (argc > 1 && std::string(argv[1]) == "--help") {
        std::printf("usage: host_overhead [EPOCHS]   (default 200): the trainer's cost per epoch around an engine that "
                    "takes no time, with and without checkpoints\n");
        return 0;
    }
    SynthOptions so;
    so.people = 40;
    so.images = 10;
    const ImageBank bank = synth_bank(so, Preprocess{});
    const PairSplit split = make_tutorial_pairs(bank, 1);
    Recipe r;
    r.net.in_h = bank.height;
    r.net.in_w = bank.width;
    r.epochs = argc > 1 ? std::atoi(argv[1]) : 200;
    if (r.epochs < 1) {
        std::fprintf(stderr, "usage: host_overhead [EPOCHS >= 1]\n");
        return 2;
    }
    const std::string state = "host_overhead_state.safetensors";
    for (bool checkpoints : {false, true}) {
        NullEngine engine(r);
        CheckpointWriter writer(state);
        TrainCallbacks cb;
        if (checkpoints)
            cb.on_checkpoint = [&](const TrainProgress& p, const std::vector<float>& params) {
                TrainState st;  // what run.cpp snapshots
                st.args_json = "{}";
                st.history_json = "[]";
                st.progress = p;
                st.params = params;
                st.opt_state = engine.opt_state();
                writer.submit(std::move(st));
            };
        const auto t0 = std::chrono::steady_clock::now();
        const TrainResult res = train_model(engine, split, r, TrainOptions{}, cb);
        const double all = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        double timed = 0;
        for (const EpochStats& e : res.epochs) timed += e.seconds;
        const double n = double(res.epochs.size());
        std::printf("%s: %zu epochs of %d pairs (%d validation): %.1f us an epoch in all, %.1f us inside the epoch timer\n",
                    checkpoints ? "with checkpoints" : "no checkpoints", res.epochs.size(), split.train.size(),
                    split.val.size(), all / n * 1e6, timed / n * 1e6);
        writer.flush();
    }
    std::remove(state.c_str());
    return 0;
}
