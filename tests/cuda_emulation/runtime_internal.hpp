// What the emulated libraries (cuBLAS in runtime.cpp, cuDNN in cudnn.cpp) use of the emulated
// runtime: device memory's bounds, and queueing work on a stream.
#pragma once
#include <cstddef>
#include <functional>

#include "cuda_runtime.h"

namespace emu {

// [p, p + bytes) lies inside one cudaMalloc'd allocation.
bool is_device(const void* p, size_t bytes);
// Runs op now, or records it as a graph node when the stream takes part in a capture.
cudaError_t submit(cudaStream_t s, cudaGraphNodeType type, std::function<void()> op);

}  // namespace emu
