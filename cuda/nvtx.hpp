// NVTX ranges so an nsys timeline reads like the code (header-only NVTX3).
#pragma once
#include <nvtx3/nvToolsExt.h>

namespace siamese::cuda {

struct NvtxRange {
    explicit NvtxRange(const char* name) { nvtxRangePushA(name); }
    ~NvtxRange() { nvtxRangePop(); }
    NvtxRange(const NvtxRange&) = delete;
    NvtxRange& operator=(const NvtxRange&) = delete;
};

}  // namespace siamese::cuda
