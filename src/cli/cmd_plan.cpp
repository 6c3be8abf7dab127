// siamese plan [recipe options] [--conv ...] [--fused]: the CUDA training step of a recipe as a
// list of kernel launches, each with its arithmetic, its compulsory memory traffic and the floor
// that makes on a GPU's peaks (an H200's by default, an H100's with --gpu h100). Needs no GPU: the launch count it prints is
// the one a CPU test holds and a [cuda] test checks against the captured graph.
#include <cstdio>

#include "commands.hpp"
#include "siamese/common.hpp"
#include "siamese/dataset.hpp"
#include "siamese/pairs.hpp"
#include "siamese/step_plan.hpp"
#include "siamese/synth.hpp"

namespace siamese::cli {

namespace {

struct PlanArgs {
    RecipeOptions recipe;
    EngineFlags engine;  // train's: only the options that shape the step are on the command line
    bool count_only = false;
    std::string gpu = "h200";
    double peak_flops = 0, peak_bw = 0;  // 0: the --gpu's
};

// The peaks of the GPUs this project is lent (both SXM, 132 SMs of 128 FP32 lanes at up to
// 1.98 GHz: the same FP32 peak; the issue's ~60 TFLOP/s for both). Bandwidth by NVIDIA's
// datasheets: an H200's HBM3e 4.8 TB/s, an H100 80GB's HBM3 3.35 TB/s (a device-to-device copy
// moved ~4.3 and ~3.0 TB/s on this workplace's machines: ../.library/device/KINDS.md).
struct GpuPeaks {
    const char* name;
    double flops, bandwidth;
};
constexpr GpuPeaks kGpus[] = {{"h200", 60e12, 4.8e12}, {"h100", 60e12, 3.35e12}};

}  // namespace

Runner add_plan(CLI::App& app) {
    auto* sub = app.add_subcommand(
        "plan", "Print the CUDA training step's kernel launches with their FLOPs, bytes and floor time (no GPU needed)");
    auto a = std::make_shared<PlanArgs>();
    add_recipe_options(sub, a->recipe);
    add_step_flags(sub, a->engine);
    sub->add_flag("--count", a->count_only, "Print only the number of launches per step");
    sub->add_option("--gpu", a->gpu, "The GPU whose peaks set the floors: h200 (FP32 60 TFLOP/s, 4.8 TB/s) or h100 "
                                     "(60 TFLOP/s, 3.35 TB/s)")
        ->capture_default_str()->check(CLI::IsMember({"h200", "h100"}));
    sub->add_option("--peak-flops", a->peak_flops, "The GPU's FP32 peak, FLOP/s (default: the --gpu's)")
        ->check(CLI::PositiveNumber);
    sub->add_option("--peak-bandwidth", a->peak_bw, "The GPU's memory bandwidth, bytes/s (default: the --gpu's)")
        ->check(CLI::PositiveNumber);
    return [a, sub]() {
        for (const GpuPeaks& g : kGpus)
            if (a->gpu == g.name) {
                if (a->peak_flops == 0) a->peak_flops = g.flops;
                if (a->peak_bw == 0) a->peak_bw = g.bandwidth;
            }
        if (a->recipe.recipe == "strong") apply_strong_recipe(a->recipe, given_recipe_options(sub));
        if (const std::string p = recipe_problem(a->recipe); !p.empty()) throw UsageError(p);
        // The input size is the data's (the built-in dataset's when --data is not given).
        const Preprocess pp = preprocess_of(a->recipe);
        const ImageBank bank = load_bank(a->recipe, pp);
        const Recipe r = make_recipe(a->recipe, bank.height, bank.width, 1);
        const EngineFlags& f = a->engine;
        const EngineOptions e = engine_options(f);  // refuses what train refuses (--tf32 with --gemm custom)
        const std::vector<PlannedLaunch> plan = cuda_step_plan(r, e);
        if (a->count_only) {
            std::printf("%zu\n", plan.size());
            return 0;
        }
        std::printf("CUDA training step: %s sampler, %d images a step, %dx%d input, --conv %s%s%s%s\n",
                    r.sampler == Recipe::Sampler::PK ? "P-K" : "pair",
                    r.sampler == Recipe::Sampler::PK ? r.P * r.K : 2 * r.batch, bank.height, bank.width, f.conv.c_str(),
                    f.fused ? " --fused" : "", f.gemm == "custom" ? " --gemm custom" : "",
                    (std::string(f.half_bank ? " --half-bank" : "") + (f.tf32 ? " --tf32" : "")).c_str());
        std::printf("%s", plan_table(plan, a->peak_flops, a->peak_bw).c_str());
        if (r.sampler == Recipe::Sampler::PK) {
            std::printf("per epoch (with CUDA graphs, from the second epoch on): ONE graph of the P-K order copied "
                        "in from pinned memory, these steps for every batch, the validation pass and the copies of "
                        "the losses and distances into pinned memory: launched once, waited for once\n");
            return 0;
        }
        // The epoch of this data's pairs: what the epoch graph holds, and its floor.
        const PairSplit split = make_split(bank, a->recipe.protocol, a->recipe.train_people, a->recipe.test_people, r.seed);
        const EpochPlan ep = cuda_epoch_plan(r, e, split.train.size(), bank.size(), split.val.size());
        const double step_s = plan_floor(ep.step, a->peak_flops, a->peak_bw);
        const double last_s = plan_floor(ep.last_step, a->peak_flops, a->peak_bw);
        const double val_s = plan_floor(ep.validation, a->peak_flops, a->peak_bw);
        const double epoch_s = ep.full_steps * step_s + last_s + val_s;
        const size_t launches = size_t(ep.full_steps) * ep.step.size() + ep.last_step.size() + ep.validation.size() + 1;
        std::printf("\nCUDA training epoch (with CUDA graphs, from the second epoch on: ONE graph): %d training pairs, "
                    "%d validation pairs over %d images\n",
                    split.train.size(), split.val.size(), bank.size());
        std::printf("  epoch_start (the order, on the device)     1 launch\n");
        std::printf("  %4d full steps of %d pairs            %5zu launches   floor %9.3f ms\n", ep.full_steps, r.batch,
                    size_t(ep.full_steps) * ep.step.size(), ep.full_steps * step_s * 1e3);
        if (!ep.last_step.empty())
            std::printf("     1 short step of %d pairs            %5zu launches   floor %9.3f ms\n",
                        split.train.size() - ep.full_steps * r.batch, ep.last_step.size(), last_s * 1e3);
        std::printf("  validation (bank forward, distances)   %5zu launches   floor %9.3f ms\n", ep.validation.size(),
                    val_s * 1e3);
        std::printf("  epoch                                  %5zu launches   floor %9.3f ms (the goal: 5 ms, %.1fx "
                    "the floor)\n",
                    launches, epoch_s * 1e3, 5e-3 / epoch_s);
        std::printf("launched once and waited for once; the losses and distances come back through pinned memory\n");
        return 0;
    };
}

}  // namespace siamese::cli
