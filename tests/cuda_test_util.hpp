// Helpers of the [cuda] tests: skip (reported by CTest as skipped) where no device answers,
// upload vectors, poison outputs before a kernel runs.
#pragma once
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "buffer.hpp"
#include "kernels.hpp"
#include "siamese/backend.hpp"

// Ends the test case early, printing the marker CTest's SKIP_REGULAR_EXPRESSION looks for.
#define SKIP_WITHOUT_CUDA()                                                               \
    do {                                                                                  \
        std::string why_;                                                                 \
        if (!siamese::cuda_device_available(&why_)) {                                     \
            std::printf("SKIPPED: %s\n", why_.c_str());                                   \
            return;                                                                       \
        }                                                                                 \
    } while (0)

namespace cudatest {

template <class T, class U>
siamese::cuda::DeviceBuffer<T> to_device(const std::vector<U>& v) {
    std::vector<T> t(v.begin(), v.end());
    siamese::cuda::DeviceBuffer<T> d;
    d.upload(t);
    return d;
}

// An output buffer filled with 0xFF bytes (NaN for floats): any element a kernel fails to write
// stays NaN and fails the comparison.
template <class T>
siamese::cuda::DeviceBuffer<T> poisoned(size_t n) {
    siamese::cuda::DeviceBuffer<T> d(n);
    d.fill_bytes(0xFF);
    return d;
}

// A device StepState at (first, batch, step), as a captured training step would find it.
inline siamese::cuda::StepState* device_state(siamese::cuda::DeviceBuffer<siamese::cuda::StepState>& buf, int first,
                                             int batch, uint64_t step) {
    const siamese::cuda::StepState s{first, batch, step};
    buf.upload(&s, 1);
    return buf.get();
}

template <class T>
bool all_finite(const std::vector<T>& v) {
    for (const auto& x : v)
        if (!std::isfinite(double(x))) return false;
    return true;
}

// The same floats, bit for bit (finite where `finite`).
inline void check_same_bits(const std::vector<float>& a, const std::vector<float>& b, bool finite = false) {
    REQUIRE(a.size() == b.size());
    if (finite) CHECK(all_finite(a));
    CHECK(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

// Two engines' outputs of one epoch (train_epoch*): `batches` finite losses and `val_pairs`
// distances each, the same bits.
inline void check_same_epoch(const siamese::Backend::EpochOutput& g, const siamese::Backend::EpochOutput& e,
                             size_t batches, size_t val_pairs) {
    REQUIRE(g.losses.size() == batches);
    REQUIRE(e.losses.size() == batches);
    REQUIRE(g.val_distances.size() == val_pairs);
    REQUIRE(e.val_distances.size() == val_pairs);
    CHECK(all_finite(g.losses));
    CHECK(std::memcmp(g.losses.data(), e.losses.data(), batches * sizeof(float)) == 0);
    CHECK(std::memcmp(g.val_distances.data(), e.val_distances.data(), val_pairs * sizeof(float)) == 0);
}

}  // namespace cudatest
