// The CUDA step's static plan (siamese plan): the launch counts this project holds (issue 10's
// target: <= 12 a step for the reference recipe), and what fusion may and may not change. The
// [cuda] test "the captured step holds the kernels the static plan lists" checks the plan
// against a captured graph where a GPU exists.
#include <catch2/catch.hpp>

#include <algorithm>
#include <string>

#include "siamese/run.hpp"
#include "siamese/step_plan.hpp"
#include "test_util.hpp"

using namespace siamese;

namespace {

Recipe reference() {
    RecipeOptions a;
    return make_recipe(a, 56, 46, 1);
}
EngineOptions engine(ConvAlgo conv, bool fused) {
    EngineOptions e;
    e.conv = conv;
    e.fused = fused;
    return e;
}
int count_of(const std::vector<PlannedLaunch>& plan, const std::string& kernel) {
    return int(std::count_if(plan.begin(), plan.end(), [&](const PlannedLaunch& k) { return k.kernel == kernel; }));
}
double sum_of(const std::vector<PlannedLaunch>& plan, double PlannedLaunch::*field) {
    double s = 0;
    for (const auto& k : plan) s += k.*field;
    return s;
}

// Two plans of the same launches and arithmetic (an option that changes only bytes or floors):
// the bytes b saves against a.
double same_launches(const std::vector<PlannedLaunch>& a, const std::vector<PlannedLaunch>& b) {
    REQUIRE(a.size() == b.size());
    double fewer = 0;
    for (size_t k = 0; k < a.size(); ++k) {
        CHECK(a[k].kernel == b[k].kernel);
        CHECK(a[k].flops == b[k].flops);
        fewer += a[k].bytes - b[k].bytes;
    }
    return fewer;
}

}  // namespace

TEST_CASE("the reference recipe's CUDA step: 25 launches unfused, 10 fused", "[plan]") {
    const Recipe r = reference();
    const auto plain = cuda_step_plan(r, engine(ConvAlgo::Custom, false));
    const auto fused = cuda_step_plan(r, engine(ConvAlgo::Custom, true));
    // 25 = what the H200's ncu trace of 2026-11-29 showed (30 kernels) less its 5 cuBLAS split-K
    // reductions (docs/gpu-speed.md).
    CHECK(plain.size() == 25);
    CHECK(fused.size() == 10);
    REQUIRE(fused_tail_applies(r));
    CHECK(count_of(fused, "contrastive_tail") == 1);
    for (const char* gone : {"build_gather", "bias_relu_dropout", "column_sums", "relu_dropout_backward", "advance_state",
                             "contrastive_loss"})
        CHECK(count_of(fused, gone) == 0);
    CHECK(count_of(plain, "column_sums") == 4);
    // Fusion moves arithmetic between launches, it does not add or drop any: the GEMM and conv
    // FLOPs agree within the elementwise work it removes (< 1%), and the bytes fall.
    CHECK(sum_of(fused, &PlannedLaunch::flops) == Approx(sum_of(plain, &PlannedLaunch::flops)).epsilon(0.01));
    CHECK(sum_of(fused, &PlannedLaunch::bytes) < 0.9 * sum_of(plain, &PlannedLaunch::bytes));
    // conv1 forward: 256 images x 6 filters x 54 x 44 conv outputs x 9 taps, 2 FLOPs each.
    CHECK(plain[1].kernel == "conv_pool_forward");
    CHECK(plain[1].flops == Approx(2.0 * 256 * 6 * 54 * 44 * 9));
}

