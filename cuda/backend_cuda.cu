// The CUDA engine: the image bank and each epoch's pair order live on the device; one training
// step = gather indices -> fused conv blocks (both twins in one launch per layer) -> dense
// layers (cuBLAS) -> fused distance + loss -> backward -> one optimizer kernel, captured once
// as a CUDA graph and replayed for every batch (kernels read the batch position from a
// device-side StepState, so the graph needs no new arguments).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <memory>
#include <sstream>

#include "buffer.hpp"
#include "check.hpp"
#include "cudnn_conv.hpp"
#include "kernels.hpp"
#include "nvtx.hpp"
#include "siamese/backend.hpp"
#include "siamese/twin_cpu.hpp"  // dropout layer ids, shared with the CPU

namespace siamese {

namespace cuda {

namespace {

class CudaBackend final : public Backend {
public:
    explicit CudaBackend(const TrainHyper& h) : h_(h), L_(make_layout(h.net)) {
        if (h.conv != "custom" && h.conv != "cudnn") throw UsageError("--conv must be custom or cudnn");
        // A blocking stream: the synchronous cudaMemcpy of DeviceBuffer (legacy default stream)
        // is then ordered with this stream's kernels.
        CUDA_CHECK(cudaStreamCreate(&stream_));
        CUBLAS_CHECK(cublasCreate(&cublas_));
        CUBLAS_CHECK(cublasSetStream(cublas_, stream_));
        CUBLAS_CHECK(cublasSetMathMode(cublas_, CUBLAS_PEDANTIC_MATH));  // true FP32: no TF32
        // A fixed workspace lets cuBLAS calls be captured into a graph without allocating.
        cublas_ws_.resize(4u << 20);
        CUBLAS_CHECK(cublasSetWorkspace(cublas_, cublas_ws_.get(), cublas_ws_.size()));
        if (h.conv == "cudnn") CUDNN_CHECK(cudnnCreate(&cudnn_));
        params_.resize(L_.total);
        grad_.resize(L_.total);
        opt_state_.resize(2 * L_.total);
        state_.resize(1);
        CUDA_CHECK(cudaMemset(opt_state_.get(), 0, opt_state_.size() * sizeof(float)));
        CUDA_CHECK(cudaMemset(state_.get(), 0, sizeof(StepState)));
    }
    ~CudaBackend() override {
        for (auto& [n, g] : graphs_) cudaGraphExecDestroy(g);
        conv_blocks_.clear();
        if (cudnn_) cudnnDestroy(cudnn_);
        cublasDestroy(cublas_);
        cudaStreamDestroy(stream_);
    }

    std::string name() const override { return h_.conv == "cudnn" ? "cuda (cudnn conv)" : "cuda"; }
    int embed_dim() const override { return L_.embed_dim(); }

    void upload_images(const ImageBank& bank) override {
        NvtxRange r("upload_images");
        bank_.upload(bank.pixels);
        n_bank_ = bank.size();
    }
    void set_params(const std::vector<float>& p) override {
        params_.upload(p);
        CUDA_CHECK(cudaMemset(opt_state_.get(), 0, opt_state_.size() * sizeof(float)));
    }
    std::vector<float> params() override {
        sync();
        return params_.download();
    }
    std::vector<float> opt_state() override {
        sync();
        return opt_state_.download();
    }
    void set_opt_state(const std::vector<float>& s) override { opt_state_.upload(s); }

    void begin_epoch(const PairSet& ordered) override {
        NvtxRange r("begin_epoch");
        sync();
        order_a_.upload(ordered.a.data(), ordered.a.size());
        order_b_.upload(ordered.b.data(), ordered.b.size());
        order_y_.upload(ordered.label.data(), ordered.label.size());
        losses_.resize(std::max<size_t>(1, ordered.a.size()));
        batches_ = 0;
        expected_first_ = -1;  // force a StepState upload at the first batch
    }

    void train_batch(int first, int count, uint64_t step) override {
        ensure_capacity(2 * count);
        if (first != expected_first_ || step != expected_step_) {
            const StepState s{first, batches_, step};
            CUDA_CHECK(cudaMemcpyAsync(state_.get(), &s, sizeof s, cudaMemcpyHostToDevice, stream_));
            CUDA_CHECK(cudaStreamSynchronize(stream_));  // `s` lives on this stack frame
        }
        if (h_.graphs && !h_.profile) {
            auto it = graphs_.find(count);
            if (it == graphs_.end()) it = graphs_.emplace(count, capture_step(count)).first;
            NvtxRange r("train_step (graph)");
            CUDA_CHECK(cudaGraphLaunch(it->second, stream_));
        } else {
            run_step(count);
        }
        expected_first_ = first + count;
        expected_step_ = step + 1;
        ++batches_;
    }

