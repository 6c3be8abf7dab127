// The optimizer on the CPU: the per-element rule optimizer_update (include/siamese/optimizer.hpp)
// over the flat buffer. CUDA twin: optimizer_step in cuda/optimizer.cu (same name and order).
#pragma once
#include <cstddef>
#include <cstdint>

#include "siamese/optimizer.hpp"

namespace siamese {

// state holds 2*n floats: slot 1 for all parameters, then slot 2. t is the 1-based step.
void optimizer_step(const OptimizerConfig& c, float* params, const float* grad, float* state, size_t n, uint64_t t);

}  // namespace siamese
