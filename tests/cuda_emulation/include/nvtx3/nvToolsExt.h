// NVTX ranges in the EMULATE build: nothing to profile, so no-ops.
#pragma once
inline int nvtxRangePushA(const char*) { return 0; }
inline int nvtxRangePop() { return 0; }
