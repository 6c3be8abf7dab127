// The CUDA engine: the image bank and the training pairs live on the device. One training
// step = gather indices -> fused conv blocks (both twins in one launch per layer) -> dense
// layers (cuBLAS) -> fused distance + loss -> backward -> one optimizer kernel; kernels read the
// batch position from a device-side StepState that the step's last kernel advances, so steps
// captured one after another replay as they would run one by one. --fused: 10 launches a step
// instead of 25 (siamese plan lists them: the tail kernel, masks and reductions folded into the
// kernels that produce their inputs, the state advanced by the optimizer). The P-K sampler's
// step (the strong recipe) is the same pipeline on one set of images: gather-and-augment from
// the bank -> the same conv blocks and dense layers (-> L2 head) -> the in-batch loss over every
// pair -> the same backward and optimizer.
//
// Graphs: a whole epoch is ONE graph (train_epoch, train_epoch_groups): the epoch's order (built
// on the device for the pair sampler, shuffle.cu; copied in from pinned memory for P-K), every
// step, the validation pass and the copies of the losses and distances into pinned memory. The
// first epoch at a set of buffers runs as separate calls (a run of steps as one graph after an
// eager warm-up step, train_run; validation eager, then as its own graph), where cuBLAS and
// cuDNN set themselves up outside any capture; the next epoch is captured.
//
// Streams: each layer's weight gradient runs on a second stream as soon as the gradient at its
// output is ready, beside the main stream's input-gradient chain; the optimizer waits for both
// (EngineOptions::side_stream, --side-stream; the same kernels, the same bits; captured graphs
// hold the fork and join as edges).
#include <algorithm>
#include <iterator>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <memory>
#include <sstream>
#include <tuple>

#include "buffer.hpp"
#include "check.hpp"
#if SIAMESE_HAVE_CUDNN
#include "cudnn_conv.hpp"
#endif
#include "handles.hpp"
#include "kernels.hpp"
#include "launch.hpp"
#include "nvtx.hpp"
#include "siamese/backend.hpp"
#include "siamese/half.hpp"
#include "siamese/rules.hpp"  // dropout layer ids, shared with the CPU
#include "siamese/step_plan.hpp"  // fused_tail_applies: the plan and the engine decide alike

namespace siamese {

namespace cuda {

namespace {

// cuBLAS workspace: 32 MiB, what cuBLAS asks for on Hopper, so captured GEMMs never allocate.
constexpr size_t kCublasWorkspaceBytes = 32u << 20;

class CudaBackend final : public Backend {
    // A profiled phase: CUDA events around it (--profile).
    struct Pending {
        std::string name;
        Event a, b;
    };
    // A captured graph, and (profiling) the events of its phases, which its event-record nodes
    // name: declared first, so that they are destroyed after the graph.
    struct Graph {
        std::vector<Pending> phases;
        GraphExec exec;
        explicit operator bool() const { return bool(exec); }
        void reset() {
            exec.reset();
            phases.clear();
        }
    };

public:
    CudaBackend(const Recipe& r, const EngineOptions& e) : r_(r), e_(e), L_(make_layout(r.net)) {
#if !SIAMESE_HAVE_CUDNN
        if (e.conv == ConvAlgo::Cudnn)
            throw UsageError("--conv cudnn: this build has no cuDNN (configure with -DCUDNN_ROOT=DIR, or install cuDNN)");
#endif
        if (e.custom_gemm && e.tf32)
            throw UsageError("--tf32 with --gemm custom: TF32 is cuBLAS's; the custom dense products are FP32");
        // Every copy and kernel goes to this stream, in order (with --side-stream the weight
        // gradients go to a second one, ordered by events); nothing relies on the legacy default
        // stream's implicit synchronisation.
        stream_ = make_stream();
        cublas_ws_.resize(kCublasWorkspaceBytes);
        cublas_ = make_cublas(stream_.get(), cublas_ws_.get(), cublas_ws_.size(), e.tf32);
        if (e.side_stream) {  // the weight gradients' stream, its own cuBLAS handle and workspace
            side_ = make_stream();
            fork_ = make_sync_event();
            join_ = make_sync_event();
            cublas_side_ws_.resize(kCublasWorkspaceBytes);
            cublas_side_ = make_cublas(side_.get(), cublas_side_ws_.get(), cublas_side_ws_.size(), e.tf32);
        }
        if (e.custom_gemm) {  // the custom products' split-K scratch and tile counters, a set per stream
            for (int k = 0; k < (e.side_stream ? 2 : 1); ++k) {
                gemm_partial_[k].resize(kGemmPartialFloats);
                gemm_counters_[k].resize(kGemmCounters);
                gemm_counters_[k].fill_bytes(0, stream_.get());
            }
        }
#if SIAMESE_HAVE_CUDNN
        if (e.conv == ConvAlgo::Cudnn) {
            cudnnHandle_t c = nullptr;
            CUDNN_CHECK(cudnnCreate(&c));
            cudnn_ = Owned<cudnnHandle_t, CudnnDestroy>(c);
            CUDNN_CHECK(cudnnSetStream(c, stream_.get()));  // once, before any block is made
        }
#endif
        params_.resize(L_.total);
        grad_.resize(L_.total);
        opt_state_.resize(2 * L_.total);
        state_.resize(1);
        opt_state_.fill_bytes(0, stream_.get());
        state_.fill_bytes(0, stream_.get());
        // The last-block counters of the fused step (cuda/last_block.cuh): each kernel leaves its
        // own at zero. Slot 0: the tail, 1: the optimizer, 2 + l: conv block l's weight gradient.
        counters_.resize(2 + L_.conv.size());
        counters_.fill_bytes(0, stream_.get());
        tail_ = e_.fused && fused_tail_applies(r_);
        // A slice a conv layer (their weight gradients may run at once on the two streams), each
        // enough for any batch: the chunk count is capped per shape.
        size_t partial = 0;
        for (const ConvShape& s : L_.conv) {
            partial_at_.push_back(partial);
            partial += conv_partial_elems(s);
        }
        partial_.resize(partial);
    }
    std::string name() const override {
#if SIAMESE_HAVE_CUDNN
        if (!conv_blocks_.empty()) {
            std::string n = "cuda (cudnn conv";
            for (size_t l = 0; l < conv_blocks_.size(); ++l)
                n += "; conv" + std::to_string(l + 1) + ": " + conv_blocks_[l]->describe();
            return n + ")";
        }
#endif
        const std::string fused =
            std::string(e_.fused ? ", fused" : "") + (e_.tf32 ? ", tf32" : "") + (e_.custom_gemm ? ", custom gemm" : "");
        if (e_.conv == ConvAlgo::Tiled) return "cuda (tiled conv" + fused + ")";
        if (e_.conv == ConvAlgo::Cudnn) return "cuda (cudnn conv" + fused + ")";
        return fused.empty() ? "cuda" : "cuda (" + fused.substr(2) + ")";
    }
    const ParamLayout& layout() const override { return L_; }
    const NetConfig& net_config() const override { return r_.net; }