TEST_CASE("the plan follows the recipe: tiled and cuDNN convolutions, the P-K sampler, an L2 head", "[plan]") {
    const Recipe r = reference();
    // Tiled and fused: conv1 and conv2 forward in one launch, 9 in all.
    const auto tiled = cuda_step_plan(r, engine(ConvAlgo::Tiled, true));
    CHECK(tiled.size() == 9);
    CHECK(count_of(tiled, "conv_pair_forward_tiled") == 1);
    CHECK(count_of(tiled, "conv_pool_forward_tiled") == 0);
    CHECK(count_of(tiled, "conv_backward_input_tiled") == 1);
    // The same arithmetic as the two forward launches; conv1's output is not read back from DRAM.
    const auto two = cuda_step_plan(r, engine(ConvAlgo::Tiled, false));
    REQUIRE(count_of(two, "conv_pool_forward_tiled") == 2);
    double fwd = 0, fwd_bytes = 0;
    for (const auto& k : two)
        if (k.kernel == "conv_pool_forward_tiled") fwd += k.flops, fwd_bytes += k.bytes;
    CHECK(tiled[0].flops == Approx(fwd));
    CHECK(tiled[0].bytes < fwd_bytes);
    // cuDNN keeps its own backward: the masks stay separate launches.
    const auto cudnn = cuda_step_plan(r, engine(ConvAlgo::Cudnn, true));
    CHECK(count_of(cudnn, "relu_dropout_backward") == 2);
    CHECK(count_of(cudnn, "contrastive_tail") == 1);
    // The strong recipe (P-K batches, L2 head): no tail; the optimizer still advances the state.
    RecipeOptions a;
    apply_strong_recipe(a, {});
    const Recipe strong = make_recipe(a, 56, 46, 1);
    REQUIRE(strong.sampler == Recipe::Sampler::PK);
    CHECK_FALSE(fused_tail_applies(strong));
    const auto s = cuda_step_plan(strong, engine(ConvAlgo::Custom, true));
    CHECK(count_of(s, "contrastive_tail") == 0);
    CHECK(count_of(s, "advance_state") == 0);
    CHECK(count_of(s, "optimizer_step_advance") == 1);
    CHECK(s.size() < cuda_step_plan(strong, engine(ConvAlgo::Custom, false)).size());
    // A pair recipe with an L2 head takes the unfused loss.
    Recipe l2 = r;
    l2.net.l2_normalize = true;
    CHECK_FALSE(fused_tail_applies(l2));
    CHECK(count_of(cuda_step_plan(l2, engine(ConvAlgo::Custom, true)), "contrastive_loss") == 1);
}

TEST_CASE("the fused tail's block geometry fits the default shared memory", "[plan]") {
    // The recipe's 128 -> 50 layer: 8 pairs a block (16 blocks for 128 pairs) in under 48 KB.
    CHECK(tail_pairs_per_block(128, 50) == 8);
    CHECK(tail_smem_floats(8, 128, 50) * sizeof(float) <= kTailSmemLimitBytes);
    CHECK(tail_smem_floats(16, 128, 50) * sizeof(float) > kTailSmemLimitBytes);
    // A layer too wide for one pair a block takes the unfused path.
    CHECK(tail_pairs_per_block(4096, 64) == 0);
    // Large batches take larger blocks where the device's shared memory allows (an H200 opts in
    // to 227 KB): at most kTailTargetBlocks blocks, 64 pairs a block at the most.
    const size_t h200 = 227 * 1024;
    CHECK(tail_pairs_for(128, 50, 128, h200) == 8);     // the reference batch: 16 blocks
    CHECK(tail_pairs_for(128, 50, 1024, h200) == 8);    // 128 blocks
    CHECK(tail_pairs_for(128, 50, 1025, h200) == 16);
    CHECK(tail_pairs_for(128, 50, 8192, h200) == 64);   // 128 blocks instead of 1,024
    CHECK(tail_pairs_for(128, 50, 100000, h200) == 64);
    CHECK(tail_smem_floats(64, 128, 50) * sizeof(float) + 64 <= h200);
    CHECK(tail_pairs_for(128, 50, 8192, kTailSmemLimitBytes + 64) == 8);  // no opt-in memory: as before
    CHECK(tail_pairs_for(17, 3, 8192, h200) == 64);
}

