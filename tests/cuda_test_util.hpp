// Helpers of the [cuda] tests: skip (reported by CTest as skipped) where no device answers,
// upload vectors, poison outputs before a kernel runs.
#pragma once
#include <catch2/catch.hpp>
#include <cstdio>
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

}  // namespace cudatest
