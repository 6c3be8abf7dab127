// The CUDA step's launches, mirrored from cuda/backend_cuda.cu (run_step, run_group_step,
// forward, backward_and_update; the launchers of cuda/*.cu and cudnn_conv.cu). A [cuda] test
// holds the two together: the captured graph's kernel nodes against this list.
#include "siamese/step_plan.hpp"

#include <algorithm>
#include <cstdio>
#include <sstream>
#include <stdexcept>

namespace siamese {

namespace {

constexpr double kF = 4.0;  // bytes of a float

struct Planner {
    const Recipe& r;
    const EngineOptions& e;
    ParamLayout L;
    std::vector<PlannedLaunch> out;

    void add(const char* kernel, const std::string& what, double flops, double bytes, bool library = false,
             bool side = false) {
        out.push_back({kernel, what, library, flops, bytes, side});
    }
    // The weight gradients go to the second stream (the engine's rule: not while profiling).
    bool side() const { return e.side_stream && !e.profile; }
    bool cudnn() const { return e.conv == ConvAlgo::Cudnn; }
    // Bytes of a pixel of conv1's input: 2 where it reads the FP16 bank (--half-bank), else a float.
    double pixel_bytes(bool bank) const { return bank && e.half_bank ? 2.0 : kF; }
    // cuDNN reads the batch's images side by side, in FP32: gathered (and widened) by a copy first.
    bool cudnn_staged(bool gathered, bool bank) const { return gathered || (bank && e.half_bank); }
    // Multiply-adds of one conv block's taps at the pooled positions (the argmax ones: backward)
    // or at every conv output of the pooled region (forward).
    static double conv_fwd_madds(const ConvShape& s, double n) {
        return n * s.F * double(s.Hp * s.P) * double(s.Wp * s.P) * s.C * s.K * s.K;
    }
    static double conv_bwd_madds(const ConvShape& s, double n) { return n * s.F * double(s.Hp) * s.Wp * s.C * s.K * s.K; }

