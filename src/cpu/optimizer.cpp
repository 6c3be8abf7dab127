#include "cpu/optimizer.hpp"

#include "siamese/common.hpp"

namespace siamese {

OptKind parse_optimizer(const std::string& name) {
    if (name == "rmsprop") return OptKind::RMSprop;
    if (name == "adam") return OptKind::Adam;
    if (name == "sgd") return OptKind::SGD;
    throw UsageError("--optimizer must be rmsprop, adam or sgd, not '" + name + "'");
}

std::string optimizer_name(OptKind k) {
    switch (k) {
        case OptKind::RMSprop: return "rmsprop";
        case OptKind::Adam: return "adam";
        case OptKind::SGD: return "sgd";
    }
    return "?";
}

void optimizer_step(const OptimizerConfig& c, float* params, const float* grad, float* state, size_t n, uint64_t t) {
    const OptStepScalars k = opt_scalars(c, t);
    float* s1 = state;
    float* s2 = state + n;
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; ++i) optimizer_update(c, k, params[i], grad[i], s1[i], s2[i]);
}

}  // namespace siamese
