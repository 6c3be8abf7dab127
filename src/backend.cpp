// What every backend shares: the range check of a training batch, and the default evaluation
// distances (embed the bank, then the host's pair distances).
#include "siamese/backend.hpp"

#include <stdexcept>
#include <string>

#include "siamese/common.hpp"
#include "siamese/metrics.hpp"

namespace siamese {

void Backend::begin_epoch(const PairSet& ordered) {
    do_begin_epoch(ordered);
    epoch_pairs_ = ordered.size();
}

void Backend::train_batch(int first, int count, uint64_t step) {
    if (epoch_pairs_ < 0) throw std::logic_error("train_batch before begin_epoch");
    if (first < 0 || count < 1 || long(first) + count > epoch_pairs_)
        throw std::logic_error("train_batch: pairs [" + std::to_string(first) + ", " + std::to_string(long(first) + count) +
                               ") outside the epoch's " + std::to_string(epoch_pairs_) + " pairs");
    do_train_batch(first, count, step);
}

std::vector<float> Backend::bank_pair_distances(const PairSet& pairs) { return distances(embed_bank(), pairs); }

std::vector<float> Backend::distances(const std::vector<float>& embeddings, const PairSet& pairs) {
    return pair_distances(embeddings, embed_dim(), pairs);
}

ConvAlgo parse_conv_algo(const std::string& name) {
    if (name == "custom") return ConvAlgo::Custom;
    if (name == "cudnn") return ConvAlgo::Cudnn;
    throw UsageError("--conv must be custom or cudnn, not '" + name + "'");
}

}  // namespace siamese