    std::vector<float> batch_losses() override {
        sync();
        std::vector<float> all = losses_.download();
        all.resize(size_t(batches_));
        collect_profile();
        for (size_t b = 0; b < all.size(); ++b)
            if (!std::isfinite(all[b])) {
                const std::vector<float> g = grad_.download();  // the last step's gradient names the layer
                const std::string bad = first_nonfinite_tensor(L_, g.data());
                throw DataError("training diverged: non-finite loss in batch " + std::to_string(b + 1) + " of the epoch" +
                                (bad.empty() ? std::string() : " (non-finite gradient in " + bad + ")"));
            }
        return all;
    }

    std::vector<float> embed_bank() override { return embed_device(bank_.get(), n_bank_); }
    std::vector<float> bank_pair_distances(const PairSet& pairs) override {
        NvtxRange r("bank_pair_distances");
        if (pairs.size() == 0) return {};
        const int E = L_.embed_dim();
        DeviceBuffer<float> emb(size_t(n_bank_) * E);
        embed_to_device(bank_.get(), n_bank_, emb.get());
        DeviceBuffer<int> a, b;
        a.upload(pairs.a.data(), pairs.a.size());
        b.upload(pairs.b.data(), pairs.b.size());
        DeviceBuffer<float> d(pairs.size());
        pair_distances(emb.get(), E, a.get(), b.get(), pairs.size(), d.get(), stream_);
        sync();
        return d.download();
    }
    std::vector<float> embed(const float* images, int n) override {
        DeviceBuffer<float> tmp;
        tmp.upload(images, size_t(n) * h_.net.in_h * h_.net.in_w);
        return embed_device(tmp.get(), n);
    }

    std::string profile_report() override {
        if (prof_ms_.empty()) return "";
        double total = 0;
        for (auto& [k, v] : prof_ms_) total += v.first;
        std::ostringstream ss;
        ss << "phase                         calls    total ms   mean us   share\n";
        std::vector<std::pair<std::string, std::pair<double, long>>> rows(prof_ms_.begin(), prof_ms_.end());
        std::sort(rows.begin(), rows.end(), [](auto& a, auto& b) { return a.second.first > b.second.first; });
        for (auto& [k, v] : rows) {
            char line[160];
            std::snprintf(line, sizeof line, "%-28s %7ld %11.2f %9.1f %6.1f%%\n", k.c_str(), v.second, v.first,
                          1000.0 * v.first / double(v.second), 100.0 * v.first / total);
            ss << line;
        }
        return ss.str();
    }

private:
    void sync() { CUDA_CHECK(cudaStreamSynchronize(stream_)); }

    // Activation and gradient buffers for up to n images; invalidates captured graphs.
    void ensure_capacity(int n) {
        if (n <= cap_) return;
        sync();
        for (auto& [k, g] : graphs_) CUDA_CHECK(cudaGraphExecDestroy(g));
        graphs_.clear();
        cap_ = n;
        const size_t nc = L_.conv.size(), nd = L_.dense.size();
        conv_out_.clear(); conv_arg_.clear(); conv_d_.clear(); dense_out_.clear(); dense_d_.clear();
        conv_out_.resize(nc); conv_arg_.resize(nc); conv_d_.resize(nc); dense_out_.resize(nd); dense_d_.resize(nd);
        size_t partial = 0;
        for (size_t l = 0; l < nc; ++l) {
            const size_t e = size_t(n) * L_.conv[l].out_elems();
            conv_out_[l].resize(e);
            conv_arg_[l].resize(e);
            conv_d_[l].resize(e);
            partial = std::max(partial, conv_partial_elems(L_.conv[l], n));
        }
        partial_.resize(partial);
        for (size_t l = 0; l < nd; ++l) {
            dense_out_[l].resize(size_t(n) * L_.dense[l].out);
            dense_d_[l].resize(size_t(n) * L_.dense[l].out);
        }
        gather_.resize(n);
        conv_blocks_.clear();
        if (cudnn_)
            for (size_t l = 0; l < nc; ++l) conv_blocks_.push_back(std::make_unique<CudnnConvBlock>(cudnn_, L_.conv[l], n));
    }