    // Uploads are issued on the engine's stream and waited for (buffer.hpp); a reallocation
    // that moves a buffer a captured graph uses is caught at the next launch (graphs_valid).
    void do_upload_images(const ImageBank& bank) override {
        NvtxRange r("upload_images");
        if (e_.half_bank) {  // FP16 (--half-bank): each pixel rounded once, here; widened exactly as read
            std::vector<uint16_t> h(bank.pixels.size());
            std::transform(bank.pixels.begin(), bank.pixels.end(), h.begin(), half_from_float);
            bank16_.upload(h, stream_.get());
        } else {
            bank_.upload(bank.pixels, stream_.get());
        }
        n_bank_ = bank.size();
    }
    void set_params(const std::vector<float>& p) override {
        params_.upload(p, stream_.get());
        opt_state_.fill_bytes(0, stream_.get());
    }
    std::vector<float> params() override { return params_.download(stream_.get()); }
    std::vector<float> opt_state() override { return opt_state_.download(stream_.get()); }
    std::vector<float> last_gradient() override { return grad_.download(stream_.get()); }
    void set_opt_state(const std::vector<float>& s) override { opt_state_.upload(s, stream_.get()); }

    void do_begin_epoch(const PairSet& ordered) override {
        NvtxRange r("begin_epoch");
        order_a_.upload(ordered.a.data(), ordered.a.size(), stream_.get());
        order_b_.upload(ordered.b.data(), ordered.b.size(), stream_.get());
        order_y_.upload(ordered.label.data(), ordered.label.size(), stream_.get());
        losses_.resize(std::max<size_t>(1, ordered.a.size()));
        batches_ = 0;
        expected_first_ = -1;  // force a StepState upload at the first batch
    }

    // The trainer's epochs: the training pairs stay on the device, and the epoch's order is one
    // launch (shuffle.cu), queued behind the previous epoch with no copy and no wait.
    void do_begin_epoch_shuffled(const PairSet& train, uint64_t seed, int epoch) override {
        NvtxRange r("begin_epoch (device shuffle)");
        keep_train_pairs(train);
        const size_t n = train.a.size();
        epoch_order(order_a_.get(), order_b_.get(), order_y_.get(), train_a_.get(), train_b_.get(), train_y_.get(),
                    shuffle_key(seed, epoch, uint32_t(n)), stream_.get());
        losses_.resize(std::max<size_t>(1, n));
        batches_ = 0;
        expected_first_ = -1;
    }

    void do_begin_epoch_groups(const GroupOrder& order) override {
        NvtxRange r("begin_epoch_groups");
        order_a_.upload(order.image.data(), order.image.size(), stream_.get());
        order_ids_.upload(order.person.data(), order.person.size(), stream_.get());
        losses_.resize(std::max<size_t>(1, order.image.size()));
        batches_ = 0;
        expected_first_ = -1;
    }
    void do_train_batch(int first, int count, uint64_t step) override { step_at(first, count, step, false); }
    void do_train_group(int first, int count, uint64_t step) override { step_at(first, count, step, true); }
    // A run of full batches as one graph of `batches` steps: every kernel reads its position from
    // the device-side StepState, which each step's last kernel advances, so the steps captured
    // one after another replay as the steps launched one by one (a [cuda] test compares the bits).
    int preferred_run() const override { return e_.graphs ? 1 << 20 : 1; }
    void do_train_run(bool groups, int first, int per, int batches, uint64_t step) override {
        step_at(first, per, step, groups, batches);  // without graphs: the steps launched one by one
    }

    std::vector<float> batch_losses() override {
        // The epoch's batches only (the buffer holds one slot per pair: 128x what is used).
        losses_host_.copy_from_async(losses_, std::min(size_t(batches_), losses_.size()), stream_.get());
        sync();
        collect_profile();
        return losses_host_.to_vector();
    }

    std::vector<float> net_embed_bank() override { return embed_device(bank(), n_bank_); }
    // The validation pass of every epoch: the bank's inference embeddings, the pairs' distances and
    // their copy into pinned host memory, as one captured graph replayed each epoch (the first
    // pass at a set of buffers runs eagerly: library first-use setup must not happen inside a
    // capture). Its buffers are kept; its pairs are uploaded only when they change.
    std::vector<float> net_bank_pair_distances(const PairSet& pairs) override {
        NvtxRange r("bank_pair_distances");
        if (pairs.size() == 0) return {};
        keep_val_pairs(pairs);
        auto pass = [&] { queue_validation(pairs.size()); };
        if (!e_.graphs)
            pass();
        else if (graph_ready(val_graph_, val_key_, [&] { return graph_key({size_t(pairs.size())}); }, pass, pass))
            launch(val_graph_, "validation (graph)");
        sync();
        collect_profile();
        return val_host_.to_vector();
    }

    // A whole epoch of the pair sampler as ONE graph: epoch_start (the epoch's order, from the
    // step the device state holds), the full batches, the short last one, the validation pass
    // and the copies of the losses and distances into pinned memory; launched once, waited for
    // once. The first epoch at a set of buffers runs as the separate calls (captured step graphs
    // after their eager warm-up: every library's first-use setup happens there); the next one
    // is captured, later ones replayed.
    EpochOutput do_train_epoch(const PairSet& train, uint64_t seed, int epoch, int per, uint64_t step,
                               const PairSet& val) override {
        const int n = train.size(), batches = (n + per - 1) / per, rest = n - (batches - 1) * per;
        // The graph derives the epoch from the step: only where the two agree (they always do in
        // training, whose epochs all have `batches` steps).
        if (!e_.graphs || !pixel_branch().empty() || epoch_at_step(step, batches) != epoch)
            return Backend::do_train_epoch(train, seed, epoch, per, step, val);
        NvtxRange r("train_epoch");
        keep_train_pairs(train);
        if (val.size()) keep_val_pairs(val);
        ensure_capacity(2 * per);
        losses_.resize(std::max<size_t>(1, size_t(n)));
        losses_host_.resize(size_t(batches));  // no allocation inside the capture
        auto queue_epoch = [&] {
            epoch_start(order_a_.get(), order_b_.get(), order_y_.get(), train_a_.get(), train_b_.get(), train_y_.get(), n,
                        seed, batches, state_.get(), stream_.get());
            for (int k = 0; k + 1 < batches; ++k) run_step(per);
            run_step(rest);
            if (val.size()) queue_validation(val.size());
            losses_host_.copy_from_async(losses_, size_t(batches), stream_.get());
        };
        EpochOutput o;
        auto key_now = [&] { return graph_key({size_t(n), size_t(per), size_t(val.size()), size_t(seed)}); };
        auto calls = [&] { o = Backend::do_train_epoch(train, seed, epoch, per, step, val); };
        if (!graph_ready(epoch_graph_, epoch_key_, key_now, calls, queue_epoch)) return o;
        return launch_epoch(epoch_graph_, n, batches, step, val.size() > 0);
    }

