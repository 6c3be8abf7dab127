// What every backend shares: the range check of a training batch, and the default evaluation
// distances (embed the bank, then the host's pair distances).
#include "siamese/backend.hpp"

#include <algorithm>
#include <cstdio>
#include <sstream>
#include <stdexcept>
#include <string>

#include "siamese/common.hpp"
#include "siamese/metrics.hpp"

namespace siamese {

void Backend::begin_epoch(const PairSet& ordered) {
    do_begin_epoch(ordered);
    epoch_pairs_ = ordered.size();
    epoch_images_ = -1;
}

void Backend::begin_epoch_shuffled(const PairSet& train, uint64_t seed, int epoch) {
    do_begin_epoch_shuffled(train, seed, epoch);
    epoch_pairs_ = train.size();
    epoch_images_ = -1;
}

void Backend::do_begin_epoch_shuffled(const PairSet& train, uint64_t seed, int epoch) {
    do_begin_epoch(epoch_order(train, seed, epoch));
}

void Backend::begin_epoch_groups(const GroupOrder& order) {
    if (order.image.size() != order.person.size()) throw std::logic_error("begin_epoch_groups: images and people differ in count");
    do_begin_epoch_groups(order);
    epoch_images_ = order.size();
    epoch_pairs_ = -1;
}

void Backend::check_range(const char* what, int first, int count, long size) const {
    if (size < 0) throw std::logic_error(std::string(what) + " before its begin_epoch");
    if (first < 0 || count < 1 || long(first) + count > size)
        throw std::logic_error(std::string(what) + ": [" + std::to_string(first) + ", " + std::to_string(long(first) + count) +
                               ") outside the epoch's " + std::to_string(size));
}

void Backend::train_batch(int first, int count, uint64_t step) {
    check_range("train_batch (pairs)", first, count, epoch_pairs_);
    do_train_batch(first, count, step);
}

void Backend::train_group(int first, int count, uint64_t step) {
    check_range("train_group (images)", first, count, epoch_images_);
    do_train_group(first, count, step);
}

void Backend::train_run(bool groups, int first, int per, int batches, uint64_t step) {
    const char* what = groups ? "train_run (images)" : "train_run (pairs)";
    const long total = groups ? epoch_images_ : epoch_pairs_;
    if (per < 1 || batches < 1) throw std::logic_error(std::string(what) + ": no batches");
    // The full batches go together; a short last one (the epoch's remainder) on its own.
    int full = 0;
    while (full < batches && long(first) + long(full + 1) * per <= total) ++full;
    if (full > 0) {
        check_range(what, first, full * per, total);
        do_train_run(groups, first, per, full, step);
    }
    for (int b = full; b < batches; ++b) {
        const int f = first + b * per;
        const int count = int(std::min<long>(per, total - f));
        if (groups)
            train_group(f, count, step + uint64_t(b));
        else
            train_batch(f, count, step + uint64_t(b));
    }
}

Backend::EpochOutput Backend::train_epoch(const PairSet& train, uint64_t seed, int epoch, int per, uint64_t step,
                                          const PairSet& val) {
    if (per < 1 || train.size() == 0) throw std::logic_error("train_epoch: no batches");
    EpochOutput o = do_train_epoch(train, seed, epoch, per, step, val);
    epoch_pairs_ = train.size();  // as begin_epoch_shuffled leaves it, whichever way the epoch ran
    epoch_images_ = -1;
    return o;
}

Backend::EpochOutput Backend::do_train_epoch(const PairSet& train, uint64_t seed, int epoch, int per, uint64_t step,
                                             const PairSet& val) {
    begin_epoch_shuffled(train, seed, epoch);
    train_run(false, 0, per, (train.size() + per - 1) / per, step);
    return end_epoch(val);
}

Backend::EpochOutput Backend::end_epoch(const PairSet& val) {
    EpochOutput o;
    o.val_distances = bank_pair_distances(val);  // queued before the losses are read back
    o.losses = batch_losses();
    return o;
}

Backend::EpochOutput Backend::train_epoch_groups(const GroupOrder& order, int per, uint64_t step, const PairSet& val) {
    if (per < 1 || order.size() == 0) throw std::logic_error("train_epoch_groups: no batches");
    if (order.image.size() != order.person.size()) throw std::logic_error("train_epoch_groups: images and people differ in count");
    EpochOutput o = do_train_epoch_groups(order, per, step, val);
    epoch_images_ = order.size();  // as begin_epoch_groups leaves it, whichever way the epoch ran
    epoch_pairs_ = -1;
    return o;
}

Backend::EpochOutput Backend::do_train_epoch_groups(const GroupOrder& order, int per, uint64_t step, const PairSet& val) {
    begin_epoch_groups(order);
    train_run(true, 0, per, (order.size() + per - 1) / per, step);
    return end_epoch(val);
}

void Backend::do_train_run(bool groups, int first, int per, int batches, uint64_t step) {
    for (int b = 0; b < batches; ++b) {
        if (groups)
            do_train_group(first + b * per, per, step + uint64_t(b));
        else
            do_train_batch(first + b * per, per, step + uint64_t(b));
    }
}

std::vector<float> Backend::embed_bank() {
    std::vector<float> e = net_embed_bank();
    if (pixel_.empty()) return e;
    if (!bank_ref_) throw std::logic_error("embed_bank before upload_images");
    return append_pixel_branch(pixel_, e, layout().embed_dim(), bank_ref_->pixels.data(), bank_ref_->size(),
                               bank_ref_->height, bank_ref_->width, net_config().flip_average);
}

std::vector<float> Backend::embed(const float* images, int n) {
    std::vector<float> e = net_embed(images, n);
    if (pixel_.empty()) return e;
    const NetConfig& c = net_config();
    return append_pixel_branch(pixel_, e, layout().embed_dim(), images, n, c.in_h, c.in_w, c.flip_average);
}

std::vector<float> Backend::bank_pair_distances(const PairSet& pairs) {
    if (pixel_.empty()) return net_bank_pair_distances(pairs);
    return pair_distances(embed_bank(), embed_dim(), pairs);
}

std::vector<float> Backend::distances(const std::vector<float>& embeddings, const PairSet& pairs) {
    if (pixel_.empty()) return net_distances(embeddings, pairs);
    return pair_distances(embeddings, embed_dim(), pairs);
}

std::vector<float> Backend::net_bank_pair_distances(const PairSet& pairs) { return net_distances(net_embed_bank(), pairs); }

std::vector<float> Backend::net_distances(const std::vector<float>& embeddings, const PairSet& pairs) {
    return pair_distances(embeddings, layout().embed_dim(), pairs);
}

ConvAlgo parse_conv_algo(const std::string& name) {
    if (name == "custom") return ConvAlgo::Custom;
    if (name == "cudnn") return ConvAlgo::Cudnn;
    if (name == "tiled") return ConvAlgo::Tiled;
    throw UsageError("--conv must be custom, cudnn or tiled, not '" + name + "'");
}

std::string profile_table(const PhaseTimes& ms) {
    if (ms.empty()) return "";
    double total = 0;
    for (auto& [k, v] : ms) total += v.first;
    std::vector<std::pair<std::string, std::pair<double, long>>> rows(ms.begin(), ms.end());
    std::sort(rows.begin(), rows.end(), [](auto& a, auto& b) { return a.second.first > b.second.first; });
    std::ostringstream ss;
    ss << "phase                         calls    total ms   mean us   share\n";
    for (auto& [k, v] : rows) {
        char line[160];
        std::snprintf(line, sizeof line, "%-28s %7ld %11.2f %9.1f %6.1f%%\n", k.c_str(), v.second, v.first,
                      1000.0 * v.first / double(v.second), 100.0 * v.first / total);
        ss << line;
    }
    return ss.str();
}

}  // namespace siamese
