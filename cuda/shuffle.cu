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

// Position i of the order: the training pair the key's permutation puts there.
__device__ void place_pair(const ShuffleKey& key, uint32_t i, int* oa, int* ob, float* oy, const int* a, const int* b,
                           const float* y) {
    const uint32_t j = shuffle_index(key, i);
    oa[i] = a[j];
    ob[i] = b[j];
    oy[i] = y[j];
}

__global__ void epoch_order_kernel(int* __restrict__ oa, int* __restrict__ ob, float* __restrict__ oy,
                                   const int* __restrict__ a, const int* __restrict__ b, const float* __restrict__ y,
                                   ShuffleKey key) {
    const uint32_t i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < key.n) place_pair(key, i, oa, ob, oy, a, b, y);
}

// The epoch graph's first node: the epoch follows from the step the state holds (every epoch of
// the pair sampler is `batches` steps), the order is built for it, and the position reset. Thread
// 0 writes first and batch, which no thread of this kernel reads.
__global__ void epoch_start_kernel(int* __restrict__ oa, int* __restrict__ ob, float* __restrict__ oy,
                                   const int* __restrict__ a, const int* __restrict__ b, const float* __restrict__ y,
                                   uint32_t n, uint64_t seed, int batches, StepState* st) {
    const uint32_t i = blockIdx.x * blockDim.x + threadIdx.x;
    const ShuffleKey key = shuffle_key(seed, epoch_at_step(st->step, batches), n);
    if (i == 0) {
        st->first = 0;
        st->batch = 0;
    }
    if (i < n) place_pair(key, i, oa, ob, oy, a, b, y);
}

__global__ void set_step_state_kernel(StepState* st, StepState s) { *st = s; }

__global__ void epoch_reset_kernel(StepState* st) {
    st->first = 0;
    st->batch = 0;
}

}  // namespace

void epoch_order(int* oa, int* ob, float* oy, const int* a, const int* b, const float* y, const ShuffleKey& key,
                 cudaStream_t stream) {
    NvtxRange r("epoch_order");
    if (key.n == 0) return;
    epoch_order_kernel<<<blocks_for(long(key.n)), kThreads, 0, stream>>>(oa, ob, oy, a, b, y, key);
    CUDA_CHECK_LAUNCH();
}

void epoch_start(int* oa, int* ob, float* oy, const int* a, const int* b, const float* y, int n, uint64_t seed,
                 int batches, StepState* st, cudaStream_t stream) {
    NvtxRange r("epoch_start");
    if (n < 1 || batches < 1) throw std::logic_error("epoch_start: an empty epoch");
    epoch_start_kernel<<<blocks_for(long(n)), kThreads, 0, stream>>>(oa, ob, oy, a, b, y, uint32_t(n), seed, batches, st);
    CUDA_CHECK_LAUNCH();
}

void epoch_reset(StepState* st, cudaStream_t stream) {
    epoch_reset_kernel<<<1, 1, 0, stream>>>(st);
    CUDA_CHECK_LAUNCH();
}

void set_step_state(StepState* st, const StepState& s, cudaStream_t stream) {
    set_step_state_kernel<<<1, 1, 0, stream>>>(st, s);
    CUDA_CHECK_LAUNCH();
}

}  // namespace siamese::cuda
