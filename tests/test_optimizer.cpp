// Optimizer steps against values worked out by hand (two steps each, one parameter).
#include <catch2/catch.hpp>

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
