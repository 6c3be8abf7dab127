#include "siamese/trainer.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <utility>

#include "siamese/files.hpp"
#include "siamese/common.hpp"
#include "siamese/rules.hpp"

namespace siamese {

double contrastive_loss_of(const std::vector<float>& d, const std::vector<float>& y, double margin) {
    if (d.empty()) return 0;
    double s = 0;
    for (size_t i = 0; i < d.size(); ++i) s += contrastive_term(double(d[i]), double(y[i]), margin);
    return s / double(d.size());
}

std::string order_checksum(const PairSet& order) {
    std::string bytes;
    for (int i = 0; i < order.size(); ++i) {
        const int32_t v[3] = {order.a[i], order.b[i], int32_t(order.label[i])};
        bytes.append(reinterpret_cast<const char*>(v), sizeof v);
    }
    return fnv1a64_hex(bytes.data(), bytes.size());
}

namespace {

[[noreturn]] void diverged(const std::string& where, const std::string& tensor, bool saved) {
    throw DataError("training diverged at " + where + ": non-finite " +
                    (tensor.empty() ? std::string("loss") : "gradient in " + tensor) + " (lower --lr?); " +
                    (saved ? "the last checkpoint is kept" : "no checkpoint had been written yet"));
}

}  // namespace

TrainResult train_model(Backend& backend, const PairSplit& split, const Recipe& recipe, const TrainOptions& opt,
                        const TrainCallbacks& cb, const TrainProgress& resume) {
    TrainResult result;
    const bool groups = recipe.sampler == Recipe::Sampler::PK;
    const GroupSource source = groups ? group_source(split) : GroupSource{};
    // An epoch is `batches` batches of `per` items (pairs, or P-K images); the last may be short.
    const int per = groups ? group_batch_images(source, recipe.P, recipe.K) : recipe.batch;
    const int n = groups ? group_batches(source, recipe.P, recipe.K) * per : split.train.size();
    const int batches = (n + per - 1) / per;
    uint64_t step = resume.step;
    bool saved = resume.epoch > 1 || resume.next_batch > 0;  // a checkpoint exists to resume from
    std::vector<float> dval;
    auto check_finite = [&](const std::vector<float>& losses, int epoch) {
        for (size_t b = 0; b < losses.size(); ++b)
            if (!std::isfinite(losses[b])) {
                const std::vector<float> g = backend.last_gradient();
                const uint64_t global = uint64_t(epoch - 1) * uint64_t(batches) + b + 1;  // 1-based
                diverged("step " + std::to_string(global) + " (epoch " + std::to_string(epoch) + ", batch " +
                             std::to_string(b + 1) + ")",
                         first_nonfinite_tensor(backend.layout(), g.data()), saved);
            }
    };
    auto checkpoint = [&](const TrainProgress& p, int epoch) {
        if (!cb.on_checkpoint) return;
        // A step can leave non-finite weights behind a finite loss (an overflowing update):
        // never save those.
        std::vector<float> w = backend.params();
        if (const std::string bad = first_nonfinite_tensor(backend.layout(), w.data()); !bad.empty())
            throw DataError("training diverged in epoch " + std::to_string(epoch) + ": non-finite weights in " + bad +
                            " at step " + std::to_string(p.step) + " (lower --lr?); " +
                            (saved ? "the last checkpoint is kept" : "no checkpoint had been written yet"));
        cb.on_checkpoint(p, std::move(w));
        saved = true;
    };
    auto checked_group_order = [&](int epoch) {
        GroupOrder order = group_epoch_order(source, recipe.P, recipe.K, recipe.seed, epoch);
        if (order.size() != n) throw std::logic_error("train_model: P-K epoch size changed");
        return order;
    };
    for (int epoch = resume.epoch; epoch <= recipe.epochs; ++epoch) {
        const auto t0 = std::chrono::steady_clock::now();
        const bool resumed = epoch == resume.epoch && resume.next_batch > 0;
        // Runs of steps where the engine prefers them and nothing has to happen in between.
        const int run = opt.batch_by_batch || opt.checkpoint_every > 0 ? 1 : std::max(1, backend.preferred_run());
        std::vector<float> losses = resumed ? resume.losses : std::vector<float>{};
        if (!resumed && run >= batches) {
            // Nothing between the steps: the whole epoch, validation included, in one call (one
            // graph on the GPU).
            Backend::EpochOutput o =
                groups ? backend.train_epoch_groups(checked_group_order(epoch), per, step, split.val)
                       : backend.train_epoch(split.train, recipe.seed, epoch, per, step, split.val);
            step += uint64_t(batches);
            if (cb.on_batch) cb.on_batch(batches, batches, step);
            dval = std::move(o.val_distances);
            for (float l : o.losses) losses.push_back(l);
        } else {
            // The order's checksum is only needed to check a resume or to save a mid-epoch
            // checkpoint: the pair sampler's order is regenerated on the host only then.
            const bool need_checksum = resumed || opt.checkpoint_every > 0;
            std::string checksum;
            if (groups) {
                const GroupOrder order = checked_group_order(epoch);
                if (need_checksum) checksum = group_order_checksum(order);
                backend.begin_epoch_groups(order);
            } else {
                if (need_checksum) checksum = order_checksum(epoch_order(split.train, recipe.seed, epoch));
                backend.begin_epoch_shuffled(split.train, recipe.seed, epoch);
            }
            if (resumed && checksum != resume.order_checksum)
                throw DataError("cannot resume: the epoch's pair order differs from the saved one (different data or version?)");
            const std::vector<float> earlier = losses;
            for (int b = resumed ? resume.next_batch : 0; b < batches; ++b) {
                const int k = std::min(run, batches - b);  // train_run takes a short last batch on its own
                backend.train_run(groups, b * per, per, k, step);
                step += uint64_t(k);
                b += k - 1;
                if (cb.on_batch) cb.on_batch(b + 1, batches, step);
                if (opt.checkpoint_every > 0 && step % uint64_t(opt.checkpoint_every) == 0 && b + 1 < batches &&
                    cb.on_checkpoint) {
                    std::vector<float> so_far = earlier;
                    for (float l : backend.batch_losses()) so_far.push_back(l);
                    check_finite(so_far, epoch);
                    checkpoint(TrainProgress{epoch, b + 1, step, so_far, checksum}, epoch);
                }
            }
            // Validation from inference embeddings (every bank image once, then pair distances),
            // queued before the losses are read back, so a GPU runs it right behind the steps.
            dval = backend.bank_pair_distances(split.val);
            for (float l : backend.batch_losses()) losses.push_back(l);
        }
        check_finite(losses, epoch);
        EpochStats st;
        st.epoch = epoch;
        double s = 0;  // sample-weighted mean of the batch losses, as Keras reports it
        for (int b = 0; b < int(losses.size()); ++b) s += double(losses[b]) * std::min(per, n - b * per);
        st.train_loss = s / n;
        st.val_loss = contrastive_loss_of(dval, split.val.label, recipe.margin);
        st.val_accuracy = accuracy_at(dval, split.val.label, 0.5);
        st.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        result.epochs.push_back(st);
        if (cb.on_epoch) cb.on_epoch(st);
        checkpoint(TrainProgress{epoch + 1, 0, step, {}, ""}, epoch);
    }
    if (dval.empty() && split.val.size()) dval = backend.bank_pair_distances(split.val);
    result.threshold = dval.empty() ? 0.5 : best_threshold(dval, split.val.label);
    return result;
}

TestReport evaluate_model(Backend& backend, const ImageBank& bank, const PairSet& pairs, double threshold,
                          const std::vector<int>& oneshot_people, uint64_t seed, std::vector<float>* distances,
                          std::vector<float>* embeddings, int draws) {
    const std::vector<float> emb = backend.embed_bank();  // each image once
    const int E = backend.embed_dim();
    const std::vector<float> d = backend.distances(emb, pairs);
    TestReport r = evaluate_pairs(d, pairs.label, threshold);
    r.sampled_from = pairs.sampled_from;
    if (!oneshot_people.empty()) {
        r.oneshot_accuracy = oneshot_accuracy(emb, E, bank, oneshot_people, draws, seed);
        r.oneshot_draws = draws;
    }
    if (distances) *distances = d;
    if (embeddings) *embeddings = emb;
    return r;
}

}  // namespace siamese
