// The one Thrust call the engine makes (eval.cu's stable_sort_by_key on its stream), for the
// EMULATE build: std::stable_sort on the host, at once. The real Thrust (CCCL) cannot be used
// here: it finds the toolkit's own runtime headers and takes them for this one.
#pragma once
#include <algorithm>
#include <cstddef>
#include <numeric>
#include <vector>

#include "cuda_runtime.h"

namespace thrust {

struct emulated_policy {
    cudaStream_t stream = nullptr;
    emulated_policy on(cudaStream_t s) const { return {s}; }
};
namespace cuda {
inline constexpr emulated_policy par{};
}
template <class T>
T* device_pointer_cast(T* p) {
    return p;
}
// Sorts [kb, ke) and the values alongside by key, equal keys in their order (stable).
template <class K, class V>
void stable_sort_by_key(const emulated_policy& policy, K* kb, K* ke, V* vb) {
    ::emu::require_not_capturing(policy.stream, "thrust::stable_sort_by_key");
    const size_t n = size_t(ke - kb);
    std::vector<size_t> idx(n);
    std::iota(idx.begin(), idx.end(), size_t(0));
    std::stable_sort(idx.begin(), idx.end(), [kb](size_t a, size_t b) { return kb[a] < kb[b]; });
    std::vector<K> k(n);
    std::vector<V> v(n);
    for (size_t i = 0; i < n; ++i) {
        k[i] = kb[idx[i]];
        v[i] = vb[idx[i]];
    }
    std::copy(k.begin(), k.end(), kb);
    std::copy(v.begin(), v.end(), vb);
}

}  // namespace thrust
