// Launch geometry shared by the elementwise kernels, and the host-side size check every
// launcher makes before writing a scratch or output buffer (so an undersized buffer is an
// error on the host, with or without a GPU, never a silent write past its end).
#pragma once
#include <cstddef>
#include <stdexcept>
#include <string>

namespace siamese::cuda {

constexpr int kThreads = 256;
inline unsigned blocks_for(long n) { return unsigned((n + kThreads - 1) / kThreads); }

// Throws std::logic_error (an internal error: a bug, not bad input) when need > have.
inline void require_elems(size_t have, size_t need, const char* what) {
    if (need > have)
        throw std::logic_error(std::string(what) + ": buffer holds " + std::to_string(have) + " elements, the launch needs " +
                               std::to_string(need));
}

}  // namespace siamese::cuda