    // gathered: the layer reads images through the step's gather; bank: its input is the bank.
    void conv_forward(size_t l, double n, bool gathered, bool bank) {
        const ConvShape& s = L.conv[l];
        const std::string what = "conv" + std::to_string(l + 1);
        const double in = n * s.in_elems() * pixel_bytes(bank), out = n * s.out_elems() * (kF + 1);
        const double wb = (s.F * s.C * s.K * s.K + s.F) * kF, staged = n * s.in_elems() * kF;
        if (cudnn()) {
            const double conv = n * s.F * double(s.Ho) * s.Wo * kF;
            if (cudnn_staged(gathered, bank)) add("gather_images_kernel", what, 0, in + staged);
            add("cudnnConvolutionForward", what, 2 * n * s.F * double(s.Ho) * s.Wo * s.C * s.K * s.K, staged + wb + conv, true);
            add("cudnnAddTensor", what, conv / kF, 2 * conv, true);
            add("pool_forward_kernel", what, conv / kF, conv + out);
            return;
        }
        add(e.conv == ConvAlgo::Tiled ? "conv_pool_forward_tiled" : "conv_pool_forward", what, 2 * conv_fwd_madds(s, n),
            in + wb + out);
    }
    // --conv tiled --fused: conv1 and conv2 forward in one launch (the engine's pair_forward).
    bool pair_forward() const { return e.fused && e.conv == ConvAlgo::Tiled && L.conv.size() >= 2; }
    // The conv blocks' forward over n images: one launch each, or the first two as one (conv1's
    // output is still written once for the backward, and read back from cache, not DRAM).
    void conv_forwards(double n, bool gathered, bool bank) {
        size_t l = 0;
        if (pair_forward()) {
            const ConvShape &a = L.conv[0], &b = L.conv[1];
            const double in = n * a.in_elems() * pixel_bytes(bank), wb_a = (a.F * a.C * a.K * a.K + a.F) * kF;
            const double wb_b = (b.F * b.C * b.K * b.K + b.F) * kF;
            add("conv_pair_forward_tiled", "conv1 + conv2", 2 * (conv_fwd_madds(a, n) + conv_fwd_madds(b, n)),
                in + wb_a + n * a.out_elems() * (kF + 1) + wb_b + n * b.out_elems() * (kF + 1));
            l = 2;
        }
        for (; l < L.conv.size(); ++l) conv_forward(l, n, gathered && l == 0, bank && l == 0);
    }
    // A dense product: cuBLAS (a library call: maybe a split-K reduction kernel too) or the
    // engine's own kernel (--gemm custom: one launch, its split-K sums inside).
    void product(const std::string& what, double flops, double bytes, bool on_side = false) {
        if (e.custom_gemm)
            add("gemm_custom", what, flops, bytes, false, on_side);
        else {
            add("cublasSgemm", what, flops, bytes, true, on_side);
            out.back().tf32 = e.tf32;
        }
    }
    // raw: the GEMM alone (the fused tail applies the bias, ReLU and dropout as it loads).
    void dense_forward(size_t l, double n, bool raw = false) {
        const DenseShape& d = L.dense[l];
        const std::string what = "dense" + std::to_string(l + 1);
        product(what, 2 * n * d.in * d.out, (n * d.in + double(d.in) * d.out + n * d.out) * kF);
        if (!raw) add("bias_relu_dropout", what, 2 * n * d.out, (2 * n * d.out + d.out) * kF);
    }
    // The dense backward of layer l: mask (unless done), dW, db (unless done), dx.
    void dense_backward(size_t l, double n, bool masked, bool db_done) {
        const DenseShape& d = L.dense[l];
        const bool last = l + 1 == L.dense.size();
        const std::string what = "dense" + std::to_string(l + 1);
        const double dy = n * d.out * kF, x = n * d.in * kF, w = double(d.in) * d.out * kF;
        if (!masked && (!last || r.net.embed_relu)) add("relu_dropout_backward", what, n * d.out, 3 * dy);
        product(what + " dW", 2 * n * d.in * d.out, dy + x + w, side());
        if (!db_done) add("column_sums", what + " db", n * d.out, dy + d.out * kF, false, side());
        product(what + " dx", 2 * n * d.in * d.out, dy + w + x);
    }
    void conv_backward(size_t l, double n, bool gathered, bool bank) {
        const ConvShape& s = L.conv[l];
        const std::string what = "conv" + std::to_string(l + 1);
        const double g = n * s.out_elems() * kF, arg = n * s.out_elems(), in = n * s.in_elems() * kF;
        const double src = n * s.in_elems() * pixel_bytes(bank);  // the layer's input as stored
        const double wb = (s.F * s.C * s.K * s.K + s.F) * kF, madds = conv_bwd_madds(s, n);
        const bool fuse = e.fused && !cudnn();
        if (!fuse) add("relu_dropout_backward", what, n * s.out_elems(), 3 * g);
        if (cudnn()) {
            const double dconv = n * s.F * double(s.Ho) * s.Wo * kF;
            add("pool_backward_kernel", what, 0, g + arg + dconv);
            if (cudnn_staged(gathered, bank)) add("gather_images_kernel", what, 0, src + in);
            add("cudnnConvolutionBackwardFilter", what + " dW", 2 * n * s.F * double(s.Ho) * s.Wo * s.C * s.K * s.K, dconv + in + wb, true);
            add("cudnnConvolutionBackwardBias", what + " db", dconv / kF, dconv + s.F * kF, true);
            if (l > 0)
                add("cudnnConvolutionBackwardData", what + " dx", 2 * n * s.F * double(s.Ho) * s.Wo * s.C * s.K * s.K,
                    dconv + wb + in, true);
            return;
        }
        const bool tiled = e.conv == ConvAlgo::Tiled;
        const double mask = fuse ? g : 0;  // the output y read beside the gradient
        const bool beside = side() && l > 0;  // the bottom layer's has no input gradient to overlap
        add(tiled ? "conv_backward_weights_tiled" : "conv_backward_weights", what + " dW", 2 * madds, g + mask + arg + src + wb,
            false, beside);
        if (!fuse) add("column_sums", what + " dW chunks", 0, wb, false, beside);
        if (l > 0)
            add(tiled ? "conv_backward_input_tiled" : "conv_backward_input", what + " dx", 2 * madds, g + mask + arg + wb + in);
    }

