// A device allocation owned by one object (cudaMalloc/cudaFree), sized in elements.
#pragma once
#include <cstddef>
#include <vector>

#include "check.hpp"

namespace siamese::cuda {

template <class T>
class DeviceBuffer {
public:
    DeviceBuffer() = default;
    explicit DeviceBuffer(size_t n) { resize(n); }
    ~DeviceBuffer() { if (ptr_) cudaFree(ptr_); }
    DeviceBuffer(const DeviceBuffer&) = delete;
    DeviceBuffer& operator=(const DeviceBuffer&) = delete;
    DeviceBuffer(DeviceBuffer&& o) noexcept : ptr_(o.ptr_), n_(o.n_) { o.ptr_ = nullptr; o.n_ = 0; }

    void resize(size_t n) {
        if (n == n_) return;
        if (ptr_) CUDA_CHECK(cudaFree(ptr_));
        ptr_ = nullptr;
        n_ = n;
        if (n) CUDA_CHECK(cudaMalloc(&ptr_, n * sizeof(T)));
    }
    void upload(const T* host, size_t n) {
        resize(n);
        if (n) CUDA_CHECK(cudaMemcpy(ptr_, host, n * sizeof(T), cudaMemcpyHostToDevice));
    }
    void upload(const std::vector<T>& v) { upload(v.data(), v.size()); }
    std::vector<T> download() const {
        std::vector<T> v(n_);
        if (n_) CUDA_CHECK(cudaMemcpy(v.data(), ptr_, n_ * sizeof(T), cudaMemcpyDeviceToHost));
        return v;
    }
    // Fills every byte with `byte` (tests poison outputs with 0xFF: NaN for floats).
    void fill_bytes(int byte) { if (n_) CUDA_CHECK(cudaMemset(ptr_, byte, n_ * sizeof(T))); }
    T* get() { return ptr_; }
    const T* get() const { return ptr_; }
    size_t size() const { return n_; }

private:
    T* ptr_ = nullptr;
    size_t n_ = 0;
};

}  // namespace siamese::cuda