TEST_CASE("the epoch plan: full steps, the short one, validation, and the floor they add up to", "[plan]") {
    // ORL's reference epoch: 11,250 training pairs (87 steps of 128 and one of 114), 3,750
    // validation pairs over the 400 images.
    const Recipe r = reference();
    const EngineOptions e = engine(ConvAlgo::Custom, true);
    const EpochPlan p = cuda_epoch_plan(r, e, 11250, 400, 3750);
    CHECK(p.full_steps == 87);
    CHECK(p.step.size() == 10);
    CHECK(p.last_step.size() == p.step.size());  // the same launches at 114 pairs
    // The short step's arithmetic is its share of a full one's (the optimizer's aside).
    const double opt = p.step.back().flops;
    CHECK(sum_of(p.last_step, &PlannedLaunch::flops) - opt == Approx((sum_of(p.step, &PlannedLaunch::flops) - opt) * 114 / 128).epsilon(1e-6));
    // Validation: conv1, conv2, two dense layers (GEMM + bias/activation), the embeddings'
    // copy, the distances and their copy back: 9.
    REQUIRE(p.validation.size() == 9);
    CHECK(p.validation[0].kernel == "conv_pool_forward");
    CHECK(p.validation[0].flops == Approx(2.0 * 400 * 6 * 54 * 44 * 9));
    CHECK(p.validation.back().bytes == 3750 * 4.0);
    const double peak = 60e12, bw = 4.8e12;
    const double epoch = p.full_steps * plan_floor(p.step, peak, bw) + plan_floor(p.last_step, peak, bw) +
                         plan_floor(p.validation, peak, bw);
    CHECK(epoch > 87 * plan_floor(p.step, peak, bw));
    CHECK(epoch < 5e-3);  // the goal is reachable in principle: 3.7x this floor
    // Pairs that divide into batches: no short step; flip averaging: a second view.
    CHECK(cuda_epoch_plan(r, e, 128 * 10, 400, 100).last_step.empty());
    Recipe flip = r;
    flip.net.flip_average = true;
    const EpochPlan f = cuda_epoch_plan(flip, e, 1000, 400, 100);
    CHECK(f.validation.size() == 9 + 8);  // the mirror images, the 6 forward launches again, the mean of the views
    CHECK(count_of(f.validation, "flip_average") == 1);
    // The P-K sampler's epoch is not this plan's.
    Recipe pk = r;
    pk.sampler = Recipe::Sampler::PK;
    CHECK_THROWS_AS(cuda_epoch_plan(pk, e, 1000, 400, 100), std::logic_error);
}

TEST_CASE("siamese plan prints the step's launches, FLOPs and floors without a GPU", "[plan][cli]") {
    const auto count = testutil::run_cli("plan --fused --count");
    REQUIRE(count.status == 0);
    CHECK(count.out == "10\n");
    const auto table = testutil::run_cli("plan --fused");
    REQUIRE(table.status == 0);
    CHECK(table.out.find("contrastive_tail") != std::string::npos);
    CHECK(table.out.find("10 launches per step") != std::string::npos);
    CHECK(table.out.find("CUDA training epoch") != std::string::npos);
    CHECK(table.out.find("the goal: 5 ms") != std::string::npos);
    CHECK(testutil::run_cli("plan --conv bogus").status == 2);
    // --gemm custom: the dense products are the engine's own kernel, one launch each (no library
    // call left in the tiled fused step); the same number of launches.
    const auto own = testutil::run_cli("plan --fused --conv tiled --gemm custom");
    REQUIRE(own.status == 0);
    CHECK(own.out.find("cublasSgemm") == std::string::npos);
    CHECK(own.out.find("gemm_custom") != std::string::npos);
    CHECK(own.out.find("9 launches per step (no library calls") != std::string::npos);
    CHECK(testutil::run_cli("plan --gemm bogus").status == 2);
    CHECK(testutil::run_cli("plan --peak-flops -1").status == 2);
    CHECK(testutil::run_cli("plan --help").status == 0);
}