    // A whole P-K epoch as ONE graph: the epoch's order (made on the host, written into pinned
    // memory) copied in by the graph's first nodes, the position reset, the steps, validation,
    // the copies back. As for the pair sampler: the first epoch at a set of buffers runs as the
    // separate calls, the next is captured, later ones replayed.
    EpochOutput do_train_epoch_groups(const GroupOrder& order, int per, uint64_t step, const PairSet& val) override {
        if (!e_.graphs || !pixel_branch().empty())
            return Backend::do_train_epoch_groups(order, per, step, val);
        NvtxRange r("train_epoch_groups");
        const int n = order.size(), batches = (n + per - 1) / per, rest = n - (batches - 1) * per;
        order_a_.resize(size_t(n));
        order_ids_.resize(size_t(n));
        order_host_.resize(size_t(n));
        ids_host_.resize(size_t(n));
        if (val.size()) keep_val_pairs(val);
        ensure_capacity(per);
        losses_.resize(std::max<size_t>(1, size_t(n)));
        losses_host_.resize(size_t(batches));
        std::copy(order.image.begin(), order.image.end(), order_host_.get());  // the last graph is done
        std::copy(order.person.begin(), order.person.end(), ids_host_.get());
        auto queue_epoch = [&] {
            CUDA_CHECK(cudaMemcpyAsync(order_a_.get(), order_host_.get(), size_t(n) * sizeof(int), cudaMemcpyHostToDevice,
                                       stream_.get()));
            CUDA_CHECK(cudaMemcpyAsync(order_ids_.get(), ids_host_.get(), size_t(n) * sizeof(int), cudaMemcpyHostToDevice,
                                       stream_.get()));
            epoch_reset(state_.get(), stream_.get());
            for (int k = 0; k + 1 < batches; ++k) run_group_step(per);
            run_group_step(rest);
            if (val.size()) queue_validation(val.size());
            losses_host_.copy_from_async(losses_, size_t(batches), stream_.get());
        };
        EpochOutput o;
        auto key_now = [&] {
            std::vector<const void*> k = graph_key({size_t(n), size_t(per), size_t(val.size())});
            k.push_back(order_host_.ptr());
            k.push_back(ids_host_.ptr());
            return k;
        };
        auto calls = [&] { o = Backend::do_train_epoch_groups(order, per, step, val); };
        if (!graph_ready(groups_graph_, groups_key_, key_now, calls, queue_epoch)) return o;
        return launch_epoch(groups_graph_, n, batches, step, val.size() > 0);
    }

    std::vector<float> net_distances(const std::vector<float>& embeddings, const PairSet& pairs) override {
        NvtxRange r("distances");
        if (pairs.size() == 0) return {};
        DeviceBuffer<float> emb;
        emb.upload(embeddings, stream_.get());
        return device_distances(emb.get(), pairs);
    }
    std::vector<float> net_embed(const float* images, int n) override {
        DeviceBuffer<float> tmp;
        tmp.upload(images, size_t(n) * r_.net.in_h * r_.net.in_w, stream_.get());
        return embed_device(tmp.get(), n);
    }

    std::string profile_report() override { return profile_table(prof_ms_); }
    int step_kernel_nodes() const override { return kernel_nodes_; }
    long epochs_as_graph() const override { return epoch_graph_runs_; }

private:
    void sync() { CUDA_CHECK(cudaStreamSynchronize(stream_.get())); }

    // The rule of the engine's epoch and validation graphs: at new buffers or sizes (key_now()
    // differs from `key`), `eager` runs instead (cuBLAS and cuDNN set themselves up outside any
    // capture) and the key it leaves is kept; the next time, `queue` is captured. True when
    // `graph` is ready to launch, false when `eager` ran.
    template <class KeyNow, class Eager, class Queue>
    bool graph_ready(Graph& graph, std::vector<const void*>& key, KeyNow key_now, Eager eager, Queue queue) {
        if (key_now() != key) {
            graph.reset();
            eager();
            key = key_now();  // what it left allocated
            return false;
        }
        if (!graph) graph = capture(queue);
        return true;
    }
    // Profiling: the graph's phases were captured as event-record nodes; each replay is waited
    // for and its phases' times added (the same table as eager launches, at graph speed).
    void launch(const Graph& graph, const char* name) {
        NvtxRange r(name);
        CUDA_CHECK(cudaGraphLaunch(graph.exec.get(), stream_.get()));
        if (e_.profile) {
            sync();
            add_phase_times(graph.phases);
        }
    }

    // An epoch's graph launched from `step` and waited for; its losses and (with validation)
    // distances, read from pinned memory.
    EpochOutput launch_epoch(const Graph& graph, int n, int batches, uint64_t step, bool validation) {
        if (step != expected_step_) set_step_state(state_.get(), StepState{0, 0, step}, stream_.get());
        launch(graph, "epoch (graph)");
        ++epoch_graph_runs_;
        sync();
        batches_ = batches;
        expected_first_ = n;
        expected_step_ = step + uint64_t(batches);
        EpochOutput o;
        o.losses = losses_host_.to_vector();
        if (validation) o.val_distances = val_host_.to_vector();
        return o;
    }

    // The training pairs the device-side shuffle reads, uploaded when they change; the order's
    // buffers sized for them.
    void keep_train_pairs(const PairSet& train) {
        if (train.a != train_pairs_.a || train.b != train_pairs_.b || train.label != train_pairs_.label) {
            train_a_.upload(train.a.data(), train.a.size(), stream_.get());
            train_b_.upload(train.b.data(), train.b.size(), stream_.get());
            train_y_.upload(train.label.data(), train.label.size(), stream_.get());
            train_pairs_.a = train.a;
            train_pairs_.b = train.b;
            train_pairs_.label = train.label;
        }
        const size_t n = train.a.size();
        order_a_.resize(n);
        order_b_.resize(n);
        order_y_.resize(n);
    }

