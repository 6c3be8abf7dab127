// The "last block finishes" pattern (the threadFenceReduction sample of the CUDA samples): every
// block writes its partial sums, fences them and takes a ticket; the block that takes the last
// ticket adds every block's partials (colsum_phases.hpp: a fixed order, bit-identical run to
// run, with all its threads) and resets the counter for the next launch. It replaces a separate
// reduction launch, and a single-block column_sums kernel, after each kernel that produces
// partial sums.
// Device code only: included by .cu files.
#pragma once
#include <cstdint>

#include "colsum_phases.hpp"

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

// Column sums of m (rows, cols; row stride ld) by the calling block, every thread of it (at
// most kColsumThreads do work), in colsum_phases.hpp's fixed order: store(c, sum) for each
// column. Reads with __ldcg (past this SM's L1: other blocks wrote the partials), one 16-byte
// load a row for each four columns where m and ld allow it. Every thread of the block must call
// it. tile: kColsumTileFloats floats of shared memory (a kernel's own, once its work is done:
// a kernel at the default 48 KB has no room for another static 4 KB).
template <class Store>
__device__ void block_column_sums(float* tile, const float* m, int rows, int cols, int ld, Store store) {
    const ColsumPlan p = colsum_plan(rows, cols, ld, int(blockDim.x));
    // Past this SM's L1: other blocks wrote the partials. Vec: one 16-byte load for four columns.
    struct Load {
        bool vec;
        __device__ void quad(const float* q, float* v) const {
            if (vec) {
                const float4 t = __ldcg(reinterpret_cast<const float4*>(q));
                v[0] = t.x, v[1] = t.y, v[2] = t.z, v[3] = t.w;
            } else {
                for (int j = 0; j < 4; ++j) v[j] = __ldcg(q + j);
            }
        }
        __device__ float one(const float* q) const { return __ldcg(q); }
    };
    const Load load{ld % 4 == 0 && reinterpret_cast<uintptr_t>(m) % 16 == 0};
    for (int round = 0; round < p.rounds; ++round) {
        colsum_segments(p, round, m, tile, int(threadIdx.x), int(blockDim.x), load);
        __syncthreads();
        colsum_combine(p, round, tile, store, int(threadIdx.x), int(blockDim.x));
        __syncthreads();  // the tile is reused by the next round
    }
}

// out[j] = the column sums of partial (chunks, cols): the sum column_sums makes (the same bits).
__device__ inline void sum_partials(float* tile, float* out, const float* partial, int chunks, int cols) {
    block_column_sums(tile, partial, chunks, cols, cols, [out](int c, float v) { out[c] = v; });
}

}  // namespace siamese::cuda
