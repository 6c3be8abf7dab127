// The training loop (backend-agnostic): per epoch a seeded shuffle of the training pairs,
// batches of the shuffled order, then the validation loss and accuracy from inference
// embeddings of the bank (each image embedded once).
#pragma once
#include <functional>
#include <vector>

#include "siamese/backend.hpp"
#include "siamese/metrics.hpp"
#include "siamese/pairs.hpp"
#include "siamese/train_state.hpp"

namespace siamese {

// How the loop reports (the recipe, with epochs, batch, seed and margin, is the backend's).
struct TrainOptions {
    int checkpoint_every = 0;  // also call on_checkpoint every N steps (0: at epoch ends only)
    // Call on_batch after every step (a testing aid that acts at one exact step needs it);
    // otherwise an engine that prefers runs of steps (Backend::preferred_run, the CUDA graphs)
    // gets them, and on_batch is called after each run.
    bool batch_by_batch = false;
};

struct EpochStats {
    int epoch = 0;  // 1-based
    double train_loss = 0, val_loss = 0, val_accuracy = 0, seconds = 0;
};

// Called after every batch (done, total, global steps done), every epoch, and at every
// checkpoint (epoch ends and every checkpoint_every steps) with what a resume needs; the
// backend then holds the weights and optimizer state of that point.
struct TrainCallbacks {
    std::function<void(int, int, uint64_t)> on_batch;
    std::function<void(const EpochStats&)> on_epoch;
    // With the weights at that point, already checked finite (no second download), handed over
    // to be kept (the strong recipe's are 4 MB: moved into the snapshot, not copied).
    std::function<void(const TrainProgress&, std::vector<float> params)> on_checkpoint;
};

struct TrainResult {
    std::vector<EpochStats> epochs;
    double threshold = 0.5;  // maximises validation accuracy after the last epoch
};

// Checksum of a pair order (a resumed run checks it regenerated the same order).
std::string order_checksum(const PairSet& order);

// Trains `recipe` (the one the backend was made with) from `resume` (default: the start).
// The one place that decides divergence: a non-finite batch loss (backends report NaN for a
// step whose loss or gradient was not finite) or non-finite weights at a checkpoint throw
// DataError naming the epoch, batch and first non-finite tensor; no checkpoint is written after.
TrainResult train_model(Backend& backend, const PairSplit& split, const Recipe& recipe, const TrainOptions& opt,
                        const TrainCallbacks& cb, const TrainProgress& resume = TrainProgress{});

// Mean contrastive loss of pairs given their distances.
double contrastive_loss_of(const std::vector<float>& d, const std::vector<float>& y, double margin);

// Test figures of `pairs` from the backend's current weights; one-shot over `people` when set,
// averaged over `draws` seeded gallery draws. The test distances and the bank's embeddings are
// returned through the optional pointers.
constexpr int kDefaultDraws = 20;
TestReport evaluate_model(Backend& backend, const ImageBank& bank, const PairSet& pairs, double threshold,
                          const std::vector<int>& oneshot_people, uint64_t seed, std::vector<float>* distances = nullptr,
                          std::vector<float>* embeddings = nullptr, int draws = kDefaultDraws);

}  // namespace siamese
