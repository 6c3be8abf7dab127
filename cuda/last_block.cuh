// The "last block finishes" pattern (the threadFenceReduction sample of the CUDA samples): every
// block writes its partial sums, fences them and takes a ticket; the block that takes the last
// ticket adds every block's partials in block order (a fixed order: bit-identical run to run)
// and resets the counter for the next launch. It replaces a separate reduction launch, and a
// single-block column_sums kernel, after each kernel that produces partial sums.
// Device code only: included by .cu files.
#pragma once

namespace siamese::cuda {

// Call from every thread of every block (1-D blocks) once the block's partials are written.
// True in the last block to finish, after a barrier: its threads may then read every block's
// partials (with __ldcg: not through this SM's L1, which may hold none of them anyway).
// `counter` is zero before the launch and zero again after it.
__device__ inline bool last_block_done(unsigned* counter, unsigned blocks) {
    __shared__ bool last;
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) {
        last = atomicAdd(counter, 1u) == blocks - 1;
        if (last) *counter = 0u;  // every other block has taken its ticket already
    }
    __syncthreads();
    return last;
}

// out[j] = sum over chunks c = 0, 1, ... in order of partial[c * cols + j], from 0.0f: the sum
// column_sums_kernel makes (the same bits), by the threads of one block.
__device__ inline void sum_partials(float* out, const float* partial, int chunks, int cols) {
    for (int j = threadIdx.x; j < cols; j += blockDim.x) {
        float acc = 0.0f;
        for (int c = 0; c < chunks; ++c) acc += __ldcg(partial + size_t(c) * cols + j);
        out[j] = acc;
    }
}

}  // namespace siamese::cuda
