// Errors and the portable random number generator shared by every part of the engine.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace siamese {

// Bad input from the user's files (exit status 1): the message names the file and the fault.
struct DataError : std::runtime_error {
    using std::runtime_error::runtime_error;
};
// Bad command-line values (exit status 2).
struct UsageError : std::runtime_error {
    using std::runtime_error::runtime_error;
};
// The GPU, its driver or a CUDA library failed, or no device answers (exit status 4): not the
// user's files nor the command line.
struct DeviceError : std::runtime_error {
    using std::runtime_error::runtime_error;
};
constexpr int kExitData = 1, kExitUsage = 2, kExitInternal = 3, kExitDevice = 4;

// xoshiro256** seeded through splitmix64. Unlike std::uniform_int_distribution its output
// is specified bit for bit, so the same seed gives the same pairs on every machine.
class Rng {
public:
    explicit Rng(uint64_t seed) {
        for (auto& w : s_) {
            seed += 0x9E3779B97F4A7C15ull;
            uint64_t z = seed;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
            w = z ^ (z >> 31);
        }
    }
    uint64_t next() {
        const uint64_t result = rotl(s_[1] * 5, 7) * 9;
        const uint64_t t = s_[1] << 17;
        s_[2] ^= s_[0]; s_[3] ^= s_[1]; s_[1] ^= s_[2]; s_[0] ^= s_[3];
        s_[2] ^= t; s_[3] = rotl(s_[3], 45);
        return result;
    }
    // Uniform integer in [0, n), unbiased (rejection of the short last interval).
    uint64_t below(uint64_t n) {
        const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
        uint64_t x;
        do { x = next(); } while (x >= limit);
        return x % n;
    }
    // Uniform double in [0, 1) with 53 random bits.
    double uniform() { return double(next() >> 11) * 0x1.0p-53; }
    template <class T> void shuffle(std::vector<T>& v) {
        for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[below(i)]);
    }
    const uint64_t* state() const { return s_; }
    void set_state(const uint64_t* s) { for (int i = 0; i < 4; ++i) s_[i] = s[i]; }

private:
    static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
    uint64_t s_[4];
};

}  // namespace siamese