    void pairs_step() {
        const double count = r.batch, n = 2 * count;
        const size_t nd = L.dense.size(), nc = L.conv.size();
        const bool tail = e.fused && fused_tail_applies(r);
        const int E = L.embed_dim();
        if (!e.fused) add("build_gather", "pairs", 0, 3 * n * kF);  // fused: conv1 reads the pair order
        conv_forwards(n, true, true);
        const size_t dense_fwd = tail ? nd - 1 : nd;
        for (size_t l = 0; l < dense_fwd; ++l) dense_forward(l, n, tail && l + 1 == dense_fwd);
        if (tail) {
            const DenseShape& d = L.dense[nd - 1];
            add("contrastive_tail", "dense" + std::to_string(nd - 1) + " epilogue, dense" + std::to_string(nd) + ", loss, backward",
                6 * n * d.in * d.out + 2 * n * d.in, (2 * n * d.in + 2 * double(d.in) * d.out + 2 * d.out + 2 * d.in + count) * kF);
        } else {
            if (r.net.l2_normalize) add("l2_normalize_forward", "head", 3 * n * E, 2 * n * E * kF);
            add("contrastive_loss", "distance + loss", 4 * n * E, (2 * n * E + count) * kF);
            if (r.net.l2_normalize) add("l2_normalize_backward", "head", 4 * n * E, 3 * n * E * kF);
        }
        for (size_t l = dense_fwd; l-- > 0;) dense_backward(l, n, tail && l + 2 == nd, tail && l + 2 == nd);
        for (size_t l = nc; l-- > 0;) conv_backward(l, n, l == 0, l == 0);
        optimizer();
    }

    void groups_step() {
        const double n = double(r.P) * r.K;
        const size_t nd = L.dense.size(), nc = L.conv.size();
        const int E = L.embed_dim();
        const double img = double(r.net.in_h) * r.net.in_w;
        if (r.augment.enabled)
            add("augment_images", "views", 30 * n * img, n * img * (pixel_bytes(true) + kF));
        else
            add("build_gather_images", "batch", 0, 2 * n * kF);
        conv_forwards(n, !r.augment.enabled, !r.augment.enabled);
        for (size_t l = 0; l < nd; ++l) dense_forward(l, n);
        if (r.net.l2_normalize) add("l2_normalize_forward", "head", 3 * n * E, 2 * n * E * kF);
        const double pairs = n * (n - 1) / 2;
        if (r.loss == BatchLoss::Softmax) {
            add("softmax_rows_kernel", "in-batch loss", 2 * n * n * E, 2 * n * E * kF);
            add("softmax_grad_kernel", "in-batch loss", 4 * n * n * E, 2 * n * E * kF);
            add("softmax_sum_kernel", "in-batch loss", n, 2 * n * kF);
        } else {
            add("pair_weights_kernel", "in-batch loss", pairs, n * kF);
            add("batch_loss_rows_kernel", "in-batch loss", 6 * n * n * E, 2 * n * E * kF);
            add("sum_rows_kernel", "in-batch loss", n, n * kF);
        }
        if (r.net.l2_normalize) add("l2_normalize_backward", "head", 4 * n * E, 3 * n * E * kF);
        for (size_t l = nd; l-- > 0;) dense_backward(l, n, false, false);
        for (size_t l = nc; l-- > 0;) conv_backward(l, n, l == 0 && !r.augment.enabled, l == 0 && !r.augment.enabled);
        optimizer();
    }

    // The validation pass over `images` bank images and `pairs` pairs (queue_validation): the
    // inference forward (no dropout draws, the same launches), flip averaging when the recipe
    // has it, the embeddings copied out, the pairs' distances and their copy to the host.
    void validation(double images, double pairs) {
        const size_t nd = L.dense.size();
        const double E = L.embed_dim(), img = double(r.net.in_h) * r.net.in_w;
        for (int view = 0; view < (r.net.flip_average ? 2 : 1); ++view) {
            if (view == 1) add("mirror_images", "flip view", 0, images * img * (pixel_bytes(true) + kF));
            conv_forwards(images, false, view == 0);  // the mirror view reads the FP32 mirror images
            for (size_t l = 0; l < nd; ++l) dense_forward(l, images);
            if (r.net.l2_normalize) add("l2_normalize_forward", "head", 3 * images * E, 2 * images * E * kF);
            if (view == 0)
                add("cudaMemcpyAsync", "embeddings (device to device)", 0, 2 * images * E * kF);
            else
                add("flip_average", "mean of the views", 2 * images * E, 3 * images * E * kF);
        }
        add("pair_distances", "validation pairs", 3 * pairs * E, (2 * pairs * E + 3 * pairs) * kF);
        add("cudaMemcpyAsync", "distances (device to host)", 0, pairs * kF);
    }

    void optimizer() {
        const double p = double(L.total);
        if (e.fused) {
            add("optimizer_step_advance", "all weights + step state", 10 * p, 6 * p * kF);
        } else {
            add("optimizer_step", "all weights", 10 * p, 6 * p * kF);
            add("advance_state", "step state", 0, 0);
        }
    }
};

std::string human(double v, const char* unit) {
    const char* pre[] = {"", "k", "M", "G", "T"};
    int k = 0;
    while (v >= 1000 && k < 4) v /= 1000, ++k;
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.3g %s%s", v, pre[k], unit);
    return buf;
}

std::string micro(double seconds) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.2f us", seconds * 1e6);
    return buf;
}

// A launch's floor: its arithmetic or its bytes at the peak, whichever takes longer.
double launch_floor(const PlannedLaunch& k, double peak_flops, double peak_bytes_per_s) {
    return std::max(k.flops / (k.tf32 ? peak_flops * kTf32PeakRatio : peak_flops), k.bytes / peak_bytes_per_s);
}

}  // namespace