TEST_CASE("siamese plan --gpu sets the floors at that GPU's peaks, and the peak options still override them", "[plan][cli]") {
    const auto h200 = testutil::run_cli("plan --fused --conv tiled");
    const auto h100 = testutil::run_cli("plan --fused --conv tiled --gpu h100");
    REQUIRE(h200.status == 0);
    REQUIRE(h100.status == 0);
    CHECK(h200.out.find("bytes / 4.8 TB/s") != std::string::npos);
    CHECK(h100.out.find("bytes / 3.35 TB/s") != std::string::npos);
    // The same launches, FLOPs and bytes; an H100's slower memory raises the epoch's floor.
    const auto epoch_floor = [](const std::string& out) {
        const size_t at = out.find("  epoch  ");
        REQUIRE(at != std::string::npos);
        return std::stod(out.substr(out.find("floor", at) + 5));
    };
    CHECK(epoch_floor(h100.out) > epoch_floor(h200.out));
    CHECK(testutil::run_cli("plan --fused --conv tiled --gpu h100 --peak-bandwidth 4.8e12").out == h200.out);
    CHECK(testutil::run_cli("plan --gpu h200 --peak-flops 60e12 --peak-bandwidth 4.8e12").out ==
          testutil::run_cli("plan").out);
    CHECK(testutil::run_cli("plan --gpu a100").status == 2);
}

TEST_CASE("CUDA engine options on the CPU engine are named as ignored, not silently dropped", "[plan][cli]") {
    // A tiny run (4 generated people, 3 photos each, quarter resolution): the note is what counts.
    const std::string dir = std::string(SIAMESE_BINARY) + "_ignored";
    REQUIRE(testutil::run_cli("synth --out " + dir + "/faces --people 4 --images 3").status == 0);
    const auto r = testutil::run_cli("train --data " + dir + "/faces --protocol people --train-people 1-2 --test-people 3-4 "
                                     "--epochs 1 --downsample 4 --device cpu --threads 1 --fused --side-stream --half-bank --gemm custom "
                                     "--quiet --out " + dir + "/run");
    REQUIRE(r.status == 0);
    // --half-bank is honoured on the CPU (it trains on the rounded pixels): not in the note. (--tf32,
    // emulated there, has a note of its own: tests/test_cli.cpp.)
    CHECK(r.out.find("note: --fused --side-stream --gemm custom: CUDA engine options, ignored on the CPU") !=
          std::string::npos);
}

TEST_CASE("the weight gradients that overlap the input-gradient chain are on the second stream", "[plan]") {
    // The engine's rule (cuda/backend_cuda.cu): every dense layer's dW (and db), and every conv
    // layer's but the bottom one's (it has no input gradient to overlap), with --side-stream,
    // not while profiling, and not cuDNN's one-call conv backward.
    const Recipe r = reference();
    auto sides = [](const std::vector<PlannedLaunch>& plan) {
        std::vector<std::string> v;
        for (const auto& k : plan)
            if (k.side) v.push_back(k.what);
        return v;
    };
    EngineOptions e = engine(ConvAlgo::Tiled, true);
    CHECK(sides(cuda_step_plan(r, e)).empty());  // off by default
    e.side_stream = true;
    CHECK(sides(cuda_step_plan(r, e)) == std::vector<std::string>{"dense1 dW", "conv2 dW"});
    e.fused = false;  // dense2 too, and the column sums of the side launches
    CHECK(sides(cuda_step_plan(r, e)) ==
          std::vector<std::string>{"dense2 dW", "dense2 db", "dense1 dW", "dense1 db", "conv2 dW", "conv2 dW chunks"});
    e.conv = ConvAlgo::Cudnn;  // cuDNN's conv backward stays on the main stream
    CHECK(sides(cuda_step_plan(r, e)) == std::vector<std::string>{"dense2 dW", "dense2 db", "dense1 dW", "dense1 db"});
    e.side_stream = false;
    CHECK(sides(cuda_step_plan(r, e)).empty());
    e.side_stream = true;
    e.profile = true;
    CHECK(sides(cuda_step_plan(r, e)).empty());
    EngineOptions custom = engine(ConvAlgo::Custom, true);
    custom.side_stream = true;
    const std::string table = plan_table(cuda_step_plan(r, custom), 60e12, 4.8e12);
    CHECK(table.find("critical path: 8 launches") != std::string::npos);  // custom conv: 10 launches
}

