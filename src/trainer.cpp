#include "siamese/trainer.hpp"

#include <algorithm>
#include <chrono>
#include <numeric>

#include "siamese/common.hpp"

namespace siamese {

PairSet epoch_order(const PairSet& train, uint64_t seed, int epoch) {
    Rng r(seed * 0x9E3779B97F4A7C15ull + uint64_t(epoch) + 1);
    std::vector<int> idx(train.size());
    std::iota(idx.begin(), idx.end(), 0);
    r.shuffle(idx);
    PairSet out;
    for (int i : idx) out.push(train.a[i], train.b[i], train.label[i]);
    return out;
}

double contrastive_loss_of(const std::vector<float>& d, const std::vector<float>& y, double margin) {
    if (d.empty()) return 0;
    double s = 0;
    for (size_t i = 0; i < d.size(); ++i) {
        const double h = std::max(margin - double(d[i]), 0.0);
        s += y[i] * double(d[i]) * d[i] + (1.0 - y[i]) * h * h;
    }
    return s / double(d.size());
}

TrainResult train_model(Backend& backend, const PairSplit& split, const TrainOptions& opt, const TrainCallbacks& cb) {
    TrainResult result;
    const int n = split.train.size();
    const int batches = (n + opt.batch - 1) / opt.batch;
    const int E = backend.embed_dim();
    uint64_t step = 0;
    std::vector<float> dval;
    for (int epoch = 1; epoch <= opt.epochs; ++epoch) {
        const auto t0 = std::chrono::steady_clock::now();
        backend.begin_epoch(epoch_order(split.train, opt.seed, epoch));
        for (int b = 0; b < batches; ++b) {
            const int first = b * opt.batch;
            backend.train_batch(first, std::min(opt.batch, n - first), step++);
            if (cb.on_batch) cb.on_batch(b + 1, batches);
        }
        const auto losses = backend.batch_losses();
        EpochStats st;
        st.epoch = epoch;
        double s = 0;  // sample-weighted mean of the batch losses, as Keras reports it
        for (int b = 0; b < int(losses.size()); ++b) s += double(losses[b]) * std::min(opt.batch, n - b * opt.batch);
        st.train_loss = s / n;
        // Validation from inference embeddings: every bank image once, then pair distances.
        dval = pair_distances(backend.embed_bank(), E, split.val);
        st.val_loss = contrastive_loss_of(dval, split.val.label, opt.margin);
        st.val_accuracy = accuracy_at(dval, split.val.label, 0.5);
        st.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        result.epochs.push_back(st);
        if (cb.on_epoch) cb.on_epoch(st);
    }
    result.threshold = dval.empty() ? 0.5 : best_threshold(dval, split.val.label);
    return result;
}

TestReport evaluate_model(Backend& backend, const ImageBank& bank, const PairSet& pairs, double threshold,
                          const std::vector<int>& oneshot_people, uint64_t seed) {
    const std::vector<float> emb = backend.embed_bank();
    const int E = backend.embed_dim();
    TestReport r = evaluate_pairs(pair_distances(emb, E, pairs), pairs.label, threshold);
    if (!oneshot_people.empty()) r.oneshot_accuracy = oneshot_accuracy(emb, E, bank, oneshot_people, 20, seed);
    return r;
}

}  // namespace siamese
