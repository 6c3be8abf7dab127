// A device allocation owned by one object (cudaMalloc/cudaFree), sized in elements. Copies
// name their stream: the engine passes its own, so copies and kernels are ordered on that one
// stream explicitly (the copy is issued on it, then waited for, since the host side is pageable
// memory owned by the caller); tests may pass none (the legacy default stream).
#pragma once
#include <cstddef>
#include <utility>
#include <vector>

#include "check.hpp"
#include "launch.hpp"  // require_elems

namespace siamese::cuda {

template <class T>
class DeviceBuffer {
public:
    DeviceBuffer() = default;
    explicit DeviceBuffer(size_t n) { resize(n); }
    ~DeviceBuffer() { if (ptr_) cudaFree(ptr_); }
    DeviceBuffer(const DeviceBuffer&) = delete;
    DeviceBuffer& operator=(const DeviceBuffer&) = delete;
    DeviceBuffer(DeviceBuffer&& o) noexcept : ptr_(std::exchange(o.ptr_, nullptr)), n_(std::exchange(o.n_, 0)) {}
    DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
        if (this != &o) {
            if (ptr_) cudaFree(ptr_);
            ptr_ = std::exchange(o.ptr_, nullptr);
            n_ = std::exchange(o.n_, 0);
        }
        return *this;
    }

    // Reallocates (contents lost) when the size changes; the pointer may then change.
    void resize(size_t n) {
        if (n == n_) return;
        if (ptr_) CUDA_CHECK(cudaFree(ptr_));
        ptr_ = nullptr;
        n_ = n;
        if (n) CUDA_CHECK(cudaMalloc(&ptr_, n * sizeof(T)));
    }
    void upload(const T* host, size_t n, cudaStream_t stream = nullptr) {
        resize(n);
        if (!n) return;
        CUDA_CHECK(cudaMemcpyAsync(ptr_, host, n * sizeof(T), cudaMemcpyHostToDevice, stream));
        CUDA_CHECK(cudaStreamSynchronize(stream));
    }
    void upload(const std::vector<T>& v, cudaStream_t stream = nullptr) { upload(v.data(), v.size(), stream); }
    std::vector<T> download(cudaStream_t stream = nullptr) const { return download_first(n_, stream); }
    // The first min(n, size()) elements only.
    std::vector<T> download_first(size_t n, cudaStream_t stream = nullptr) const {
        std::vector<T> v(n < n_ ? n : n_);
        if (!v.empty()) {
            CUDA_CHECK(cudaMemcpyAsync(v.data(), ptr_, v.size() * sizeof(T), cudaMemcpyDeviceToHost, stream));
            CUDA_CHECK(cudaStreamSynchronize(stream));
        }
        return v;
    }
    // Device-to-device copy of all of `src` (same size) on `stream`.
    void copy_from(const DeviceBuffer& src, cudaStream_t stream) {
        resize(src.n_);
        if (n_) CUDA_CHECK(cudaMemcpyAsync(ptr_, src.ptr_, n_ * sizeof(T), cudaMemcpyDeviceToDevice, stream));
    }
    // Fills every byte with `byte` (tests poison outputs with 0xFF: NaN for floats).
    void fill_bytes(int byte, cudaStream_t stream = nullptr) {
        if (!n_) return;
        CUDA_CHECK(cudaMemsetAsync(ptr_, byte, n_ * sizeof(T), stream));
        CUDA_CHECK(cudaStreamSynchronize(stream));
    }
    T* get() { return ptr_; }
    const T* get() const { return ptr_; }
    size_t size() const { return n_; }

private:
    T* ptr_ = nullptr;
    size_t n_ = 0;
};

// Page-locked host memory (cudaMallocHost) for the few values the engine reads back every epoch
// (batch losses, validation distances): a device-to-host copy into it is one DMA, legal inside a
// captured graph, that the host waits for once, where a copy into pageable memory is staged
// through the driver and waited for on its own.
template <class T>
class PinnedBuffer {
public:
    PinnedBuffer() = default;
    ~PinnedBuffer() { if (ptr_) cudaFreeHost(ptr_); }
    PinnedBuffer(const PinnedBuffer&) = delete;
    PinnedBuffer& operator=(const PinnedBuffer&) = delete;
    // Reallocates (contents lost) when the size changes; the pointer may then change.
    void resize(size_t n) {
        if (n == n_) return;
        if (ptr_) CUDA_CHECK(cudaFreeHost(ptr_));
        ptr_ = nullptr;
        n_ = n;
        if (n) CUDA_CHECK(cudaMallocHost(&ptr_, n * sizeof(T)));
    }
    // Queues the copy of the first n elements of `src` into this buffer (resized to n) on `stream`;
    // read them only after the stream is synchronised.
    void copy_from_async(const DeviceBuffer<T>& src, size_t n, cudaStream_t stream) {
        require_elems(src.size(), n, "PinnedBuffer::copy_from_async: source");
        resize(n);
        if (n) CUDA_CHECK(cudaMemcpyAsync(ptr_, src.get(), n * sizeof(T), cudaMemcpyDeviceToHost, stream));
    }
    std::vector<T> to_vector() const { return std::vector<T>(ptr_, ptr_ + n_); }
    T* get() { return ptr_; }
    const T* ptr() const { return ptr_; }
    size_t size() const { return n_; }

private:
    T* ptr_ = nullptr;
    size_t n_ = 0;
};

}  // namespace siamese::cuda
