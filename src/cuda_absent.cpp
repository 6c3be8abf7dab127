// Built instead of cuda/ when the CUDA engine is not compiled in (SIAMESE_CUDA=OFF or no nvcc).
#include "siamese/backend.hpp"
#include "siamese/common.hpp"

namespace siamese {

std::string cuda_build_info() { return "CUDA engine: not built (configured with SIAMESE_CUDA=OFF or without nvcc)"; }

bool cuda_device_available(std::string* why) {
    if (why) *why = "this build has no CUDA engine (configured with SIAMESE_CUDA=OFF or without nvcc)";
    return false;
}

std::unique_ptr<Backend> make_cuda_backend(const Recipe&, const EngineOptions&) {
    throw DeviceError("--device cuda: this build has no CUDA engine; rebuild with nvcc available (SIAMESE_CUDA=ON)");
}

}  // namespace siamese