bool fused_tail_applies(const Recipe& r) {
    const ParamLayout L = make_layout(r.net);
    return r.sampler == Recipe::Sampler::Pairs && !r.net.l2_normalize && L.dense.size() >= 2 &&
           tail_pairs_per_block(L.dense.back().in, L.dense.back().out) > 0;
}

std::vector<PlannedLaunch> cuda_step_plan(const Recipe& r, const EngineOptions& e) {
    Planner p{r, e, make_layout(r.net), {}};
    if (r.sampler == Recipe::Sampler::PK)
        p.groups_step();
    else
        p.pairs_step();
    return p.out;
}

double plan_floor(const std::vector<PlannedLaunch>& plan, double peak_flops, double peak_bytes_per_s) {
    double t = 0;
    for (const PlannedLaunch& k : plan) t += launch_floor(k, peak_flops, peak_bytes_per_s);
    return t;
}

EpochPlan cuda_epoch_plan(const Recipe& r, const EngineOptions& e, int train_pairs, int bank_images, int val_pairs) {
    if (r.sampler != Recipe::Sampler::Pairs || train_pairs < 1 || r.batch < 1)
        throw std::logic_error("cuda_epoch_plan: the pair sampler's epochs only");
    EpochPlan p;
    p.full_steps = train_pairs / r.batch;
    const int rest = train_pairs - p.full_steps * r.batch;
    p.step = cuda_step_plan(r, e);
    if (rest > 0) {
        Recipe last = r;
        last.batch = rest;
        p.last_step = cuda_step_plan(last, e);
    }
    Planner v{r, e, make_layout(r.net), {}};
    if (val_pairs > 0) v.validation(bank_images, val_pairs);
    p.validation = v.out;
    return p;
}

std::string plan_table(const std::vector<PlannedLaunch>& plan, double peak_flops, double peak_bytes_per_s) {
    std::ostringstream o;
    char line[256];
    std::snprintf(line, sizeof line, "%3s  %-30s %-40s %11s %11s %11s\n", "#", "launch", "what", "FLOP", "bytes",
                  "floor");
    o << line;
    double flops = 0, bytes = 0, floor = 0, path_floor = 0;
    int library = 0, side = 0, tf32 = 0;
    for (size_t i = 0; i < plan.size(); ++i) {
        const PlannedLaunch& k = plan[i];
        const double f = launch_floor(k, peak_flops, peak_bytes_per_s);
        flops += k.flops;
        bytes += k.bytes;
        floor += f;
        if (!k.side) path_floor += f;
        library += k.library;
        side += k.side;
        tf32 += k.tf32;
        std::snprintf(line, sizeof line, "%3zu  %-30s %-40s %11s %11s %11s\n", i + 1,
                      (k.kernel + (k.tf32 ? " (tf32)" : "") + (k.library ? " *" : "")).c_str(),
                      (k.what + (k.side ? " (side)" : "")).c_str(),
                      human(k.flops, "").c_str(), human(k.bytes, "B").c_str(), micro(f).c_str());
        o << line;
    }
    std::snprintf(line, sizeof line, "%3s  %-30s %-40s %11s %11s %11s\n", "", "total", "", human(flops, "").c_str(),
                  human(bytes, "B").c_str(), micro(floor).c_str());
    o << line;
    if (library)
        o << plan.size() << " launches per step (" << library
          << " library calls, marked *, each of which may launch more than one kernel: cuBLAS may add a split-K reduction)\n";
    else
        o << plan.size() << " launches per step (no library calls: each line is one kernel)\n";
    o << "floor: max(FLOP / " << human(peak_flops, "FLOP/s") << ", bytes / " << human(peak_bytes_per_s, "B/s")
      << ") per launch";
    if (tf32) o << "; the " << tf32 << " marked (tf32) at TF32's " << human(peak_flops * kTf32PeakRatio, "FLOP/s");
    o << "\n";
    if (side)
        o << "critical path: " << plan.size() - size_t(side) << " launches, floor " << micro(path_floor) << "; the " << side
          << " marked (side) run on a second stream beside it (train --side-stream)\n";
    return o.str();
}

}  // namespace siamese
