// --profile on the CPU: wall-clock milliseconds of each phase of a training step.
#pragma once
#include <chrono>

#include "siamese/backend.hpp"

namespace siamese {

// Runs f(), adding its wall time to (*times)[name] when times is set.
template <class F>
void timed(PhaseTimes* times, const char* name, F&& f) {
    if (!times) {
        f();
        return;
    }
    const auto t0 = std::chrono::steady_clock::now();
    f();
    auto& slot = (*times)[name];
    slot.first += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    slot.second += 1;
}

}  // namespace siamese