    // The validation pairs, uploaded when they change, and every buffer their pass uses (all
    // allocated here, so that the pass can be captured).
    void keep_val_pairs(const PairSet& pairs) {
        if (pairs.a != val_pairs_.a || pairs.b != val_pairs_.b) {
            val_a_.upload(pairs.a.data(), pairs.a.size(), stream_.get());
            val_b_.upload(pairs.b.data(), pairs.b.size(), stream_.get());
            val_pairs_.a = pairs.a;
            val_pairs_.b = pairs.b;
        }
        val_emb_.resize(size_t(n_bank_) * L_.embed_dim());
        val_d_.resize(pairs.size());
        val_host_.resize(pairs.size());
        prepare_embed(n_bank_);
    }

    // The validation pass queued on the stream: the bank's embeddings, the distances of the
    // `count` pairs keep_val_pairs holds, and their copy into pinned memory.
    void queue_validation(int count) {
        embed_to_device(bank(), n_bank_, val_emb_.get());
        pair_distances(val_d_.get(), val_emb_.get(), L_.embed_dim(), val_a_.get(), val_b_.get(), count, stream_.get());
        val_host_.copy_from_async(val_d_, size_t(count), stream_.get());
    }

    // What a captured graph depends on: every device buffer (device_pointers), the validation's and
    // the pinned ones, and the sizes it was captured for.
    std::vector<const void*> graph_key(std::initializer_list<size_t> sizes) const {
        std::vector<const void*> key = device_pointers();
        for (const void* q : {(const void*)val_emb_.get(), (const void*)val_d_.get(), (const void*)val_a_.get(),
                              (const void*)val_b_.get(), (const void*)mirror_.get(), (const void*)train_a_.get(),
                              (const void*)train_b_.get(), (const void*)train_y_.get()})
            key.push_back(q);
        for (const void* q : {(const void*)losses_host_.ptr(), (const void*)val_host_.ptr()}) key.push_back(q);
        key.push_back(reinterpret_cast<const void*>(uintptr_t(n_bank_)));
        key.push_back(reinterpret_cast<const void*>(uintptr_t(cap_)));
        for (size_t v : sizes) key.push_back(reinterpret_cast<const void*>(uintptr_t(v)));
        return key;
    }

    // Distances of `pairs` of rows of device embeddings (n, E).
    std::vector<float> device_distances(const float* emb, const PairSet& pairs) {
        DeviceBuffer<int> a, b;
        a.upload(pairs.a.data(), pairs.a.size(), stream_.get());
        b.upload(pairs.b.data(), pairs.b.size(), stream_.get());
        DeviceBuffer<float> d(pairs.size());
        pair_distances(d.get(), emb, L_.embed_dim(), a.get(), b.get(), pairs.size(), stream_.get());
        return d.download(stream_.get());
    }

    // `steps` steps of either sampler from (first, step), `count` items each: the StepState
    // set (a launch, no copy) only when the position is not where the last step left it, then the captured
    // graph of this sampler, batch size and step count replayed (captured after one eager
    // warm-up step the first time).
    void step_at(int first, int count, uint64_t step, bool groups, int steps = 1) {
        ensure_capacity(groups ? count : 2 * count);
        require_elems(losses_.size(), size_t(batches_) + size_t(steps), "train step: batch losses");
        if (first != expected_first_ || step != expected_step_) {
            set_step_state(state_.get(), StepState{first, batches_, step}, stream_.get());
        }
        if (e_.graphs) {
            if (!graphs_valid()) graphs_.clear();
            const GraphKey key{count, groups, steps};
            auto it = graphs_.find(key);
            if (it == graphs_.end()) {
                warm_up(count, groups);  // cuBLAS/cuDNN first-use setup must not happen inside a capture
                it = graphs_.emplace(key, capture_steps(count, groups, steps)).first;
                captured_ = device_pointers();
            }
            launch(it->second, steps == 1 ? "train_step (graph)" : "train_run (graph)");
        } else {
            for (int k = 0; k < steps; ++k) run_any_step(count, groups);
        }
        expected_first_ = first + steps * count;
        expected_step_ = step + uint64_t(steps);
        batches_ += steps;
    }
    void run_any_step(int count, bool groups) {
        if (groups)
            run_group_step(count);
        else
            run_step(count);
    }

    // Every device buffer a captured training step reads or writes. A graph holds raw pointers:
    // when any of them moved (a reallocation in begin_epoch, upload_images, ensure_capacity...)
    // every graph is dropped and the step captured again.
    std::vector<const void*> device_pointers() const {
        std::vector<const void*> p = {bank_.get(),   bank16_.get(), params_.get(),  grad_.get(),    opt_state_.get(), order_a_.get(),
                                      order_b_.get(), order_y_.get(), losses_.get(), partial_.get(),   gather_.get(),
                                      state_.get(),   cublas_ws_.get(), order_ids_.get(), aug_.get(),  rows_.get(),
                                      emb_.get(),     norm_.get(),    counters_.get(), tail_partial_.get(),
                                      cublas_side_ws_.get(), gemm_partial_[0].get(), gemm_partial_[1].get(),
                                      gemm_counters_[0].get(), gemm_counters_[1].get()};
        for (const auto* v : {&conv_out_, &conv_d_, &dense_out_, &dense_d_})
            for (const auto& b : *v) p.push_back(b.get());
        for (const auto& b : conv_arg_) p.push_back(b.get());
#if SIAMESE_HAVE_CUDNN
        for (const auto& blk : conv_blocks_)
            for (const void* q : blk->device_pointers()) p.push_back(q);
#endif
        return p;
    }
    bool graphs_valid() const { return graphs_.empty() || captured_ == device_pointers(); }

    // One eager step before the first capture of a batch size, then everything it changed put
    // back: weights, optimizer state, the StepState (position, batch and step counters) and the
    // batch's loss slot. cuBLAS and cuDNN do their first-use setup (allocations, kernel
    // selection, module loading) here, where it is legal, not inside the capture.
    void warm_up(int count, bool groups) {
        NvtxRange r("warm_up");
        const size_t timed = pending_.size();
        saved_params_.copy_from(params_, stream_.get());
        saved_opt_.copy_from(opt_state_, stream_.get());
        saved_state_.copy_from(state_, stream_.get());
        saved_losses_.copy_from(losses_, stream_.get());
        run_any_step(count, groups);
        params_.copy_from(saved_params_, stream_.get());
        opt_state_.copy_from(saved_opt_, stream_.get());
        state_.copy_from(saved_state_, stream_.get());
        losses_.copy_from(saved_losses_, stream_.get());
        sync();
        pending_.resize(timed);  // not a step of the training: not in the profile
    }

