// libFuzzer target: the training-state loader (what --resume reads) must refuse any malformed
// file with a DataError, and what it accepts must be consistent (optimizer state twice the
// weights, a valid position), as run_training relies on it.
#include <cstddef>
#include <cstdint>
#include <string>

#include "siamese/common.hpp"
#include "siamese/train_state.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string bytes(reinterpret_cast<const char*>(data), size);
    try {
        const siamese::TrainState s = siamese::parse_train_state(bytes, "fuzz.state");
        if (s.opt_state.size() != 2 * s.params.size() || s.progress.epoch < 1 || s.progress.next_batch < 0) __builtin_trap();
    } catch (const siamese::DataError&) {
    }
    return 0;
}
