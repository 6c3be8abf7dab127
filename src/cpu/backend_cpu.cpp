// The CPU reference backend: CpuTwin<float> on both twins at once, the contrastive loss, and
// the optimizer loop. OpenMP over images and rows; every reduction in a fixed order.
#include <algorithm>
#include <cmath>
#include <limits>

#include "siamese/common.hpp"

#include "siamese/backend.hpp"
#include "cpu/augment.hpp"
#include "cpu/batch_loss.hpp"
#include "cpu/embed_head.hpp"
#include "cpu/loss.hpp"
#include "cpu/optimizer.hpp"
#include "cpu/phase_clock.hpp"
#include "siamese/metrics.hpp"
#include "cpu/twin.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace siamese {

namespace {

class CpuBackend final : public Backend {
public:
    CpuBackend(const Recipe& r, const EngineOptions& e) : r_(r), twin_(r.net), L_(twin_.layout()) {
#ifdef _OPENMP
        if (e.threads > 0) omp_set_num_threads(e.threads);
#endif
        profile_ = e.profile;
        half_bank_ = e.half_bank;
        twin_.set_tf32(e.tf32);
        if (profile_) twin_.set_profile(&times_);
        params_.assign(L_.total, 0.0f);
        grad_.assign(L_.total, 0.0f);
        state_.assign(2 * L_.total, 0.0f);
    }
    std::string name() const override { return "cpu"; }
    const ParamLayout& layout() const override { return L_; }
    const NetConfig& net_config() const override { return r_.net; }
    void do_upload_images(const ImageBank& bank) override {
        bank_ = &bank;
        if (!half_bank_) return;
        rounded_ = half_rounded(bank);  // --half-bank: the floats the CUDA engine's FP16 bank widens to
        bank_ = &rounded_;
    }
    void set_params(const std::vector<float>& p) override {
        params_ = p;
        diverged_ = false;
        std::fill(state_.begin(), state_.end(), 0.0f);
    }
    std::vector<float> params() override { return params_; }
    std::vector<float> opt_state() override { return state_; }
    std::vector<float> last_gradient() override { return grad_; }
    void set_opt_state(const std::vector<float>& s) override { state_ = s; }
    void do_begin_epoch(const PairSet& ordered) override {
        order_ = ordered;
        losses_.clear();
    }
    // After a non-finite loss or gradient every later step of the epoch reports NaN without
    // computing (the weights are left as the bad step found them; the trainer stops the run).
    void do_train_batch(int first, int count, uint64_t step) override {
        if (diverged_) {
            losses_.push_back(std::numeric_limits<float>::quiet_NaN());
            return;
        }
        const int E = L_.embed_dim();
        ptrs_.resize(2 * size_t(count));
        for (int i = 0; i < count; ++i) {
            ptrs_[i] = bank_->image(order_.a[first + i]);
            ptrs_[count + i] = bank_->image(order_.b[first + i]);
        }
        twin_.forward(ptrs_.data(), 2 * count, params_.data(), true, r_.seed, step);
        demb_.resize(2 * size_t(count) * E);
        const float* emb = twin_.embeddings();
        float loss = 0.0f;
        timed(profiling(), "loss", [&] {
            loss = contrastive_loss<float>(demb_.data(), demb_.data() + size_t(count) * E, nullptr, emb, emb + size_t(count) * E,
                                           order_.label.data() + first, count, E, r_.margin);
        });
        finish_step(loss, step);
    }
    void do_begin_epoch_groups(const GroupOrder& order) override {
        group_ = order;
        losses_.clear();
    }
    void do_train_group(int first, int count, uint64_t step) override {
        if (diverged_) {
            losses_.push_back(std::numeric_limits<float>::quiet_NaN());
            return;
        }
        const int E = L_.embed_dim(), H = r_.net.in_h, W = r_.net.in_w;
        ptrs_.resize(size_t(count));
        if (r_.augment.enabled) {
            aug_.resize(size_t(count) * H * W);
            timed(profiling(), "augment", [&] {
                augment_images(aug_.data(), bank_->pixels.data(), group_.image.data() + first, count, H, W, r_.augment,
                               r_.seed, step);
            });
            for (int i = 0; i < count; ++i) ptrs_[i] = aug_.data() + size_t(i) * H * W;
        } else {
            for (int i = 0; i < count; ++i) ptrs_[i] = bank_->image(group_.image[first + i]);
        }
        twin_.forward(ptrs_.data(), count, params_.data(), true, r_.seed, step);
        demb_.resize(size_t(count) * E);
        float loss = 0.0f;
        timed(profiling(), "loss", [&] {
            const int* id = group_.person.data() + first;
            loss = r_.loss == BatchLoss::Softmax
                       ? batch_softmax_loss_fast<float>(demb_.data(), twin_.embeddings(), id, count, E, r_.temperature)
                       : batch_contrastive_loss_fast<float>(demb_.data(), twin_.embeddings(), id, count, E, r_.margin,
                                                          r_.mining);
        });
        finish_step(loss, step);
    }
    std::vector<float> batch_losses() override { return losses_; }
    std::string profile_report() override { return profile_table(times_); }
    std::vector<float> net_embed_bank() override { return net_embed(bank_->pixels.data(), bank_->size()); }
    std::vector<float> net_embed(const float* images, int n) override {
        const size_t elems = size_t(r_.net.in_h) * r_.net.in_w;
        std::vector<const float*> at(static_cast<size_t>(n));
        for (int i = 0; i < n; ++i) at[i] = images + i * elems;
        return embed_images(at);
    }
    // Validation: only the bank images the pairs name, each once (in the people protocol they
    // are the training people's, 300 of ORL's 400; the strong recipe embeds them and their
    // mirror images every 0.1 s epoch). An image's embedding does not depend on the others
    // embedded with it (every layer works image by image or row by row), so the distances are
    // those of the whole bank's embeddings, bit for bit.
    std::vector<float> net_bank_pair_distances(const PairSet& pairs) override {
        std::vector<int> slot(static_cast<size_t>(bank_->size()), -1);
        for (int k = 0; k < pairs.size(); ++k) slot.at(pairs.a[k]) = slot.at(pairs.b[k]) = 0;
        std::vector<const float*> at;
        for (int i = 0; i < bank_->size(); ++i)
            if (slot[i] == 0) {
                slot[i] = int(at.size());
                at.push_back(bank_->image(i));
            }
        PairSet named = pairs;  // the same pairs, as rows of the embeddings below
        for (int k = 0; k < pairs.size(); ++k) named.a[k] = slot[pairs.a[k]], named.b[k] = slot[pairs.b[k]];
        return net_distances(embed_images(at), named);
    }

private:
    PhaseTimes* profiling() { return profile_ ? &times_ : nullptr; }

