// Dynamic shared memory beyond the default 48 KB: a kernel gets it only after
// cudaFuncSetAttribute raises its limit, and static shared memory (a kernel's own __shared__
// variables) counts against the same budget. Device code headers: included by .cu files.
#pragma once
#include <cstddef>

#include "check.hpp"

namespace siamese::cuda {

// The most shared memory a block may have on this device (its opt-in maximum), or 0 when the
// query fails (callers then take a path that needs none beyond the default).
inline size_t dynamic_smem_limit() {
    static const size_t limit = [] {
        int dev = 0, v = 0;
        if (cudaGetDevice(&dev) != cudaSuccess ||
            cudaDeviceGetAttribute(&v, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev) != cudaSuccess)
            return size_t(0);
        return size_t(v);
    }();
    return limit;
}

// True when Kernel may launch with `bytes` of dynamic shared memory, raising its limit past the
// default (48 KB less the kernel's static shared memory, e.g. last_block_done's flag) when
// needed: once per size increase, so in the eager warm-up step that precedes a graph capture,
// never during one. False when the device cannot give that much.
template <auto Kernel>
bool dynamic_smem_ok(size_t bytes) {
    static const size_t fixed = [] {  // the kernel's static shared memory
        cudaFuncAttributes a{};
        CUDA_CHECK(cudaFuncGetAttributes(&a, Kernel));
        return a.sharedSizeBytes;
    }();
    static size_t raised = 48 * 1024 - fixed;  // one per kernel
    if (bytes + fixed > dynamic_smem_limit()) return false;
    if (bytes > raised) {
        CUDA_CHECK(cudaFuncSetAttribute(Kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
        raised = bytes;
    }
    return true;
}

}  // namespace siamese::cuda
