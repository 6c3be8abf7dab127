// The epoch's pair order built on the device from the training pairs it already holds
// (siamese/shuffle.hpp: the same counter-based permutation as the CPU's epoch_order), and the
// StepState set by a launch instead of an upload: an epoch starts with no copy from the host
// and nothing that waits for the device.
#include "check.hpp"
#include "kernels.hpp"
#include "launch.hpp"
#include "nvtx.hpp"
#include "siamese/shuffle.hpp"

namespace siamese::cuda {
namespace {

__global__ void epoch_order_kernel(int* __restrict__ oa, int* __restrict__ ob, float* __restrict__ oy,
                                   const int* __restrict__ a, const int* __restrict__ b, const float* __restrict__ y,
                                   ShuffleKey key) {
    const uint32_t i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= key.n) return;
    const uint32_t j = shuffle_index(key, i);
    oa[i] = a[j];
    ob[i] = b[j];
    oy[i] = y[j];
}

__global__ void set_step_state_kernel(StepState* st, StepState s) { *st = s; }

}  // namespace

void epoch_order(int* oa, int* ob, float* oy, const int* a, const int* b, const float* y, const ShuffleKey& key,
                 cudaStream_t stream) {
    NvtxRange r("epoch_order");
    if (key.n == 0) return;
    epoch_order_kernel<<<blocks_for(long(key.n)), kThreads, 0, stream>>>(oa, ob, oy, a, b, y, key);
    CUDA_CHECK_LAUNCH();
}

void set_step_state(StepState* st, const StepState& s, cudaStream_t stream) {
    set_step_state_kernel<<<1, 1, 0, stream>>>(st, s);
    CUDA_CHECK_LAUNCH();
}

}  // namespace siamese::cuda