    // Profiling: CUDA events around each phase (eager mode only).
    template <class F>
    void phase(const char* name, F&& f) {
        if (!h_.profile) {
            f();
            return;
        }
        cudaEvent_t a, b;
        CUDA_CHECK(cudaEventCreate(&a));
        CUDA_CHECK(cudaEventCreate(&b));
        CUDA_CHECK(cudaEventRecord(a, stream_));
        f();
        CUDA_CHECK(cudaEventRecord(b, stream_));
        pending_.push_back({name, a, b});
    }
    void collect_profile() {
        for (auto& p : pending_) {
            float ms = 0;
            CUDA_CHECK(cudaEventElapsedTime(&ms, p.a, p.b));
            auto& slot = prof_ms_[p.name];
            slot.first += ms;
            slot.second += 1;
            cudaEventDestroy(p.a);
            cudaEventDestroy(p.b);
        }
        pending_.clear();
    }

    // Forward over n images: layer 1 reads in + gather[i] (or in + i) directly.
    void forward(const float* in, const int* gather, int n, bool train) {
        const float* x = in;
        for (size_t l = 0; l < L_.conv.size(); ++l) {
            const float rate = train ? h_.net.conv_dropout : 0.0f;
            const uint32_t id = kConvDropoutId + uint32_t(l);
            const float* w = params_.get() + L_.conv_w[l];
            const float* b = params_.get() + L_.conv_b[l];
            phase(l == 0 ? "conv1 forward" : "conv2+ forward", [&] {
                if (cudnn_)
                    conv_blocks_[l]->forward(x, gather, n, w, b, conv_out_[l].get(), conv_arg_[l].get(), rate, h_.seed, id,
                                             state_.get(), stream_);
                else
                    conv_pool_forward(L_.conv[l], n, x, gather, w, b, conv_out_[l].get(), conv_arg_[l].get(), rate,
                                      h_.seed, id, state_.get(), stream_);
            });
            x = conv_out_[l].get();
            gather = nullptr;
        }
        for (size_t l = 0; l < L_.dense.size(); ++l) {
            const bool last = l + 1 == L_.dense.size();
            const float rate = train && !last ? h_.net.dense_dropout : 0.0f;
            phase("dense forward", [&] {
                dense_forward(cublas_, x, params_.get() + L_.dense_w[l], params_.get() + L_.dense_b[l], dense_out_[l].get(), n,
                              L_.dense[l].in, L_.dense[l].out, rate, h_.seed, kDenseDropoutId + uint32_t(l), state_.get(),
                              stream_);
            });
            x = dense_out_[l].get();
        }
    }

    // One training step on `count` pairs at the device-side StepState.
    void run_step(int count) {
        NvtxRange r("train_step");
        const int n = 2 * count, E = L_.embed_dim();
        const int nd = int(L_.dense.size()), nc = int(L_.conv.size());
        phase("gather", [&] { build_gather(order_a_.get(), order_b_.get(), state_.get(), count, gather_.get(), stream_); });
        forward(bank_.get(), gather_.get(), n, true);
        phase("distance+loss", [&] {
            contrastive_loss(dense_out_[nd - 1].get(), count, E, order_y_.get(), state_.get(), h_.margin,
                             dense_d_[nd - 1].get(), losses_.get(), nullptr, stream_);
        });
        for (int l = nd - 1; l >= 0; --l) {
            const bool last = l + 1 == nd;
            const DenseShape& d = L_.dense[l];
            float* dx = l > 0 ? dense_d_[l - 1].get() : conv_d_[nc - 1].get();
            const float* x = l > 0 ? dense_out_[l - 1].get() : conv_out_[nc - 1].get();
            phase("dense backward", [&] {
                relu_dropout_backward(dense_d_[l].get(), dense_out_[l].get(), n, d.out, last ? 0.0f : h_.net.dense_dropout,
                                      h_.seed, kDenseDropoutId + uint32_t(l), state_.get(), stream_);
                dense_backward(cublas_, dense_d_[l].get(), x, params_.get() + L_.dense_w[l], grad_.get() + L_.dense_w[l],
                               grad_.get() + L_.dense_b[l], dx, n, d.in, d.out, stream_);
            });
        }
        for (int l = nc - 1; l >= 0; --l) {
            const ConvShape& s = L_.conv[l];
            const float* in = l > 0 ? conv_out_[l - 1].get() : bank_.get();
            const int* gather = l > 0 ? nullptr : gather_.get();
            float* din = l > 0 ? conv_d_[l - 1].get() : nullptr;
            phase(l == 0 ? "conv1 backward" : "conv2+ backward", [&] {
                relu_dropout_backward(conv_d_[l].get(), conv_out_[l].get(), n, s.out_elems(), h_.net.conv_dropout, h_.seed,
                                      kConvDropoutId + uint32_t(l), state_.get(), stream_);
                if (cudnn_) {
                    conv_blocks_[l]->backward(in, gather, n, conv_d_[l].get(), conv_arg_[l].get(),
                                              params_.get() + L_.conv_w[l], grad_.get() + L_.conv_w[l], din, stream_);
                } else {
                    conv_backward_weights(s, n, in, gather, conv_d_[l].get(), conv_arg_[l].get(), partial_.get(),
                                          grad_.get() + L_.conv_w[l], stream_);
                    if (din) conv_backward_input(s, n, conv_d_[l].get(), conv_arg_[l].get(), params_.get() + L_.conv_w[l], din, stream_);
                }
            });
        }
        phase("optimizer", [&] {
            optimizer_step(h_.opt, params_.get(), grad_.get(), opt_state_.get(), L_.total, state_.get(), stream_);
        });
        advance_state(state_.get(), count, stream_);
    }

