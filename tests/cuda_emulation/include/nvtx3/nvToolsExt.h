// NVTX ranges in the CPU emulation of CUDA: nothing to profile, so no-ops.
#pragma once
inline int nvtxRangePushA(const char*) { return 0; }
inline int nvtxRangePop() { return 0; }
