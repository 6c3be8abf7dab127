// What the CPU reference and the CUDA engine both implement. The trainer hands a backend the
// image bank once and each epoch's ordered pairs once; a batch is then just a range of that
// order, so a GPU backend never copies pixels per batch.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "siamese/augment.hpp"
#include "siamese/pixel_branch.hpp"
#include "siamese/dataset.hpp"
#include "siamese/network.hpp"
#include "siamese/optimizer.hpp"
#include "siamese/pairs.hpp"
#include "siamese/rules.hpp"
#include "siamese/sampler.hpp"

namespace siamese {

// The recipe: everything that defines the trained model, in one place (the trainer and the
// backends read it; nothing else keeps a copy of the margin or the seed).
struct Recipe {
    NetConfig net;
    OptimizerConfig opt;
    float margin = 1.0f;
    uint64_t seed = 1;  // pairs, initialisation, epoch shuffles and the dropout stream (Philox key)
    int epochs = 13;
    int batch = 128;    // pairs per step (the pair sampler)
    // How batches are made: the epoch's shuffled pair list (the reference recipe), or P people
    // x K images with the loss over every pair in the batch (sampler.hpp, batch_loss.hpp).
    enum class Sampler { Pairs, PK } sampler = Sampler::Pairs;
    int P = 16, K = 8;
    Mining mining = Mining::All;
    BatchLoss loss = BatchLoss::Contrastive;  // P-K batches: the in-batch loss
    float temperature = 0.05f;                // BatchLoss::Softmax: logits are dot products / temperature
    AugmentConfig augment;  // P-K batches: a fresh random view of every image at every step
};

// CUDA convolutions: the fused kernels, cuDNN, or the fused kernels with each image staged in
// shared memory (tiled; not yet measured on a GPU: docs/gpu-speed.md).
enum class ConvAlgo { Custom, Cudnn, Tiled };
ConvAlgo parse_conv_algo(const std::string& name);  // "custom", "cudnn" or "tiled"; UsageError otherwise

// How an engine runs a recipe: these change the speed, not the result (beyond FP32 rounding
// between engines; the same engine and recipe give bit-identical runs).
struct EngineOptions {
    std::string device = "auto";      // auto, cpu or cuda
    int threads = 0;                  // CPU threads (0: all cores)
    ConvAlgo conv = ConvAlgo::Custom;
    bool graphs = true;               // CUDA: capture the training step once, replay it per batch
    bool profile = false;             // time every phase (CUDA: CUDA events, captured into the graphs)
    // CUDA: the fused step (siamese/step_plan.hpp): the tail kernel, the relu/dropout masks read by
    // the conv backward kernels, reductions and the state advance done by the kernels' last
    // blocks. Off by default until a GPU run has checked it (docs/gpu-speed.md).
    bool fused = false;
    // The dense layers' products on TF32 operands (10 fraction bits): CUDA's cuBLAS GEMMs on
    // tensor cores; the CPU engine emulates it (operands cut to TF32, siamese/tf32.hpp), which is
    // how its accuracy effect was measured (docs/gpu-speed.md). Off by default: an optional
    // precision path, its speed for gpu_check.sh to measure.
    bool tf32 = false;
    // CUDA: the dense layers' products on the engine's own kernel (cuda/gemm_phases.hpp: one
    // launch each, split along K with a fixed-order reduction) instead of cuBLAS (--gemm custom;
    // FP32 only, so not with tf32). Off by default until a GPU run has measured it.
    bool custom_gemm = false;
    // CUDA: each layer's weight gradient on a second stream as soon as the gradient at its output
    // is ready, while the main stream goes on down the input gradients (the weight gradients are
    // off the step's critical path: only the optimizer needs them). The same kernels and sums:
    // the same bits. Off by default until a GPU run has checked it (--side-stream); while
    // profiling the step is one stream.
    bool side_stream = false;
    // The image bank in FP16 (--half-bank): each pixel rounded once, on the host, to the nearest
    // FP16 value (siamese/half.hpp). The CUDA engine keeps the 16-bit values (half the bytes of
    // the bank: a 5,000-photo bank of 56x46, 52 MB in FP32, past an H100's 50 MiB L2, is 26 MB) and widens them exactly as
    // conv1 reads them; the CPU engine trains on the same rounded floats. Only the bank's
    // images are rounded: images embedded from outside it (verify, identify) stay FP32. Off by
    // default: its accuracy effect is measured (docs/gpu-speed.md), its speed not yet on a GPU.
    bool half_bank = false;
};

class Backend {
public:
    virtual ~Backend() = default;
    virtual std::string name() const = 0;
    virtual const ParamLayout& layout() const = 0;
    virtual const NetConfig& net_config() const = 0;
    // The embedding's width: the network's, plus the pixel branch's when one is set.
    int embed_dim() const { return layout().embed_dim() + pixel_.dims; }
    // The images training and embed_bank() read (kept by reference: the bank outlives the backend).
    void upload_images(const ImageBank& bank) {
        bank_ref_ = &bank;
        do_upload_images(bank);
    }
    // A pixel branch appended to every embedding from now on (siamese/pixel_branch.hpp; training
    // steps are unaffected: it is fit after training).
    void set_pixel_branch(PixelBranch p) { pixel_ = std::move(p); }
    const PixelBranch& pixel_branch() const { return pixel_; }
    // Sets the weights; zeroes the optimizer state.
    virtual void set_params(const std::vector<float>& params) = 0;
    virtual std::vector<float> params() = 0;
    virtual std::vector<float> opt_state() = 0;          // 2 * n_params floats
    // The gradient of the last training step (flat layout; for tests and diagnostics).
    virtual std::vector<float> last_gradient() = 0;
    virtual void set_opt_state(const std::vector<float>& s) = 0;
    // The epoch's pairs in training order; resets the batch-loss list.
    void begin_epoch(const PairSet& ordered);
    // The same as begin_epoch(epoch_order(train, seed, epoch)), the trainer's way: the CUDA engine
    // keeps `train` on the device (uploaded again only when it changes) and builds the order
    // there with one kernel, so an epoch starts with no upload and no wait for the device.
    void begin_epoch_shuffled(const PairSet& train, uint64_t seed, int epoch);
    // One optimisation step on pairs [first, first+count) of the epoch's order. `step` is the
    // global 0-based step: it keys the dropout stream and the optimizer's step count (step+1).
    // A range outside the epoch's order (or before any begin_epoch) is refused with
    // std::logic_error on every backend: a kernel would otherwise read past the order's end.
    void train_batch(int first, int count, uint64_t step);
    // The P-K sampler's epoch: its images in batch order (resets the batch-loss list), then one
    // step on images [first, first+count): a forward of the batch's images (augmented when the
    // recipe asks), the in-batch loss over all their pairs, backward and update. Ranges are
    // checked as train_batch's.
    void begin_epoch_groups(const GroupOrder& order);
    void train_group(int first, int count, uint64_t step);
    // `batches` consecutive steps (train_group's when groups, else train_batch's) of `per` items
    // from `first`, at steps step, step + 1, ...; the last may be short where the epoch's items
    // run out. The same results as calling them one by one (bit for bit); the CUDA engine
    // replays the full batches as ONE captured graph (fewer launches, no gaps between steps).
    void train_run(bool groups, int first, int per, int batches, uint64_t step);
    // How many batches a train_run call should hold to pay: 1 where nothing is gained (the CPU).
    virtual int preferred_run() const { return 1; }
    // A whole epoch of the pair sampler in one call, what the trainer does when nothing has to
    // happen between its steps: begin_epoch_shuffled(train, seed, epoch), its ceil(n / per)
    // batches of `per` pairs from `step` (train_run), then the validation distances of `val`
    // (bank_pair_distances) and the batch losses. The same results as those calls, bit for bit.
    // The CUDA engine (with graphs) replays it as ONE graph: the order, the steps, validation and
    // the copies back, launched once and waited for once.
    struct EpochOutput {
        std::vector<float> losses;         // the batches' mean losses, in order
        std::vector<float> val_distances;  // of `val`
    };
    EpochOutput train_epoch(const PairSet& train, uint64_t seed, int epoch, int per, uint64_t step, const PairSet& val);
    // The same for the P-K sampler: begin_epoch_groups(order), its ceil(n / per) batches of `per`
    // images, validation, losses; on the CUDA engine one graph whose first node copies the order
    // in from pinned memory.
    EpochOutput train_epoch_groups(const GroupOrder& order, int per, uint64_t step, const PairSet& val);
    // Mean losses of this epoch's batches so far, in order (waits for the device). A step whose
    // loss or gradient was not finite reports NaN; backends never decide about divergence
    // themselves: the trainer does (train_model), naming the tensor from last_gradient().
    virtual std::vector<float> batch_losses() = 0;
    // Inference embeddings (no dropout) of every bank image: (n_images, embed_dim()).
    std::vector<float> embed_bank();
    // Inference embeddings of n images given as (n, in_h, in_w) floats.
    std::vector<float> embed(const float* images, int n);
    // Distances of bank-image pairs under the current weights (the CUDA engine computes them
    // on the device from device-resident embeddings).
    std::vector<float> bank_pair_distances(const PairSet& pairs);
    // Distances of pairs of rows of `embeddings` (n, embed_dim()), e.g. from embed_bank().
    std::vector<float> distances(const std::vector<float>& embeddings, const PairSet& pairs);
    // Per-phase timings when profiling was asked for (empty otherwise).
    virtual std::string profile_report() { return ""; }
    // Kernel nodes of the last captured training-step graph (CUDA); -1 when none was captured.
    virtual int step_kernel_nodes() const { return -1; }
    // How many train_epoch calls ran as one captured graph (CUDA); 0 elsewhere.
    virtual long epochs_as_graph() const { return 0; }

protected:
    virtual void do_upload_images(const ImageBank& bank) = 0;
    // The network's part of the methods above (rows of layout().embed_dim()).
    virtual std::vector<float> net_embed_bank() = 0;
    virtual std::vector<float> net_embed(const float* images, int n) = 0;
    virtual std::vector<float> net_bank_pair_distances(const PairSet& pairs);
    virtual std::vector<float> net_distances(const std::vector<float>& embeddings, const PairSet& pairs);
    virtual void do_begin_epoch(const PairSet& ordered) = 0;
    virtual void do_begin_epoch_shuffled(const PairSet& train, uint64_t seed, int epoch);  // default: on the host
    virtual void do_train_batch(int first, int count, uint64_t step) = 0;  // range already checked
    virtual void do_begin_epoch_groups(const GroupOrder& order) = 0;
    virtual void do_train_group(int first, int count, uint64_t step) = 0;  // range already checked
    // `batches` full batches of `per` items from `first` (range already checked); default: one by one.
    virtual void do_train_run(bool groups, int first, int per, int batches, uint64_t step);
    // train_epoch's work (per >= 1 and a non-empty train already checked); default: the calls it names.
    virtual EpochOutput do_train_epoch(const PairSet& train, uint64_t seed, int epoch, int per, uint64_t step,
                                       const PairSet& val);
    virtual EpochOutput do_train_epoch_groups(const GroupOrder& order, int per, uint64_t step, const PairSet& val);

private:
    EpochOutput end_epoch(const PairSet& val);  // the default epochs' validation, then losses
    void check_range(const char* what, int first, int count, long size) const;
    const ImageBank* bank_ref_ = nullptr;
    PixelBranch pixel_;
    long epoch_pairs_ = -1;   // pairs in the current epoch's order; -1 before the first epoch
    long epoch_images_ = -1;  // images in the current epoch's group order; -1 before one
};

// Per-phase timings as the engines print them: name -> (total milliseconds, calls), largest
// first, with each phase's share of the total.
using PhaseTimes = std::map<std::string, std::pair<double, long>>;
std::string profile_table(const PhaseTimes& ms);

std::unique_ptr<Backend> make_cpu_backend(const Recipe& r, const EngineOptions& e);

// What this build's CUDA engine was compiled with ("CUDA engine: built with CUDA 13.0, cuDNN 9.x"
// or "CUDA engine: not built ..."), for --version; touches no device.
std::string cuda_build_info();
// True when the CUDA engine is built in and a device answers; otherwise `why` says why not.
bool cuda_device_available(std::string* why);
// Throws DeviceError with a clear message when CUDA is not built or no device is present.
std::unique_ptr<Backend> make_cuda_backend(const Recipe& r, const EngineOptions& e);
// e.device: "cpu", "cuda" or "auto" (CUDA when a device answers, else the CPU); UsageError otherwise.
std::unique_ptr<Backend> make_backend(const Recipe& r, const EngineOptions& e);

}  // namespace siamese