    // Activation and gradient buffers for up to n images; invalidates captured graphs.
    void ensure_capacity(int n) {
        if (n <= cap_) return;
        sync();
        graphs_.clear();
        cap_ = n;
        const size_t nc = L_.conv.size(), nd = L_.dense.size();
        conv_out_.clear(); conv_arg_.clear(); conv_d_.clear(); dense_out_.clear(); dense_d_.clear();
        conv_out_.resize(nc); conv_arg_.resize(nc); conv_d_.resize(nc); dense_out_.resize(nd); dense_d_.resize(nd);
        for (size_t l = 0; l < nc; ++l) {
            const size_t e = size_t(n) * L_.conv[l].out_elems();
            conv_out_[l].resize(e);
            conv_arg_[l].resize(e);
            conv_d_[l].resize(e);
        }
        for (size_t l = 0; l < nd; ++l) {
            dense_out_[l].resize(size_t(n) * L_.dense[l].out);
            dense_d_[l].resize(size_t(n) * L_.dense[l].out);
        }
        gather_.resize(n);
        rows_.resize(batch_loss_scratch_elems(n));
        if (tail_) {
            const DenseShape& d = L_.dense.back();
            tail_partial_.resize(contrastive_tail_partial_elems(std::max(1, n / 2), d.in, d.out));
        }
        if (r_.augment.enabled && r_.sampler == Recipe::Sampler::PK) aug_.resize(size_t(n) * r_.net.in_h * r_.net.in_w);
        if (r_.net.l2_normalize) {
            emb_.resize(size_t(n) * L_.embed_dim());
            norm_.resize(n);
        }
#if SIAMESE_HAVE_CUDNN
        conv_blocks_.clear();
        if (cudnn_)
            for (size_t l = 0; l < nc; ++l)
                conv_blocks_.push_back(std::make_unique<CudnnConvBlock>(cudnn_.get(), L_.conv[l], n));
#endif
    }

    // Host-side check that every activation buffer holds n images (a bug otherwise).
    void check_capacity(int n) const {
        for (size_t l = 0; l < L_.conv.size(); ++l) {
            const size_t e = size_t(n) * L_.conv[l].out_elems();
            require_elems(conv_out_[l].size(), e, "conv output");
            require_elems(conv_arg_[l].size(), e, "conv argmax");
            require_elems(conv_d_[l].size(), e, "conv gradient");
        }
        for (size_t l = 0; l < L_.dense.size(); ++l) {
            require_elems(dense_out_[l].size(), size_t(n) * L_.dense[l].out, "dense output");
            require_elems(dense_d_[l].size(), size_t(n) * L_.dense[l].out, "dense gradient");
        }
        if (r_.net.l2_normalize) {
            require_elems(emb_.size(), size_t(n) * L_.embed_dim(), "normalised embedding");
            require_elems(norm_.size(), size_t(n), "embedding norms");
        }
    }

    // Profiling: CUDA events around each phase. Eager, they are read at the next wait; inside a
    // capture they become event-record nodes of the graph (capture() moves them into it). That
    // takes cudaEventRecordExternal: a plain cudaEventRecord during a capture only marks a point
    // for cross-stream waits (no node), and reading its time after a replay is an error.
    template <class F>
    void phase(const char* name, F&& f) {
        if (!e_.profile) {
            f();
            return;
        }
        Pending p{name, make_event(), make_event()};
        record_timing(p.a.get());
        f();
        record_timing(p.b.get());
        pending_.push_back(std::move(p));
    }
    void record_timing(cudaEvent_t e) {
        cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
        CUDA_CHECK(cudaStreamIsCapturing(stream_.get(), &status));
        const unsigned flags = status == cudaStreamCaptureStatusActive ? cudaEventRecordExternal : cudaEventRecordDefault;
        CUDA_CHECK(cudaEventRecordWithFlags(e, stream_.get(), flags));
    }
    void collect_profile() {
        add_phase_times(pending_);
        pending_.clear();
    }
    void add_phase_times(const std::vector<Pending>& phases) {
        for (const Pending& p : phases) {
            float ms = 0;
            CUDA_CHECK(cudaEventElapsedTime(&ms, p.a.get(), p.b.get()));
            auto& slot = prof_ms_[p.name];
            slot.first += ms;
            slot.second += 1;
        }
    }

    // Forward over n images: layer 1 reads in + gather[i] (or in + i) directly. The fused tail
    // stops before the last dense layer (dense_layers = all but one), and the layer before it
    // stops at its GEMM: the tail kernel applies that layer's bias, ReLU and dropout.
    void forward(ImageIn in, ImageGather gather, int n, bool train, int dense_layers = -1) {
        check_capacity(n);
        cudaStream_t stream = stream_.get();
        ImageIn x = in;  // the next conv layer's input
        size_t first_conv = 0;
        if (pair_forward()) {  // conv1 and conv2 in one launch
            const float rate = train ? r_.net.conv_dropout : 0.0f;
            phase("conv1+2 forward", [&] {
                conv_pair_forward_tiled(conv_out_[0].get(), conv_arg_[0].get(), conv_out_[1].get(), conv_arg_[1].get(), in,
                                        params_.get() + L_.conv_w[0], params_.get() + L_.conv_b[0],
                                        params_.get() + L_.conv_w[1], params_.get() + L_.conv_b[1], L_.conv[0], L_.conv[1],
                                        n, gather, rate, r_.seed, kConvDropoutId, state_.get(), stream);
            });
            x = conv_out_[1].get();
            gather = nullptr;
            first_conv = 2;
        }
        for (size_t l = first_conv; l < L_.conv.size(); ++l) {
            const float rate = train ? r_.net.conv_dropout : 0.0f;
            const uint32_t id = kConvDropoutId + uint32_t(l);
            const float* w = params_.get() + L_.conv_w[l];
            const float* b = params_.get() + L_.conv_b[l];
            phase(l == 0 ? "conv1 forward" : "conv2+ forward", [&] {
#if SIAMESE_HAVE_CUDNN
                if (cudnn_)
                    conv_blocks_[l]->forward(conv_out_[l].get(), conv_arg_[l].get(), x, w, b, n, gather, rate, r_.seed, id,
                                             state_.get(), stream);
                else
#endif
                    if (e_.conv == ConvAlgo::Tiled)
                        conv_pool_forward_tiled(conv_out_[l].get(), conv_arg_[l].get(), x, w, b, L_.conv[l], n, gather,
                                                rate, r_.seed, id, state_.get(), stream);
                    else
                        conv_pool_forward(conv_out_[l].get(), conv_arg_[l].get(), x, w, b, L_.conv[l], n, gather, rate,
                                          r_.seed, id, state_.get(), stream);
            });
            x = conv_out_[l].get();
            gather = nullptr;
        }
        const float* h = x.f32;  // FP32 from here (an FP16 bank is read by conv1: every network has one)
        const size_t nd = dense_layers < 0 ? L_.dense.size() : size_t(dense_layers);
        for (size_t l = 0; l < nd; ++l) {
            const bool last = l + 1 == L_.dense.size();
            const float rate = train && !last ? r_.net.dense_dropout : 0.0f;
            phase("dense forward", [&] {
                if (nd < L_.dense.size() && l + 1 == nd) {
                    dense_forward_raw(dense_out_[l].get(), h, params_.get() + L_.dense_w[l], n, L_.dense[l].in,
                                      L_.dense[l].out, dense_gemm(false), stream);
                    return;
                }
                dense_forward(dense_out_[l].get(), h, params_.get() + L_.dense_w[l], params_.get() + L_.dense_b[l], n,
                              L_.dense[l].in, L_.dense[l].out, !last || r_.net.embed_relu, rate, r_.seed,
                              kDenseDropoutId + uint32_t(l), state_.get(), dense_gemm(false), stream);
            });
            h = dense_out_[l].get();
        }
        if (r_.net.l2_normalize && nd == L_.dense.size())
            phase("l2 normalize", [&] { l2_normalize_forward(emb_.get(), norm_.get(), h, n, L_.embed_dim(), stream); });
    }
    // The images training and validation read: the FP32 bank, or the FP16 one (--half-bank).
    ImageIn bank() const { return e_.half_bank ? ImageIn::half(bank16_.get()) : ImageIn(bank_.get()); }
    // The embeddings of the last forward: (n, E).
    const float* embedding() const { return r_.net.l2_normalize ? emb_.get() : dense_out_.back().get(); }

