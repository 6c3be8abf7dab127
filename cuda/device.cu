// Device discovery and the error reporter behind the CHECK macros.
#include <cstdio>
#include <sstream>

#include "check.hpp"
#include "siamese/backend.hpp"

namespace siamese::cuda {

void fail(const char* what, const char* expr, const char* file, int line, const char* hint) {
    std::ostringstream ss;
    ss << "CUDA error: " << what << " in " << expr << " at " << file << ":" << line << " (" << hint << ")";
    throw DeviceError(ss.str());
}

const char* cublas_status_name(cublasStatus_t s) {
    switch (s) {
        case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
        case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
        case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
        case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
        case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
        case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
        case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
        default: return "cuBLAS error";
    }
}

}  // namespace siamese::cuda

namespace siamese {

std::string cuda_build_info() {
#ifdef SIAMESE_CUDA_EMULATION
    return "CUDA engine: emulated on the CPU (the test build of tests/cuda_emulation: the kernels' code runs on the "
           "host, slowly; no GPU is used)";
#else
    std::string s = "CUDA engine: built with CUDA " + std::to_string(CUDART_VERSION / 1000) + "." +
                    std::to_string(CUDART_VERSION % 1000 / 10);
#if SIAMESE_HAVE_CUDNN
    s += ", cuDNN " + std::to_string(CUDNN_MAJOR) + "." + std::to_string(CUDNN_MINOR) + "." + std::to_string(CUDNN_PATCHLEVEL);
#else
    s += ", without cuDNN (--conv cudnn unavailable)";
#endif
    return s;
#endif
}

bool cuda_device_available(std::string* why) {
    int n = 0;
    // Without a driver this fails ("CUDA driver version is insufficient") rather than giving 0:
    // any failure means no device.
    const cudaError_t err = cudaGetDeviceCount(&n);
    if (err != cudaSuccess) {
        cudaGetLastError();  // clear the sticky error
        if (why) *why = std::string("no CUDA device (") + cudaGetErrorString(err) + ")";
        return false;
    }
    if (n == 0) {
        if (why) *why = "no CUDA device (cudaGetDeviceCount reports 0)";
        return false;
    }
    return true;
}

}  // namespace siamese
