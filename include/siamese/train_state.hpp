// The full training state, written atomically (temporary file, fsync, rename) with a checksum
// at every epoch end and every N steps, so `siamese train --resume DIR` continues a killed run
// and ends with the same weights, bit for bit, as a run that was never interrupted.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace siamese {

struct TrainProgress {
    int epoch = 1;                 // the epoch to continue in (1-based)
    int next_batch = 0;            // batches of that epoch already done
    uint64_t step = 0;             // global steps done (keys dropout and the optimizer)
    std::vector<float> losses;     // losses of that epoch's batches done so far
    std::string order_checksum;    // of that epoch's pair order (regenerated from seed and epoch)
};

struct TrainState {
    std::string args_json;         // the training command's options
    std::string history_json;      // JSON array of the finished epochs' records
    TrainProgress progress;
    std::vector<float> params, opt_state;
    std::string data_fingerprint;  // of the data it trains on (empty in states from before it)
};

void save_train_state(const std::string& path, const TrainState& s);
TrainState load_train_state(const std::string& path);  // throws DataError (corrupt, truncated, ...)
TrainState parse_train_state(const std::string& bytes, const std::string& name);  // the same, from memory

}  // namespace siamese