    // One training step on `count` pairs at the device-side StepState. Fused: conv1 reads the
    // pair order itself (no build_gather launch), and where the recipe allows, the last dense
    // layer, the loss and their backward are one kernel (contrastive_tail).
    void run_step(int count) {
        NvtxRange r("train_step");
        cudaStream_t stream = stream_.get();
        const int n = 2 * count, E = L_.embed_dim();
        ImageGather gather = ImageGather::pairs(order_a_.get(), order_b_.get(), state_.get(), count);
        if (!e_.fused) {
            require_elems(gather_.size(), size_t(n), "gather");
            phase("gather", [&] { build_gather(order_a_.get(), order_b_.get(), state_.get(), count, gather_.get(), stream); });
            gather = gather_.get();
        }
        if (tail_) {
            const int nd = int(L_.dense.size());
            const DenseShape& d = L_.dense.back();
            forward(bank(), gather, n, true, nd - 1);
            phase("tail", [&] {
                contrastive_tail(grad_.get() + L_.dense_w[nd - 1], grad_.get() + L_.dense_b[nd - 1], dense_d_[nd - 2].get(),
                                 grad_.get() + L_.dense_b[nd - 2], losses_.get(), dense_out_[nd - 2].get(),
                                 params_.get() + L_.dense_b[nd - 2], params_.get() + L_.dense_w[nd - 1],
                                 params_.get() + L_.dense_b[nd - 1], order_y_.get(), count, d.in, d.out,
                                 r_.net.embed_relu, r_.margin, r_.net.dense_dropout, r_.seed,
                                 kDenseDropoutId + uint32_t(nd - 2), state_.get(), tail_partial_.get(),
                                 tail_partial_.size(), counters_.get(), stream);
            });
            backward_and_update(n, bank(), gather, count, nd - 2);
            return;
        }
        forward(bank(), gather, n, true);
        phase("distance+loss", [&] {
            contrastive_loss(dense_d_.back().get(), losses_.get(), nullptr, embedding(), order_y_.get(), count, E, r_.margin,
                             state_.get(), stream);
        });
        backward_and_update(n, bank(), gather, count);
    }

    // One P-K step on `count` images of the epoch's group order: gathered (and augmented) from
    // the bank, the loss over every pair in the batch.
    void run_group_step(int count) {
        NvtxRange r("train_group_step");
        cudaStream_t stream = stream_.get();
        const int E = L_.embed_dim(), H = r_.net.in_h, W = r_.net.in_w;
        ImageIn in = bank();
        const int* gather = gather_.get();
        if (r_.augment.enabled) {
            require_elems(aug_.size(), size_t(count) * H * W, "augmented images");
            phase("augment", [&] {
                augment_images(aug_.get(), bank(), order_a_.get(), count, H, W, r_.augment, r_.seed, state_.get(),
                               stream);
            });
            in = aug_.get();
            gather = nullptr;
        } else {
            require_elems(gather_.size(), size_t(count), "gather");
            phase("gather", [&] { build_gather_images(order_a_.get(), state_.get(), count, gather_.get(), stream); });
        }
        forward(in, gather, count, true);
        phase("batch loss", [&] {
            if (r_.loss == BatchLoss::Softmax)
                batch_softmax_loss(dense_d_.back().get(), losses_.get(), embedding(), order_ids_.get(), count, E,
                                   r_.temperature, rows_.get(), rows_.size(), state_.get(), stream);
            else
                batch_contrastive_loss(dense_d_.back().get(), losses_.get(), embedding(), order_ids_.get(), count, E,
                                       r_.margin, r_.mining, rows_.get(), rows_.size(), state_.get(), stream);
        });
        backward_and_update(count, in, gather, count);
    }

