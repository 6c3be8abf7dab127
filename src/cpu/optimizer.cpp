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

namespace {

// optimizer_update with its branches taken outside the loop: GCC does not vectorize a loop with
// control flow, and the scalar loop (a sqrt and a division an element) was 3% of an epoch.
template <OptKind Kind, bool Decay>
void optimizer_loop(const OptimizerConfig& c, OptStepScalars k, float* p, const float* g, float* s1, float* s2,
                    size_t n) {
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; ++i) {
        if constexpr (Decay) weight_decay_update(c, k, p[i]);
        if constexpr (Kind == OptKind::RMSprop) rmsprop_update(c, k, p[i], g[i], s1[i]);
        else if constexpr (Kind == OptKind::Adam) adam_update(c, k, p[i], g[i], s1[i], s2[i]);
        else sgd_update(c, k, p[i], g[i], s1[i]);
    }
}

template <OptKind Kind>
void optimizer_loop(const OptimizerConfig& c, OptStepScalars k, float* p, const float* g, float* s1, float* s2,
                    size_t n) {
    if (c.weight_decay != 0.0f) optimizer_loop<Kind, true>(c, k, p, g, s1, s2, n);
    else optimizer_loop<Kind, false>(c, k, p, g, s1, s2, n);
}

}  // namespace

void optimizer_step(const OptimizerConfig& c, float* params, const float* grad, float* state, size_t n, uint64_t t) {
    const OptStepScalars k = opt_scalars(c, t);
    float* s1 = state;
    float* s2 = state + n;
    switch (c.kind) {
        case OptKind::RMSprop: return optimizer_loop<OptKind::RMSprop>(c, k, params, grad, s1, s2, n);
        case OptKind::Adam: return optimizer_loop<OptKind::Adam>(c, k, params, grad, s1, s2, n);
        case OptKind::SGD: return optimizer_loop<OptKind::SGD>(c, k, params, grad, s1, s2, n);
    }
}

}  // namespace siamese
