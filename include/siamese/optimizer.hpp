// Optimizers over the flat parameter buffer. optimizer_update() is the one per-element rule,
// shared by the CPU loop and the CUDA kernel, so both backends apply the same arithmetic.
//   rmsprop (Keras 3 / PyTorch): v = rho v + (1-rho) g^2;  p -= lr g / (sqrt(v) + eps)
//   adam:   m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;  p -= lr mhat / (sqrt(vhat) + eps)
//   sgd:    m = mu m + g;  p -= lr m   (PyTorch's momentum form)
// each optionally after decoupled weight decay, p -= lr wd p (AdamW's form).
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>

#include "siamese/philox.hpp"  // SIAMESE_HD

namespace siamese {

enum class OptKind : int { RMSprop = 0, Adam = 1, SGD = 2 };

struct OptimizerConfig {
    OptKind kind = OptKind::RMSprop;
    float lr = 1e-3f;
    float rho = 0.9f;        // rmsprop
    float beta1 = 0.9f, beta2 = 0.999f;  // adam
    float momentum = 0.9f;   // sgd
    float eps = 1e-7f;       // Keras' default epsilon
    // Decoupled weight decay (AdamW's, for every optimizer): p -= lr_t * weight_decay * p before
    // the update; 0 (the default) leaves the update exactly as above.
    float weight_decay = 0.0f;
    // Learning-rate schedule: 0 = constant lr (the reference recipe). Otherwise a linear warm-up
    // over warmup_steps, then a cosine decay from lr to 0 at step decay_steps.
    uint64_t decay_steps = 0, warmup_steps = 0;
};

OptKind parse_optimizer(const std::string& name);  // throws UsageError
std::string optimizer_name(OptKind k);

// Per-step scalars: the step's learning rate and Adam's bias corrections for step t (1-based),
// in double, on the host loop and in the CUDA kernel alike.
struct OptStepScalars {
    float lr = 0, bc1 = 1, bc2 = 1;
};
SIAMESE_HD double hd_pow(double a, double b) {
#if defined(__CUDA_ARCH__)
    return pow(a, b);
#else
    return std::pow(a, b);
#endif
}
SIAMESE_HD double hd_cos(double a) {
#if defined(__CUDA_ARCH__)
    return cos(a);
#else
    return std::cos(a);
#endif
}
// The learning rate of step t (1-based): c.lr itself when there is no schedule (bit for bit).
SIAMESE_HD float scheduled_lr(const OptimizerConfig& c, uint64_t t) {
    if (c.decay_steps == 0) return c.lr;
    const double warm = c.warmup_steps > 0 && t < c.warmup_steps ? double(t) / double(c.warmup_steps) : 1.0;
    const double done = t >= c.decay_steps ? 1.0 : double(t - 1) / double(c.decay_steps);
    return float(double(c.lr) * warm * 0.5 * (1.0 + hd_cos(3.141592653589793 * done)));
}
SIAMESE_HD OptStepScalars opt_scalars(const OptimizerConfig& c, uint64_t t) {
    OptStepScalars s;
    s.lr = scheduled_lr(c, t);
    if (c.kind == OptKind::Adam) {
        s.bc1 = float(1.0 - hd_pow(double(c.beta1), double(t)));
        s.bc2 = float(1.0 - hd_pow(double(c.beta2), double(t)));
    }
    return s;
}

// The per-element rule of each optimizer, after any weight decay. s1, s2: the two state slots
// of this parameter (rmsprop uses s1; sgd uses s1).
SIAMESE_HD void rmsprop_update(const OptimizerConfig& c, OptStepScalars k, float& p, float g, float& s1) {
    s1 = c.rho * s1 + (1.0f - c.rho) * g * g;
    p -= k.lr * g / (sqrtf(s1) + c.eps);
}
SIAMESE_HD void adam_update(const OptimizerConfig& c, OptStepScalars k, float& p, float g, float& s1, float& s2) {
    s1 = c.beta1 * s1 + (1.0f - c.beta1) * g;
    s2 = c.beta2 * s2 + (1.0f - c.beta2) * g * g;
    p -= k.lr * (s1 / k.bc1) / (sqrtf(s2 / k.bc2) + c.eps);
}
SIAMESE_HD void sgd_update(const OptimizerConfig& c, OptStepScalars k, float& p, float g, float& s1) {
    s1 = c.momentum * s1 + g;
    p -= k.lr * s1;
}
SIAMESE_HD void weight_decay_update(const OptimizerConfig& c, OptStepScalars k, float& p) {
    p -= k.lr * c.weight_decay * p;
}

// The whole rule for one parameter: what the CUDA kernel runs per element. The CPU loop runs
// the same functions with the branches taken outside it (so that it vectorizes).
SIAMESE_HD void optimizer_update(const OptimizerConfig& c, OptStepScalars k, float& p, float g, float& s1, float& s2) {
    if (c.weight_decay != 0.0f) weight_decay_update(c, k, p);
    if (c.kind == OptKind::RMSprop) {
        rmsprop_update(c, k, p, g, s1);
    } else if (c.kind == OptKind::Adam) {
        adam_update(c, k, p, g, s1, s2);
    } else {
        sgd_update(c, k, p, g, s1);
    }
}

}  // namespace siamese