    // From the embedding gradient in dense_d_.back() (n, E) down to the weights, the update, and
    // the StepState's advance by `advance` items of the order. After the fused tail, `top` is the
    // penultimate dense layer, whose gradient the tail has already masked and bias-summed.
    void backward_and_update(int n, ImageIn images, ImageGather gather0, int advance, int top = -1) {
        cudaStream_t stream = stream_.get();
        const int nd = int(L_.dense.size()), nc = int(L_.conv.size());
        const bool tail = top >= 0;
        if (!tail) top = nd - 1;
        // Where the weight gradients go: the side stream (after everything queued so far on the
        // main one: the gradient at the layer's output is ready), or the main stream itself.
        const bool side = side_on();
        bool forked = false;
        auto weights_stream = [&]() -> cudaStream_t {
            if (!side) return stream;
            CUDA_CHECK(cudaEventRecord(fork_.get(), stream));
            CUDA_CHECK(cudaStreamWaitEvent(side_.get(), fork_.get(), 0));
            forked = true;
            return side_.get();
        };
        const DenseGemm wgemm = dense_gemm(side);
        if (r_.net.l2_normalize && !tail)
            phase("l2 normalize", [&] {
                l2_normalize_backward(dense_d_.back().get(), dense_d_.back().get(), emb_.get(), norm_.get(), n,
                                      L_.embed_dim(), stream);
            });
        for (int l = top; l >= 0; --l) {
            const bool last = l + 1 == nd, done = tail && l == top;  // done: masked and bias-summed
            const DenseShape& d = L_.dense[l];
            float* dx = l > 0 ? dense_d_[l - 1].get() : conv_d_[nc - 1].get();
            const float* x = l > 0 ? dense_out_[l - 1].get() : conv_out_[nc - 1].get();
            phase("dense backward", [&] {
                if (!done && (!last || r_.net.embed_relu))  // a linear embedding layer has no ReLU (and no dropout)
                    relu_dropout_backward(dense_d_[l].get(), dense_out_[l].get(), n, d.out,
                                          last ? 0.0f : r_.net.dense_dropout, stream);
                dense_backward_weights(grad_.get() + L_.dense_w[l], done ? nullptr : grad_.get() + L_.dense_b[l],
                                       dense_d_[l].get(), x, n, d.in, d.out, wgemm, weights_stream());
                dense_backward_input(dx, dense_d_[l].get(), params_.get() + L_.dense_w[l], n, d.in, d.out,
                                     dense_gemm(false), stream);
            });
        }
        for (int l = nc - 1; l >= 0; --l) {
            const ConvShape& s = L_.conv[l];
            const ImageIn in = l > 0 ? ImageIn(conv_out_[l - 1].get()) : images;
            const ImageGather gather = l > 0 ? ImageGather() : gather0;
            float* din = l > 0 ? conv_d_[l - 1].get() : nullptr;
            float* partial = partial_.get() + partial_at_[l];
            const size_t partial_elems = conv_partial_elems(s);
            // Fused: the relu/dropout mask read inside the backward kernels, the chunk sums by
            // their last block (the same bits as the separate launches).
            ConvBackwardFusion fuse;
            const bool fused = e_.fused && !cudnn_active();
            if (fused) fuse = {conv_out_[l].get(), dropout_keep_scale(r_.net.conv_dropout), counters_.get() + 2 + l};
            phase(l == 0 ? "conv1 backward" : "conv2+ backward", [&] {
                if (!fused)
                    relu_dropout_backward(conv_d_[l].get(), conv_out_[l].get(), n, s.out_elems(), r_.net.conv_dropout,
                                          stream);
#if SIAMESE_HAVE_CUDNN
                if (cudnn_) {  // one call for both gradients, on the stream its handle is bound to
                    conv_blocks_[l]->backward(grad_.get() + L_.conv_w[l], din, conv_d_[l].get(), conv_arg_[l].get(), in,
                                              params_.get() + L_.conv_w[l], n, gather, stream);
                    return;
                }
#endif
                // The weight gradient beside the input gradient when one follows (the bottom
                // layer's has nothing to overlap on the main stream).
                cudaStream_t ws = din ? weights_stream() : stream;
                const float* w = params_.get() + L_.conv_w[l];
                if (e_.conv == ConvAlgo::Tiled) {
                    conv_backward_weights_tiled(grad_.get() + L_.conv_w[l], conv_d_[l].get(), conv_arg_[l].get(), in, s, n,
                                                gather, partial, partial_elems, ws, fuse);
                    if (din) conv_backward_input_tiled(din, conv_d_[l].get(), conv_arg_[l].get(), w, s, n, stream, fuse);
                } else {
                    conv_backward_weights(grad_.get() + L_.conv_w[l], conv_d_[l].get(), conv_arg_[l].get(), in, s, n, gather,
                                          partial, partial_elems, ws, fuse);
                    if (din) conv_backward_input(din, conv_d_[l].get(), conv_arg_[l].get(), w, s, n, stream, fuse);
                }
            });
        }
        if (forked) {  // the optimizer reads every gradient
            CUDA_CHECK(cudaEventRecord(join_.get(), side_.get()));
            CUDA_CHECK(cudaStreamWaitEvent(stream, join_.get(), 0));
        }
        phase("optimizer", [&] {
            if (e_.fused) {
                optimizer_step_advance(r_.opt, params_.get(), grad_.get(), opt_state_.get(), L_.total, state_.get(), advance,
                                       counters_.get() + 1, stream);
                return;
            }
            optimizer_step(r_.opt, params_.get(), grad_.get(), opt_state_.get(), L_.total, state_.get(), stream);
            advance_state(state_.get(), advance, stream);
        });
    }
    // What the dense products of the main stream (or the side stream's) run on: cuBLAS's handle
    // bound to that stream, or the custom kernel with that stream's scratch.
    DenseGemm dense_gemm(bool on_side) {
        const int k = on_side ? 1 : 0;
        if (e_.custom_gemm) return DenseGemm::custom(gemm_partial_[k].get(), gemm_counters_[k].get());
        return on_side ? cublas_side_.get() : cublas_.get();
    }
    // The second stream is used when it was made, and not while profiling (the phases' events
    // are on the main stream: the table shows the step serialised).
    bool side_on() const { return bool(side_) && !e_.profile; }
    // --conv tiled --fused: the first two conv blocks' forward in one launch (conv_pair_forward_tiled).
    bool pair_forward() const { return e_.fused && e_.conv == ConvAlgo::Tiled && !cudnn_active() && L_.conv.size() >= 2; }
    bool cudnn_active() const {
#if SIAMESE_HAVE_CUDNN
        return bool(cudnn_);
#else
        return false;
#endif
    }

    // What f queues on the stream, captured as one graph and instantiated; *kernels: its kernel
    // nodes. Profiling: the phases' events recorded during the capture go with the graph (the
    // capture is relaxed then: creating an event is not a stream operation, but the default
    // mode would refuse it as a potentially unsafe call).
    template <class F>
    Graph capture(F&& f, int* kernels = nullptr) {
        cudaGraph_t graph = nullptr;
        const size_t timed = pending_.size();
        CUDA_CHECK(cudaStreamBeginCapture(stream_.get(),
                                          e_.profile ? cudaStreamCaptureModeRelaxed : cudaStreamCaptureModeThreadLocal));
        try {
            f();
        } catch (...) {
            cudaStreamEndCapture(stream_.get(), &graph);  // leave the stream usable
            if (graph) cudaGraphDestroy(graph);
            pending_.resize(timed);
            throw;
        }
        CUDA_CHECK(cudaStreamEndCapture(stream_.get(), &graph));
        if (kernels) *kernels = count_kernel_nodes(graph);
        cudaGraphExec_t exec = nullptr;
        const cudaError_t err = cudaGraphInstantiate(&exec, graph, 0);
        cudaGraphDestroy(graph);
        CUDA_CHECK(err);
        Graph g;
        g.exec = GraphExec(exec);
        std::move(pending_.begin() + long(timed), pending_.end(), std::back_inserter(g.phases));
        pending_.resize(timed);
        return g;
    }

    Graph capture_steps(int count, bool groups, int steps) {
        NvtxRange r("capture_steps");
        int kernels = 0;
        Graph g = capture([&] { for (int k = 0; k < steps; ++k) run_any_step(count, groups); }, &kernels);
        kernel_nodes_ = kernels / steps;  // per step
        return g;
    }

