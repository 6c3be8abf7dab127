// The P-K sampler: each batch is P people x K images of each, and the loss uses every pair in
// the batch (src/cpu/batch_loss.hpp), the pair-batched form this engine is built for: one
// forward of P*K images instead of two per pair.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "siamese/pairs.hpp"

namespace siamese {

// An epoch of P-K batches: the images in batch order with their person ids; batch b is
// [b * P*K, min((b+1) * P*K, size)).
struct GroupOrder {
    std::vector<int32_t> image, person;
    int size() const { return int(image.size()); }
};

// The training images (every image of a training pair, ascending) and their people.
struct GroupSource {
    std::vector<int32_t> image, person;
};
GroupSource group_source(const PairSplit& split);

// Batches per epoch: enough to show about every training image once (at least 1); each holds
// group_batch_images = min(P, training people) * K images.
int group_batches(const GroupSource& src, int P, int K);
int group_batch_images(const GroupSource& src, int P, int K);

// The epoch's batches, seeded by (seed, epoch): per batch P different people (a shuffled walk
// over the training people, reshuffled when used up; P capped at their number) and K of each
// one's images (a shuffled walk over them, so a person with fewer than K images repeats some).
GroupOrder group_epoch_order(const GroupSource& src, int P, int K, uint64_t seed, int epoch);

// Checksum of an order (a resumed run checks it regenerated the same batches).
std::string group_order_checksum(const GroupOrder& order);

}  // namespace siamese
