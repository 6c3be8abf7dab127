// siamese plan [recipe options] [--conv ...] [--fused]: the CUDA training step of a recipe as a
// list of kernel launches, each with its arithmetic, its compulsory memory traffic and the floor
// that makes on a GPU's peaks (an H200's by default). Needs no GPU: the launch count it prints is
// the one a CPU test holds and a [cuda] test checks against the captured graph.
#include <cstdio>

#include "commands.hpp"
#include "siamese/common.hpp"
#include "siamese/dataset.hpp"
#include "siamese/step_plan.hpp"
#include "siamese/synth.hpp"

namespace siamese::cli {

namespace {

struct PlanArgs {
    RecipeOptions recipe;
    std::string conv = "custom";
    bool fused = false, count_only = false;
    // An H200 (SXM): FP32 without tensor cores ~60 TFLOP/s at boost (the figure; 132 SMs x
    // 128 FP32 lanes x 2 x ~1.8 GHz), HBM3e 4.8 TB/s.
    double peak_flops = 60e12, peak_bw = 4.8e12;
};

}  // namespace

Runner add_plan(CLI::App& app) {
    auto* sub = app.add_subcommand(
        "plan", "Print the CUDA training step's kernel launches with their FLOPs, bytes and floor time (no GPU needed)");
    auto a = std::make_shared<PlanArgs>();
    add_recipe_options(sub, a->recipe);
    sub->add_option("--conv", a->conv, "CUDA convolutions: custom, cudnn or tiled")->capture_default_str()
        ->check(CLI::IsMember({"custom", "cudnn", "tiled"}));
    sub->add_flag("--fused", a->fused, "The fused step (train --fused)");
    sub->add_flag("--count", a->count_only, "Print only the number of launches per step");
    sub->add_option("--peak-flops", a->peak_flops, "The GPU's FP32 peak, FLOP/s (default: an H200's, 60e12)")
        ->capture_default_str()->check(CLI::PositiveNumber);
    sub->add_option("--peak-bandwidth", a->peak_bw, "The GPU's memory bandwidth, bytes/s (default: an H200's, 4.8e12)")
        ->capture_default_str()->check(CLI::PositiveNumber);
    return [a, sub]() {
        if (a->recipe.recipe == "strong") apply_strong_recipe(a->recipe, given_recipe_options(sub));
        if (const std::string p = recipe_problem(a->recipe); !p.empty()) throw UsageError(p);
        // The input size is the data's (the built-in dataset's when --data is not given).
        const Preprocess pp = preprocess_of(a->recipe);
        const ImageBank bank = a->recipe.data.empty() ? synth_bank(SynthOptions{}, pp) : load_dataset(a->recipe.data, pp);
        const Recipe r = make_recipe(a->recipe, bank.height, bank.width, 1);
        EngineOptions e;
        e.conv = parse_conv_algo(a->conv);
        e.fused = a->fused;
        const std::vector<PlannedLaunch> plan = cuda_step_plan(r, e);
        if (a->count_only) {
            std::printf("%zu\n", plan.size());
            return 0;
        }
        std::printf("CUDA training step: %s sampler, %d images a step, %dx%d input, --conv %s%s\n",
                    r.sampler == Recipe::Sampler::PK ? "P-K" : "pair",
                    r.sampler == Recipe::Sampler::PK ? r.P * r.K : 2 * r.batch, bank.height, bank.width, a->conv.c_str(),
                    a->fused ? " --fused" : "");
        std::printf("%s", plan_table(plan, a->peak_flops, a->peak_bw).c_str());
        if (r.sampler == Recipe::Sampler::PK)
            std::printf("per epoch: the P-K order uploaded; the full batches as one graph, a short last batch as "
                        "another; the validation pass as one graph; losses and distances read back through pinned "
                        "memory\n");
        else
            std::printf("per epoch (with CUDA graphs, from the second epoch on): ONE graph of epoch_start (the pair "
                        "order built on the device), these steps for every batch, the validation pass (embeddings "
                        "of the bank, pair distances) and the copies of the losses and distances into pinned "
                        "memory: launched once, waited for once\n");
        return 0;
    };
}

}  // namespace siamese::cli
