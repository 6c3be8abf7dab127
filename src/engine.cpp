// Choosing the engine by name: above both backends (the CPU reference and the CUDA engine, or
// its stand-in when CUDA is not built), so it lives in the library layer that links them.
#include "siamese/backend.hpp"
#include "siamese/common.hpp"

namespace siamese {

std::unique_ptr<Backend> make_backend(const Recipe& r, const EngineOptions& e) {
    if (e.device == "cpu") return make_cpu_backend(r, e);
    if (e.device == "cuda") return make_cuda_backend(r, e);
    if (e.device == "auto") {
        std::string why;
        if (cuda_device_available(&why)) return make_cuda_backend(r, e);
        return make_cpu_backend(r, e);
    }
    throw UsageError("--device must be auto, cpu or cuda, not '" + e.device + "'");
}

}  // namespace siamese
