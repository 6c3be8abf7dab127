// Choosing the engine by name: above both backends (the CPU reference and the CUDA engine, or
// its stand-in when CUDA is not built), so it lives in the library layer that links them.
#include "siamese/backend.hpp"
#include "siamese/common.hpp"

namespace siamese {

std::unique_ptr<Backend> make_backend(const std::string& device, const TrainHyper& h, int threads) {
    if (device == "cpu") return make_cpu_backend(h, threads);
    if (device == "cuda") return make_cuda_backend(h);
    if (device == "auto") {
        std::string why;
        if (cuda_device_available(&why)) return make_cuda_backend(h);
        return make_cpu_backend(h, threads);
    }
    throw UsageError("--device must be auto, cpu or cuda, not '" + device + "'");
}

}  // namespace siamese
