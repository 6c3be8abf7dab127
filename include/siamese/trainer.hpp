// The training loop (backend-agnostic): per epoch a seeded shuffle of the training pairs,
// batches of the shuffled order, then the validation loss and accuracy from inference
// embeddings of the bank (each image embedded once).
#pragma once
#include <functional>
#include <vector>

#include "siamese/backend.hpp"
#include "siamese/metrics.hpp"
#include "siamese/pairs.hpp"

namespace siamese {

struct TrainOptions {
    int epochs = 13;
    int batch = 128;
    uint64_t seed = 1;
    float margin = 1.0f;
};

struct EpochStats {
    int epoch = 0;  // 1-based
    double train_loss = 0, val_loss = 0, val_accuracy = 0, seconds = 0;
};

// Called after every batch (done, total) and every epoch.
struct TrainCallbacks {
    std::function<void(int, int)> on_batch;
    std::function<void(const EpochStats&)> on_epoch;
};

struct TrainResult {
    std::vector<EpochStats> epochs;
    double threshold = 0.5;  // maximises validation accuracy after the last epoch
};

// The epoch's pair order: a shuffle seeded by (seed, epoch), so a run can resume at any epoch.
PairSet epoch_order(const PairSet& train, uint64_t seed, int epoch);

TrainResult train_model(Backend& backend, const PairSplit& split, const TrainOptions& opt, const TrainCallbacks& cb);

// Mean contrastive loss of pairs given their distances.
double contrastive_loss_of(const std::vector<float>& d, const std::vector<float>& y, double margin);

// Test figures of `pairs` from the backend's current weights; one-shot over `people` when set.
TestReport evaluate_model(Backend& backend, const ImageBank& bank, const PairSet& pairs, double threshold,
                          const std::vector<int>& oneshot_people, uint64_t seed);

}  // namespace siamese