TEST_CASE("an FP16 bank halves what conv1 reads of it and adds no launch but cuDNN's widening copy", "[plan][half]") {
    // --half-bank: where conv1 (forward and weight gradient) reads the bank it reads 2 bytes a
    // pixel; nothing else changes. cuDNN reads FP32 only, so its staging copy runs wherever the
    // bank is read, the validation pass included (one more launch there).
    const Recipe r = reference();
    const double pixels = 256.0 * 56 * 46, bank_pixels = 400.0 * 56 * 46;
    for (ConvAlgo conv : {ConvAlgo::Custom, ConvAlgo::Tiled, ConvAlgo::Cudnn})
        for (bool fused : {false, true}) {
            INFO(int(conv) << " fused " << fused);
            EngineOptions f32 = engine(conv, fused), f16 = f32;
            f16.half_bank = true;
            const EpochPlan a = cuda_epoch_plan(r, f32, 11250, 400, 3750), b = cuda_epoch_plan(r, f16, 11250, 400, 3750);
            const double fewer = same_launches(a.step, b.step);
            // Forward and weight gradient, 2 bytes a pixel each (cuDNN: its staging copies read them).
            CHECK(fewer == Approx(2 * 2 * pixels));
            const bool cudnn = conv == ConvAlgo::Cudnn;
            CHECK(b.validation.size() == a.validation.size() + (cudnn ? 1 : 0));
            if (!cudnn) CHECK(sum_of(a.validation, &PlannedLaunch::bytes) - sum_of(b.validation, &PlannedLaunch::bytes) == Approx(2 * bank_pixels));
        }
}

TEST_CASE("the plan with --tf32 puts the cuBLAS GEMMs, and only them, at TF32's peak", "[plan][tf32]") {
    // The same launches, FLOPs and bytes; the cuBLAS rows (training and validation) are marked
    // and their floor is max(FLOP / (7.4 x peak), bytes / bandwidth); every other row is as it was.
    const Recipe r = reference();
    const double peak = 60e12, bw = 4.8e12;
    for (bool fused : {false, true}) {
        INFO("fused " << fused);
        EngineOptions f32 = engine(ConvAlgo::Custom, fused), t = f32;
        t.tf32 = true;
        const EpochPlan a = cuda_epoch_plan(r, f32, 11250, 400, 3750), b = cuda_epoch_plan(r, t, 11250, 400, 3750);
        CHECK(same_launches(a.step, b.step) == 0);
        int marked = 0;
        for (size_t k = 0; k < a.step.size(); ++k) {
            CHECK_FALSE(a.step[k].tf32);
            CHECK(b.step[k].tf32 == (b.step[k].kernel == "cublasSgemm"));
            marked += b.step[k].tf32;
            const double want = b.step[k].tf32 ? std::max(b.step[k].flops / (peak * kTf32PeakRatio), b.step[k].bytes / bw)
                                               : std::max(b.step[k].flops / peak, b.step[k].bytes / bw);
            CHECK(plan_floor({b.step[k]}, peak, bw) == Approx(want));
        }
        // dense1's three products, and dense2's three where the fused tail does not take them.
        CHECK(marked == (fused ? 3 : 6));
        CHECK(count_of(b.validation, "cublasSgemm") > 0);
        for (const auto& k : b.validation) CHECK(k.tf32 == (k.kernel == "cublasSgemm"));
        CHECK(plan_floor(b.step, peak, bw) < plan_floor(a.step, peak, bw));
    }
    // The custom GEMM is FP32: the two are refused together, on the plan as on train.
    CHECK(testutil::run_cli("plan --tf32 --gemm custom").status == 2);
    const auto p = testutil::run_cli("plan --fused --tf32");
    REQUIRE(p.status == 0);
    CHECK(p.out.find("cublasSgemm (tf32) *") != std::string::npos);
    CHECK(p.out.find("the 3 marked (tf32) at TF32's") != std::string::npos);
}
