# The EMULATE build's rewrite of one cuda/*.cu file into C++ (cmake -DIN=x.cu -DOUT=x.cpp -P this):
# the two CUDA constructs that are not C++ (see tests/cuda_emulation/include/cuda_runtime.h).
#   k<<<grid, block, smem, stream>>>(args)  ->  k ^ ::emu::Config(grid, block, smem, stream) ^ ::emu::args(args)
#   extern __shared__ T name[];             ->  T* name = ::emu::dynamic_smem<T>();
file(READ "${IN}" text)
string(REPLACE "<<<" " ^ ::emu::Config(" text "${text}")
string(REPLACE ">>>(" ") ^ ::emu::args(" text "${text}")
string(REGEX REPLACE "extern __shared__ (__align__\\([0-9]+\\) )?([A-Za-z_][A-Za-z0-9_ ]*[A-Za-z0-9_]) ([A-Za-z_][A-Za-z0-9_]*)\\[\\];"
       "\\2* \\3 = ::emu::dynamic_smem<\\2>();" text "${text}")
if(text MATCHES "<<<|>>>|extern __shared__")
  message(FATAL_ERROR "${IN}: a CUDA construct the emulation's rewrite does not handle")
endif()
file(WRITE "${OUT}.tmp" "#line 1 \"${IN}\"\n${text}")
file(COPY_FILE "${OUT}.tmp" "${OUT}" ONLY_IF_DIFFERENT)
