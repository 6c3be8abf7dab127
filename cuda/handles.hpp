// Owners of the engine's CUDA objects: one object, one handle, released in its destructor, so
// a throw half-way through building the engine (cublasCreate failing after the stream exists,
// an event in a profiled phase) leaks nothing. Move-only.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <utility>

#include "check.hpp"

namespace siamese::cuda {

template <class H, class Destroy>
class Owned {
public:
    Owned() = default;
    explicit Owned(H h) : h_(h) {}
    ~Owned() { reset(); }
    Owned(const Owned&) = delete;
    Owned& operator=(const Owned&) = delete;
    Owned(Owned&& o) noexcept : h_(std::exchange(o.h_, H{})) {}
    Owned& operator=(Owned&& o) noexcept {
        if (this != &o) {
            reset();
            h_ = std::exchange(o.h_, H{});
        }
        return *this;
    }
    H get() const { return h_; }
    explicit operator bool() const { return h_ != H{}; }
    void reset() {
        if (h_ != H{}) Destroy{}(h_);  // destructors must not throw: the status is dropped
        h_ = H{};
    }

private:
    H h_{};
};

struct StreamDestroy { void operator()(cudaStream_t s) const { cudaStreamDestroy(s); } };
struct EventDestroy { void operator()(cudaEvent_t e) const { cudaEventDestroy(e); } };
struct GraphExecDestroy { void operator()(cudaGraphExec_t g) const { cudaGraphExecDestroy(g); } };
struct CublasDestroy { void operator()(cublasHandle_t h) const { cublasDestroy(h); } };

using Stream = Owned<cudaStream_t, StreamDestroy>;
using Event = Owned<cudaEvent_t, EventDestroy>;
using GraphExec = Owned<cudaGraphExec_t, GraphExecDestroy>;
using CublasHandle = Owned<cublasHandle_t, CublasDestroy>;

inline Stream make_stream() {
    cudaStream_t s = nullptr;
    CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    return Stream(s);
}
inline Event make_event() {
    cudaEvent_t e = nullptr;
    CUDA_CHECK(cudaEventCreate(&e));
    return Event(e);
}
// An event for ordering streams only (no timing: cheaper to record and wait on).
inline Event make_sync_event() {
    cudaEvent_t e = nullptr;
    CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
    return Event(e);
}

// A cuBLAS handle bound to `stream` ONCE, then given its workspace: cublasSetStream resets the
// workspace to the default pool (cuBLAS documents this), so the order matters and the stream is
// never set again. FP32 pedantic math: no TF32, the same arithmetic as the reference; with tf32
// (EngineOptions::tf32, off by default) the GEMMs may round their inputs to TF32 on tensor cores.
inline CublasHandle make_cublas(cudaStream_t stream, void* workspace, size_t bytes, bool tf32 = false) {
    cublasHandle_t h = nullptr;
    CUBLAS_CHECK(cublasCreate(&h));
    CublasHandle owned(h);
    CUBLAS_CHECK(cublasSetStream(h, stream));
    CUBLAS_CHECK(cublasSetWorkspace(h, workspace, bytes));
    CUBLAS_CHECK(cublasSetMathMode(h, tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_PEDANTIC_MATH));
    return owned;
}

}  // namespace siamese::cuda