    // Inference embeddings (n, E) of the images at[0..n-1], in chunks of 512 (with flip
    // averaging: each image's and its mirror image's, averaged).
    std::vector<float> embed_images(const std::vector<const float*>& at) {
        const int n = int(at.size()), E = L_.embed_dim(), chunk = 512;
        const size_t elems = size_t(r_.net.in_h) * r_.net.in_w;
        std::vector<float> out(size_t(n) * E);
        twin_.set_profile(nullptr);  // the profile times training steps
        for (int s = 0; s < n; s += chunk) {
            const int m = std::min(chunk, n - s);
            twin_.forward(at.data() + s, m, params_.data(), false, 0, 0);
            std::copy(twin_.embeddings(), twin_.embeddings() + size_t(m) * E, out.begin() + size_t(s) * E);
            if (r_.net.flip_average) {
                mirror_.resize(size_t(m) * elems);
                ptrs_.resize(m);
                for (int i = 0; i < m; ++i) {
                    mirror_images(mirror_.data() + i * elems, at[s + i], 1, r_.net.in_h, r_.net.in_w);
                    ptrs_[i] = mirror_.data() + i * elems;
                }
                twin_.forward(ptrs_.data(), m, params_.data(), false, 0, 0);
                flip_average(out.data() + size_t(s) * E, twin_.embeddings(), m, E, r_.net.l2_normalize);
            }
        }
        if (profile_) twin_.set_profile(&times_);
        return out;
    }

    // Backward from demb_, then the update, unless the loss or the gradient is not finite: a NaN
    // or infinity would poison every weight it reaches, so the step is reported as NaN and the
    // weights are not updated.
    void finish_step(float loss, uint64_t step) {
        twin_.backward(demb_.data(), params_.data(), grad_.data());
        if (!std::isfinite(loss) || !first_nonfinite_tensor(L_, grad_.data()).empty()) {
            diverged_ = true;
            losses_.push_back(std::numeric_limits<float>::quiet_NaN());
            return;
        }
        timed(profiling(), "optimizer", [&] { optimizer_step(r_.opt, params_.data(), grad_.data(), state_.data(), L_.total, step + 1); });
        losses_.push_back(loss);
    }

    Recipe r_;
    CpuTwin<float> twin_;
    const ParamLayout& L_;
    const ImageBank* bank_ = nullptr;
    ImageBank rounded_;  // --half-bank: the bank rounded to FP16 values
    std::vector<float> params_, grad_, state_, demb_, losses_, aug_, mirror_;
    std::vector<const float*> ptrs_;
    PairSet order_;
    GroupOrder group_;
    bool diverged_ = false;
    bool profile_ = false, half_bank_ = false;
    PhaseTimes times_;
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(const Recipe& r, const EngineOptions& e) {
    return std::make_unique<CpuBackend>(r, e);
}

}  // namespace siamese
