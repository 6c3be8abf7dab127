// The epoch's pair order as a counter-based permutation: position i of epoch e holds training
// pair shuffle_index(key, i), and every position is computed on its own. So the CPU reference
// and the GPU build the same order with the same function; the GPU in one kernel launch from
// the pairs it already holds (no order uploaded per epoch, no wait for the device).
//
// The rule: a 12-round Feistel network over the smallest domain 4^h >= n, each round a keyed
// 32-bit mixer of the right half; applied again while the result is >= n ("cycle walking":
// the domain's permutation, restricted to the cycle through i, stays a bijection of [0, n)).
// The domain is at most 4n, so fewer than 4 applications are needed on average (1.46 for
// 11,250). Twelve rounds, not the 4-6 a large domain needs: with 2-bit halves, 6 rounds were
// measured biased (tests/test_pairs.cpp counts where each position lands). Round keys come
// from splitmix64 of (seed, epoch), so a run resumes at any epoch with the same order.
#pragma once
#include <cstdint>

#include "siamese/philox.hpp"  // SIAMESE_HD

namespace siamese {

constexpr int kShuffleRounds = 12;

struct ShuffleKey {
    uint32_t round_key[kShuffleRounds];
    uint32_t n = 0;     // items permuted
    uint32_t half = 1;  // bits per Feistel half: the domain is [0, 4^half)
};

SIAMESE_HD uint64_t splitmix64_next(uint64_t& s) {
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

SIAMESE_HD ShuffleKey shuffle_key(uint64_t seed, int epoch, uint32_t n) {
    ShuffleKey k;
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + uint64_t(uint32_t(epoch)) + 1;
    for (int r = 0; r < kShuffleRounds; ++r) k.round_key[r] = uint32_t(splitmix64_next(s) >> 32);
    k.n = n;
    k.half = 1;
    while ((uint64_t(1) << (2 * k.half)) < n) ++k.half;  // n <= 2^32: half <= 16
    return k;
}

// The Feistel round's function: a keyed murmur3-style finaliser (full avalanche on 32 bits).
SIAMESE_HD uint32_t shuffle_mix(uint32_t x, uint32_t key) {
    x ^= key;
    x ^= x >> 16;
    x *= 0x7FEB352Du;
    x ^= x >> 15;
    x *= 0x846CA68Bu;
    x ^= x >> 16;
    return x;
}

// One pass of the Feistel network over [0, 4^half): a bijection of that domain.
SIAMESE_HD uint32_t shuffle_feistel(const ShuffleKey& k, uint32_t x) {
    const uint32_t mask = k.half >= 32 ? 0xFFFFFFFFu : (1u << k.half) - 1u;
    uint32_t l = (x >> k.half) & mask, r = x & mask;
    for (int round = 0; round < kShuffleRounds; ++round) {
        const uint32_t t = l ^ (shuffle_mix(r, k.round_key[round]) & mask);
        l = r;
        r = t;
    }
    return (l << k.half) | r;
}

// The training pair at position i (< k.n) of the epoch's order.
SIAMESE_HD uint32_t shuffle_index(const ShuffleKey& k, uint32_t i) {
    uint32_t x = shuffle_feistel(k, i);
    while (x >= k.n) x = shuffle_feistel(k, x);
    return x;
}

// The 1-based epoch that begins at global step `step` when every epoch is `batches` steps (the
// pair sampler's: the same pairs every epoch), as the CUDA engine's epoch graph derives it.
SIAMESE_HD int epoch_at_step(uint64_t step, int batches) { return int(step / uint64_t(batches)) + 1; }

}  // namespace siamese
