// The CUDA training step as a list of kernel launches, worked out on the host (no GPU needed):
// what `siamese plan` prints, what a CPU test holds the launch count of, and what a [cuda] test
// compares with the kernel nodes of the captured graph (cuda/backend_cuda.cu issues exactly
// these, in this order). Each launch carries its arithmetic and its compulsory memory traffic,
// so the floor it is measured against on a given GPU is max(flops / peak, bytes / bandwidth).
#pragma once
#include <string>
#include <vector>

#include "siamese/backend.hpp"

namespace siamese {

struct PlannedLaunch {
    std::string kernel;  // the launcher (cuda/kernels.hpp) or library call
    std::string what;    // the layer or role
    bool library;        // a cuBLAS/cuDNN call: the library may launch more than one kernel
    double flops;        // arithmetic (a multiply-add is 2)
    double bytes;        // each input read once and each output written once (DRAM), nothing more
    bool side = false;   // on the second stream, beside the step's critical path (EngineOptions::side_stream)
    bool tf32 = false;   // a cuBLAS GEMM on TF32 tensor cores (--tf32): its arithmetic at kTf32PeakRatio x the peak
};

// TF32 tensor cores' dense peak over FP32's: NVIDIA's datasheet figures for the H100 and H200 SXM,
// 494.7 and 67 TFLOP/s (sparsity's doubling not counted). The plan's floor for a --tf32 GEMM.
constexpr double kTf32PeakRatio = 494.7 / 67.0;

// The launches of one training step of `r` on the CUDA engine `e` at the recipe's batch size
// (r.batch pairs, or r.P * r.K images for the P-K sampler).
std::vector<PlannedLaunch> cuda_step_plan(const Recipe& r, const EngineOptions& e);

// Whether the --fused step applies its fused tail to this recipe: the pair sampler without an
// L2 head, at least two dense layers, and a last layer whose weights fit one block's default
// shared memory (the tail's rule: 8, 4, 2 or 1 pairs a block within 48 KB).
bool fused_tail_applies(const Recipe& r);

// The sum over the launches of max(flops / peak, bytes / bandwidth): the plan's floor, seconds.
double plan_floor(const std::vector<PlannedLaunch>& plan, double peak_flops, double peak_bytes_per_s);

// One epoch of the pair sampler on the CUDA engine (its epoch graph): train_pairs / r.batch full
// steps, a short last step when the pairs do not divide, and the validation pass over the bank
// (bank_images inference embeddings, val_pairs distances). The floor the 5 ms epoch goal of
// docs/gpu-speed.md is measured against.
struct EpochPlan {
    int full_steps = 0;
    std::vector<PlannedLaunch> step, last_step, validation;  // last_step empty when none
};
EpochPlan cuda_epoch_plan(const Recipe& r, const EngineOptions& e, int train_pairs, int bank_images, int val_pairs);

// The plan as a table: one row a launch, the totals, and each floor at the given peaks.
std::string plan_table(const std::vector<PlannedLaunch>& plan, double peak_flops, double peak_bytes_per_s);

}  // namespace siamese

namespace siamese {

// The fused tail's geometry (cuda/tail.cu uses these, so the plan and the kernel agree): the
// shared-memory floats of a block of G pairs, W padded to rows of I + 1 floats, b, h and dh
// (2G, I) each, e and g (2G, O) each, a coefficient and a loss term per pair; and G, the most
// pairs (of 8, 4, 2, 1) whose block fits the default 48 KB less room for a static flag (0: none).
constexpr size_t kTailSmemLimitBytes = 48 * 1024 - 64;
inline size_t tail_smem_floats(int G, int I, int O) {
    return size_t(O) * (I + 1) + O + 4 * size_t(G) * I + 4 * size_t(G) * O + 2 * size_t(G);
}
inline int tail_pairs_per_block(int I, int O) {
    for (int G : {8, 4, 2, 1})
        if (tail_smem_floats(G, I, O) * sizeof(float) <= kTailSmemLimitBytes) return G;
    return 0;
}
// The pairs a block takes at a batch of `count` pairs: tail_pairs_per_block (8 for the reference
// recipe, as at batch 128), doubled, up to 64, while the batch would take more than
// kTailTargetBlocks blocks and the larger block fits `smem_limit` bytes (the device's opt-in
// shared memory, which the launcher asks for). A large batch then runs fewer, larger blocks, and
// the last block's reduction, which reads blocks x (O*I + O + I + 1) floats by itself, shrinks
// with them: at 8192 pairs 128 rows instead of 1024.
constexpr int kTailTargetBlocks = 128;
inline int tail_pairs_for(int I, int O, int count, size_t smem_limit) {
    int G = tail_pairs_per_block(I, O);
    if (G < 8) return G;
    while (G < 64 && (count + G - 1) / G > kTailTargetBlocks &&
           tail_smem_floats(2 * G, I, O) * sizeof(float) + 64 <= smem_limit)
        G *= 2;
    return G;
}
// The most blocks a batch of up to `count` pairs takes (a scratch sized for it serves every
// smaller batch): at `count`, or where a batch last takes kTailTargetBlocks blocks before the
// pairs a block double. 0 when the layer does not fit a block.
inline int tail_max_blocks(int I, int O, int count, size_t smem_limit) {
    const int G0 = tail_pairs_per_block(I, O);
    if (G0 == 0) return 0;
    auto blocks = [&](int c) {
        const int G = tail_pairs_for(I, O, c, smem_limit);
        return (c + G - 1) / G;
    };
    int most = blocks(count);
    for (int g = G0; g >= 8 && g < 64; g *= 2) {
        const int c = count < kTailTargetBlocks * g ? count : kTailTargetBlocks * g;
        if (blocks(c) > most) most = blocks(c);
    }
    return most;
}

}  // namespace siamese
