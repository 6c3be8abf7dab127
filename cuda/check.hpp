// Error checks for every CUDA, cuBLAS and cuDNN call, in one place: file, line, the failing
// expression and a hint; a failure throws DeviceError (exit status 4). Plain C++ (no device
// code) so tests compiled by g++ can include it.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <string>

#include "siamese/common.hpp"

namespace siamese::cuda {

[[noreturn]] void fail(const char* what, const char* expr, const char* file, int line, const char* hint);
const char* cublas_status_name(cublasStatus_t s);

}  // namespace siamese::cuda

#define CUDA_CHECK(expr)                                                                                  \
    do {                                                                                                  \
        const cudaError_t err_ = (expr);                                                                  \
        if (err_ != cudaSuccess)                                                                          \
            ::siamese::cuda::fail(cudaGetErrorString(err_), #expr, __FILE__, __LINE__,                     \
                                  "check the device is present and has memory (nvidia-smi)");             \
    } while (0)

// After a kernel launch: launch-configuration errors now; asynchronous faults at the next sync.
#define CUDA_CHECK_LAUNCH() CUDA_CHECK(cudaGetLastError())

#define CUBLAS_CHECK(expr)                                                                                \
    do {                                                                                                  \
        const cublasStatus_t st_ = (expr);                                                                \
        if (st_ != CUBLAS_STATUS_SUCCESS)                                                                 \
            ::siamese::cuda::fail(::siamese::cuda::cublas_status_name(st_), #expr, __FILE__, __LINE__,     \
                                  "cuBLAS failed: check matrix sizes and that the handle's stream is valid"); \
    } while (0)

#if SIAMESE_HAVE_CUDNN
#include <cudnn.h>

#define CUDNN_CHECK(expr)                                                                                     \
    do {                                                                                                      \
        const cudnnStatus_t st_ = (expr);                                                                     \
        if (st_ != CUDNN_STATUS_SUCCESS)                                                                      \
            ::siamese::cuda::fail(cudnnGetErrorString(st_), #expr, __FILE__, __LINE__,                         \
                                  "cuDNN failed: check the cuDNN library matches the toolkit and the shapes"); \
    } while (0)
#endif