    cudaGraphExec_t capture_step(int count) {
        NvtxRange r("capture_step");
        cudaGraph_t graph;
        CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
        run_step(count);
        CUDA_CHECK(cudaStreamEndCapture(stream_, &graph));
        cudaGraphExec_t exec;
        CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
        CUDA_CHECK(cudaGraphDestroy(graph));
        return exec;
    }

    // Inference embeddings of n device images into dst (n, E) on the device, in chunks.
    void embed_to_device(const float* images, int n, float* dst) {
        NvtxRange r("embed");
        const int E = L_.embed_dim(), chunk = std::max(cap_, 512);
        ensure_capacity(std::min(chunk, std::max(n, 1)));
        const size_t elems = size_t(h_.net.in_h) * h_.net.in_w;
        for (int s = 0; s < n; s += cap_) {
            const int m = std::min(cap_, n - s);
            forward(images + s * elems, nullptr, m, false);
            CUDA_CHECK(cudaMemcpyAsync(dst + size_t(s) * E, dense_out_.back().get(), size_t(m) * E * sizeof(float),
                                       cudaMemcpyDeviceToDevice, stream_));
        }
    }

    std::vector<float> embed_device(const float* images, int n) {
        DeviceBuffer<float> emb(size_t(n) * L_.embed_dim());
        embed_to_device(images, n, emb.get());
        sync();
        collect_profile();
        return emb.download();
    }

    struct Pending {
        std::string name;
        cudaEvent_t a, b;
    };

    TrainHyper h_;
    ParamLayout L_;
    cudaStream_t stream_ = nullptr;
    cublasHandle_t cublas_ = nullptr;
    cudnnHandle_t cudnn_ = nullptr;
    DeviceBuffer<unsigned char> cublas_ws_;
    DeviceBuffer<float> bank_, params_, grad_, opt_state_, order_y_, losses_, partial_;
    DeviceBuffer<int> order_a_, order_b_, gather_;
    DeviceBuffer<StepState> state_;
    std::vector<DeviceBuffer<float>> conv_out_, conv_d_, dense_out_, dense_d_;
    std::vector<DeviceBuffer<uint8_t>> conv_arg_;
    std::vector<std::unique_ptr<CudnnConvBlock>> conv_blocks_;
    std::map<int, cudaGraphExec_t> graphs_;
    std::vector<Pending> pending_;
    std::map<std::string, std::pair<double, long>> prof_ms_;
    int n_bank_ = 0, cap_ = 0, batches_ = 0, expected_first_ = -1;
    uint64_t expected_step_ = 0;
};

}  // namespace

}  // namespace cuda

std::unique_ptr<Backend> make_cuda_backend(const TrainHyper& h) {
    std::string why;
    if (!cuda_device_available(&why)) throw DataError("--device cuda: " + why);
    return std::make_unique<cuda::CudaBackend>(h);
}

}  // namespace siamese
