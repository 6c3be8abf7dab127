// Optimizer steps against values worked out by hand (two steps each, one parameter), and the
// CPU loop against the per-element rule the CUDA kernel runs.
#include <catch2/catch.hpp>

#include <cmath>
#include <random>
#include <vector>

#include "cpu/optimizer.hpp"

using namespace siamese;

namespace {
std::vector<float> two_steps(OptKind kind, float g1, float g2) {
    OptimizerConfig c;
    c.kind = kind;
    c.lr = 0.1f;
    std::vector<float> p = {1.0f}, state = {0.0f, 0.0f}, out;
    float g = g1;
    optimizer_step(c, p.data(), &g, state.data(), 1, 1);
    out.push_back(p[0]);
    g = g2;
    optimizer_step(c, p.data(), &g, state.data(), 1, 2);
    out.push_back(p[0]);
    return out;
}
}  // namespace

// v = .9 v + .1 g^2 and p -= lr g / (sqrt(v) + 1e-7)
TEST_CASE("RMSprop steps match values worked out by hand", "[optimizer]") {
    // Step 1: v = 0.025, p = 1 - 0.05 / 0.1581140 = 0.6837724
    // Step 2: v = 0.0475, p = 0.6837724 - 0.05 / 0.2179450 = 0.4543568
    const auto p = two_steps(OptKind::RMSprop, 0.5f, 0.5f);
    CHECK(p[0] == Approx(0.6837724).epsilon(1e-6));
    CHECK(p[1] == Approx(0.4543568).epsilon(1e-6));
}

TEST_CASE("Adam with bias correction", "[optimizer]") {
    // Step 1: mhat = 0.5, vhat = 0.25 -> p = 1 - 0.1 * 0.5 / 0.5 = 0.9
    // Step 2 (g = -0.5): m = -0.005, v = 0.00049975; mhat = -0.02631579, vhat = 0.25
    //         -> p = 0.9 + 0.1 * 0.02631579 / 0.5 = 0.9052632
    const auto p = two_steps(OptKind::Adam, 0.5f, -0.5f);
    CHECK(p[0] == Approx(0.9).epsilon(1e-6));
    CHECK(p[1] == Approx(0.9052632).epsilon(1e-6));
}

TEST_CASE("SGD with momentum 0.9", "[optimizer]") {
    // m = 0.5 -> p = 0.95; m = 0.95 -> p = 0.855
    const auto p = two_steps(OptKind::SGD, 0.5f, 0.5f);
    CHECK(p[0] == Approx(0.95).epsilon(1e-6));
    CHECK(p[1] == Approx(0.855).epsilon(1e-6));
}

TEST_CASE("decoupled weight decay shrinks the parameter by lr * wd before the update", "[optimizer]") {
    // One parameter p with state (0, 0), lr 0.1, wd 0.5, stepped with the given gradients.
    auto decayed = [](OptKind kind, float p, std::vector<float> grads) {
        OptimizerConfig c;
        c.kind = kind;
        c.lr = 0.1f;
        c.weight_decay = 0.5f;
        std::vector<float> state = {0.0f, 0.0f}, out;
        for (size_t t = 0; t < grads.size(); ++t) {
            optimizer_step(c, &p, &grads[t], state.data(), 1, t + 1);
            out.push_back(p);
        }
        return out;
    };
    // Adam, g 0.5: step 1 p = 1 - 0.1*0.5*1 = 0.95, then - 0.1 * 0.5/0.5 = 0.85; step 2
    // (g -0.5): p = 0.85 * (1 - 0.05) = 0.8075, then + 0.1 * 0.02631579 / 0.5 = 0.8127632.
    const auto a = decayed(OptKind::Adam, 1.0f, {0.5f, -0.5f});
    CHECK(a[0] == Approx(0.85).epsilon(1e-6));
    CHECK(a[1] == Approx(0.8127632).epsilon(1e-6));
    // SGD: a zero gradient leaves only the decay, p (1 - lr wd) per step.
    CHECK(decayed(OptKind::SGD, 2.0f, {0.0f})[0] == Approx(1.9).epsilon(1e-6));
}

TEST_CASE("the optimizer loop applies optimizer_update to every element, for every kind, with and without weight decay", "[optimizer]") {
    // The CPU loop takes the kind and decay branches outside (so that it vectorizes); the CUDA
    // kernel runs optimizer_update per element. 1003 parameters: vector body and tail.
    std::mt19937_64 r(5);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    const size_t n = 1003;
    for (OptKind kind : {OptKind::RMSprop, OptKind::Adam, OptKind::SGD})
        for (float wd : {0.0f, 0.01f}) {
            INFO("kind " << optimizer_name(kind) << " weight decay " << wd);
            OptimizerConfig c;
            c.kind = kind;
            c.weight_decay = wd;
            std::vector<float> p(n), g(n), s(2 * n);
            for (auto& v : p) v = u(r);
            for (auto& v : g) v = u(r);
            for (size_t i = 0; i < n; ++i) s[i] = u(r), s[n + i] = std::fabs(u(r));
            for (size_t i = 0; i < n; ++i) s[i] = kind == OptKind::RMSprop ? std::fabs(s[i]) : s[i];
            auto p_ref = p, s_ref = s;
            for (uint64_t t = 1; t <= 3; ++t) {
                optimizer_step(c, p.data(), g.data(), s.data(), n, t);
                const OptStepScalars k = opt_scalars(c, t);
                for (size_t i = 0; i < n; ++i) optimizer_update(c, k, p_ref[i], g[i], s_ref[i], s_ref[n + i]);
            }
            // Not bit for bit: the engine's loop and this file may contract a * b + c into an
            // FMA differently (the sanitizer build compiles the tests at -O1, the engine at -O2),
            // one rounding apart per operation; 1e-5 relative is a hundred float ulps after three
            // steps, while a wrong rule or a skipped element is off by far more.
            int wrong = 0;
            for (size_t i = 0; i < n; ++i) wrong += std::fabs(p[i] - p_ref[i]) > 1e-5f * std::fmax(1.0f, std::fabs(p_ref[i]));
            for (size_t i = 0; i < 2 * n; ++i) wrong += std::fabs(s[i] - s_ref[i]) > 1e-5f * std::fmax(1.0f, std::fabs(s_ref[i]));
            CHECK(wrong == 0);
        }
}