    // Kernel nodes of a captured step (what the plan of siamese/step_plan.hpp is checked against).
    static int count_kernel_nodes(cudaGraph_t graph) {
        size_t count = 0;
        cudaError_t err = cudaGraphGetNodes(graph, nullptr, &count);
        std::vector<cudaGraphNode_t> nodes(count);
        if (err == cudaSuccess && count) err = cudaGraphGetNodes(graph, nodes.data(), &count);
        int kernels = 0;
        for (size_t i = 0; err == cudaSuccess && i < count; ++i) {
            cudaGraphNodeType type;
            err = cudaGraphNodeGetType(nodes[i], &type);
            kernels += err == cudaSuccess && type == cudaGraphNodeTypeKernel;
        }
        if (err != cudaSuccess) cudaGraphDestroy(graph);
        CUDA_CHECK(err);
        return kernels;
    }

    // The buffers an inference pass over n images uses (allocated here, never during a capture).
    void prepare_embed(int n) {
        ensure_capacity(std::min(std::max(cap_, 512), std::max(n, 1)));
        if (r_.net.flip_average) mirror_.resize(size_t(cap_) * r_.net.in_h * r_.net.in_w);
    }

    // Inference embeddings of n device images into dst (n, E) on the device, in chunks.
    void embed_to_device(ImageIn images, int n, float* dst) {
        NvtxRange r("embed");
        const int E = L_.embed_dim();
        prepare_embed(n);
        const size_t elems = size_t(r_.net.in_h) * r_.net.in_w;
        float* mirror = mirror_.get();
        for (int s = 0; s < n; s += cap_) {
            const int m = std::min(cap_, n - s);
            forward(images.offset(s * elems), nullptr, m, false);
            CUDA_CHECK(cudaMemcpyAsync(dst + size_t(s) * E, embedding(), size_t(m) * E * sizeof(float),
                                       cudaMemcpyDeviceToDevice, stream_.get()));
            if (r_.net.flip_average) {  // the same on the mirror images, then the mean
                mirror_images(mirror, images.offset(s * elems), m, r_.net.in_h, r_.net.in_w, stream_.get());
                forward(mirror, nullptr, m, false);
                flip_average(dst + size_t(s) * E, embedding(), m, E, r_.net.l2_normalize, stream_.get());
            }
        }
    }

    std::vector<float> embed_device(ImageIn images, int n) {
        DeviceBuffer<float> emb(size_t(n) * L_.embed_dim());
        embed_to_device(images, n, emb.get());
        sync();
        collect_profile();
        return emb.download(stream_.get());
    }

#if SIAMESE_HAVE_CUDNN
    struct CudnnDestroy { void operator()(cudnnHandle_t h) const { cudnnDestroy(h); } };
#endif

    // Declaration order is destruction order reversed: buffers and graphs go before the handles
    // and the stream they were made on.
    Recipe r_;
    EngineOptions e_;
    ParamLayout L_;
    Stream stream_;
    DeviceBuffer<unsigned char> cublas_ws_;
    CublasHandle cublas_;
    Stream side_;                                   // the weight gradients' stream (EngineOptions::side_stream)
    Event fork_, join_;                             // ordering between the two streams
    DeviceBuffer<unsigned char> cublas_side_ws_;
    CublasHandle cublas_side_;                      // bound to side_
#if SIAMESE_HAVE_CUDNN
    Owned<cudnnHandle_t, CudnnDestroy> cudnn_;
#endif
    DeviceBuffer<uint16_t> bank16_;  // the bank in FP16 (--half-bank), else bank_
    DeviceBuffer<float> bank_, params_, grad_, opt_state_, order_y_, losses_, partial_, aug_, rows_, emb_, norm_;
    DeviceBuffer<float> tail_partial_, val_emb_, val_d_;
    DeviceBuffer<int> val_a_, val_b_;
    PairSet val_pairs_;  // the pairs in val_a_, val_b_ (host copies, to see a change)
    DeviceBuffer<float> mirror_;                  // flip averaging's mirror images
    PinnedBuffer<float> losses_host_, val_host_;  // what an epoch reads back
    Graph val_graph_;                             // the validation pass
    std::vector<const void*> val_key_;            // its buffers and sizes when last run
    Graph epoch_graph_;                           // a whole epoch (train_epoch)
    std::vector<const void*> epoch_key_;          // its buffers and sizes when last run
    Graph groups_graph_;                          // a whole P-K epoch (train_epoch_groups)
    std::vector<const void*> groups_key_;
    PinnedBuffer<int> order_host_, ids_host_;     // the P-K epoch's order, copied in by its graph
    DeviceBuffer<unsigned> counters_;
    DeviceBuffer<float> gemm_partial_[2];     // --gemm custom: split-K scratch, main and side stream
    DeviceBuffer<unsigned> gemm_counters_[2]; // and their tile counters (zero between launches)
    std::vector<size_t> partial_at_;              // each conv layer's slice of partial_
    DeviceBuffer<float> saved_params_, saved_opt_, saved_losses_;
    DeviceBuffer<int> order_a_, order_b_, order_ids_, gather_;
    // The training pairs the device-side shuffle reads (their host copy: uploaded when they change).
    DeviceBuffer<int> train_a_, train_b_;
    DeviceBuffer<float> train_y_;
    PairSet train_pairs_;
    DeviceBuffer<StepState> state_, saved_state_;
    std::vector<DeviceBuffer<float>> conv_out_, conv_d_, dense_out_, dense_d_;
    std::vector<DeviceBuffer<uint8_t>> conv_arg_;
#if SIAMESE_HAVE_CUDNN
    std::vector<std::unique_ptr<CudnnConvBlock>> conv_blocks_;
#endif
    using GraphKey = std::tuple<int, bool, int>;  // batch size, P-K sampler, steps
    std::map<GraphKey, Graph> graphs_;
    std::vector<const void*> captured_;
    std::vector<Pending> pending_;
    PhaseTimes prof_ms_;
    long epoch_graph_runs_ = 0;
    int n_bank_ = 0, cap_ = 0, batches_ = 0, expected_first_ = -1, kernel_nodes_ = -1;
    bool tail_ = false;  // the fused tail applies to this recipe (EngineOptions::fused)
    uint64_t expected_step_ = 0;
};

}  // namespace

}  // namespace cuda

std::unique_ptr<Backend> make_cuda_backend(const Recipe& r, const EngineOptions& e) {
    std::string why;
    if (!cuda_device_available(&why)) throw DeviceError("--device cuda: " + why);
    return std::make_unique<cuda::CudaBackend>(r, e);
}

}  // namespace siamese
