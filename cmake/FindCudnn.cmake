# cuDNN, optional. Looked for, in order: -DCUDNN_ROOT=DIR (or $CUDNN_ROOT), the CUDA toolkit,
# Debian's multiarch folders, and the Python wheel nvidia-cudnn-cu13/cu12 (what the GPU machine
# has: libcudnn.so.9 and cudnn.h under site-packages/nvidia/cudnn, often with no libcudnn.so).
# Sets SIAMESE_HAVE_CUDNN, CUDNN_INCLUDE_DIR, CUDNN_LIBRARY.
set(SIAMESE_HAVE_CUDNN OFF)
set(_cudnn_roots)
if(CUDNN_ROOT)
  list(APPEND _cudnn_roots ${CUDNN_ROOT})
elseif(DEFINED ENV{CUDNN_ROOT})
  list(APPEND _cudnn_roots $ENV{CUDNN_ROOT})
endif()
list(APPEND _cudnn_roots ${CUDAToolkit_LIBRARY_ROOT} ${CUDAToolkit_TARGET_DIR} /usr/local/cuda /usr)
find_package(Python3 COMPONENTS Interpreter QUIET)
if(Python3_Interpreter_FOUND)
  execute_process(
    COMMAND ${Python3_EXECUTABLE} -c "import nvidia.cudnn as m; print(list(m.__path__)[0])"
    OUTPUT_VARIABLE _cudnn_wheel OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET RESULT_VARIABLE _rc)
  if(_rc EQUAL 0 AND _cudnn_wheel)
    list(APPEND _cudnn_roots ${_cudnn_wheel})
  endif()
endif()
# Accept the versioned name too: the wheel ships only libcudnn.so.9.
set(_saved_suffixes ${CMAKE_FIND_LIBRARY_SUFFIXES})
set(CMAKE_FIND_LIBRARY_SUFFIXES .so .so.9)
find_path(CUDNN_INCLUDE_DIR cudnn.h HINTS ${_cudnn_roots} PATH_SUFFIXES include include/x86_64-linux-gnu NO_DEFAULT_PATH)
find_library(CUDNN_LIBRARY cudnn HINTS ${_cudnn_roots} PATH_SUFFIXES lib lib64 lib/x86_64-linux-gnu NO_DEFAULT_PATH)
set(CMAKE_FIND_LIBRARY_SUFFIXES ${_saved_suffixes})
if(CUDNN_INCLUDE_DIR AND CUDNN_LIBRARY)
  set(SIAMESE_HAVE_CUDNN ON)
  message(STATUS "siamese: cuDNN ${CUDNN_LIBRARY} (headers ${CUDNN_INCLUDE_DIR})")
else()
  message(STATUS "siamese: cuDNN not found (set -DCUDNN_ROOT=DIR): --conv cudnn will be unavailable")
endif()
