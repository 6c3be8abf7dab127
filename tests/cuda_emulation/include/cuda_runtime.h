// The CUDA runtime as the engine's code uses it, emulated on the CPU (the siamese_cuda_emulated
// library, -DSIAMESE_CUDA_EMULATION=ON, the default). cuda/*.cu compile as C++ against this
// header, after two textual rewrites (cmake/cuda_emulate.cmake): `k<<<cfg>>>(args)` becomes `k ^ emu::Config(cfg) ^
// emu::args(args)`, and `extern __shared__ T name[];` a pointer to the block's dynamic shared
// memory. Each block's threads then run the kernel's own code as fibers on one host thread,
// switching at __syncthreads and at warp exchanges (runtime.cpp).
//
// What it checks that the CPU suite otherwise cannot: the kernels' own code (not a copy of it)
// against the CPU reference; every barrier reached by every thread of a block (a deadlock or a
// barrier some threads skip is an error, not a hang); launch configurations and dynamic shared
// memory against an H100/H200's limits, including the opt-in above 48 KB; dynamic shared memory
// poisoned with NaN at each block's start, new allocations too, and a red zone of NaN after each
// (a write there is reported after the launch); stream capture's rules (no synchronous or allocating
// call inside a non-relaxed capture, every forked stream joined back, pageable host memory never
// copied inside a graph); graphs replayed as captured. Threads (and blocks) run in index order,
// or in reverse order with SIAMESE_EMU_REVERSE=1: a read of shared memory that another thread of
// the same phase writes then sees the other value, so a missing barrier changes the results.
//
// What it cannot check: timing, the memory model between blocks running at once, warps running
// out of lockstep, register or static shared memory limits, or anything about a real GPU's speed.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <tuple>
#include <type_traits>
#include <utility>

#define SIAMESE_CUDA_EMULATION 1
#define CUDART_VERSION 13000  // the toolkit the emulated API follows (its names and flags)

// Device-code qualifiers: plain C++ on the host.
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
// A kernel's static shared memory: one copy for the whole block (fibers share the host thread),
// kept from block to block (a real GPU leaves it undefined: not poisoned here).
#define __shared__ static

// ---- vector types -------------------------------------------------------------------------
struct uint3 {
    unsigned x, y, z;
};
struct dim3 {
    unsigned x = 1, y = 1, z = 1;
    constexpr dim3(unsigned vx = 1, unsigned vy = 1, unsigned vz = 1) : x(vx), y(vy), z(vz) {}
    constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
};
struct alignas(16) float4 {
    float x, y, z, w;
};
struct alignas(8) float2 {
    float x, y;
};
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
inline float2 make_float2(float x, float y) { return {x, y}; }

// ---- runtime types ------------------------------------------------------------------------
enum cudaError_t {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorInvalidResourceHandle = 400,
    cudaErrorNotReady = 600,
    cudaErrorIllegalState = 401,
    cudaErrorNoDevice = 100,
    cudaErrorLaunchFailure = 719,
    cudaErrorStreamCaptureUnsupported = 900,
    cudaErrorStreamCaptureInvalidated = 901,
    cudaErrorStreamCaptureUnjoined = 904,
    cudaErrorStreamCaptureImplicit = 906,
};
enum cudaMemcpyKind {
    cudaMemcpyHostToHost = 0,
    cudaMemcpyHostToDevice = 1,
    cudaMemcpyDeviceToHost = 2,
    cudaMemcpyDeviceToDevice = 3,
    cudaMemcpyDefault = 4
};
enum cudaStreamCaptureStatus { cudaStreamCaptureStatusNone = 0, cudaStreamCaptureStatusActive = 1, cudaStreamCaptureStatusInvalidated = 2 };
enum cudaStreamCaptureMode { cudaStreamCaptureModeGlobal = 0, cudaStreamCaptureModeThreadLocal = 1, cudaStreamCaptureModeRelaxed = 2 };
enum cudaGraphNodeType {
    cudaGraphNodeTypeKernel = 0,
    cudaGraphNodeTypeMemcpy = 1,
    cudaGraphNodeTypeMemset = 2,
    cudaGraphNodeTypeHost = 3,
    cudaGraphNodeTypeGraph = 4,
    cudaGraphNodeTypeEmpty = 5,
    cudaGraphNodeTypeWaitEvent = 6,
    cudaGraphNodeTypeEventRecord = 7,
};
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };
enum cudaDeviceAttr { cudaDevAttrMaxSharedMemoryPerBlockOptin = 97 };
struct cudaFuncAttributes {
    size_t sharedSizeBytes = 0, constSizeBytes = 0, localSizeBytes = 0;
    int maxThreadsPerBlock = 1024, numRegs = 0, ptxVersion = 90, binaryVersion = 90;
    int maxDynamicSharedSizeBytes = 48 * 1024;
};
constexpr unsigned cudaStreamDefault = 0, cudaStreamNonBlocking = 1;
constexpr unsigned cudaEventDefault = 0, cudaEventDisableTiming = 2;
constexpr unsigned cudaEventRecordDefault = 0, cudaEventRecordExternal = 1;

struct CUstream_st;
struct CUevent_st;
struct CUgraph_st;
struct CUgraphExec_st;
struct CUgraphNode_st;
typedef CUstream_st* cudaStream_t;
typedef CUevent_st* cudaEvent_t;
typedef CUgraph_st* cudaGraph_t;
typedef CUgraphExec_st* cudaGraphExec_t;
typedef CUgraphNode_st* cudaGraphNode_t;

// ---- runtime API (runtime.cpp) -------------------------------------------------------------
const char* cudaGetErrorString(cudaError_t e);
cudaError_t cudaGetLastError();
cudaError_t cudaPeekAtLastError();
cudaError_t cudaGetDeviceCount(int* n);
cudaError_t cudaGetDevice(int* d);
cudaError_t cudaSetDevice(int d);
cudaError_t cudaDeviceGetAttribute(int* v, cudaDeviceAttr a, int device);
cudaError_t cudaDeviceSynchronize();
cudaError_t cudaMalloc(void** p, size_t bytes);
cudaError_t cudaFree(void* p);
cudaError_t cudaMallocHost(void** p, size_t bytes);
cudaError_t cudaFreeHost(void* p);
cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t s = nullptr);
cudaError_t cudaMemset(void* p, int value, size_t bytes);
cudaError_t cudaMemsetAsync(void* p, int value, size_t bytes, cudaStream_t s = nullptr);
cudaError_t cudaStreamCreate(cudaStream_t* s);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t s);
cudaError_t cudaStreamSynchronize(cudaStream_t s);
cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned flags = 0);
cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode mode);
cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t* g);
cudaError_t cudaStreamIsCapturing(cudaStream_t s, cudaStreamCaptureStatus* status);
cudaError_t cudaEventCreate(cudaEvent_t* e);
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned flags);
cudaError_t cudaEventDestroy(cudaEvent_t e);
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s = nullptr);
cudaError_t cudaEventRecordWithFlags(cudaEvent_t e, cudaStream_t s = nullptr, unsigned flags = 0);
cudaError_t cudaEventSynchronize(cudaEvent_t e);
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t a, cudaEvent_t b);
cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t g, unsigned long long flags = 0);
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t s);
cudaError_t cudaGraphDestroy(cudaGraph_t g);
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec);
cudaError_t cudaGraphGetNodes(cudaGraph_t g, cudaGraphNode_t* nodes, size_t* count);
cudaError_t cudaGraphNodeGetType(cudaGraphNode_t node, cudaGraphNodeType* type);
cudaError_t cudaFuncSetAttribute(const void* func, cudaFuncAttribute attr, int value);
cudaError_t cudaFuncGetAttributes(cudaFuncAttributes* attr, const void* func);
template <class T>
cudaError_t cudaMalloc(T** p, size_t bytes) {
    return cudaMalloc(reinterpret_cast<void**>(p), bytes);
}
template <class T>
cudaError_t cudaMallocHost(T** p, size_t bytes) {
    return cudaMallocHost(reinterpret_cast<void**>(p), bytes);
}
template <class T>
cudaError_t cudaFuncSetAttribute(T* func, cudaFuncAttribute attr, int value) {
    return cudaFuncSetAttribute(reinterpret_cast<const void*>(func), attr, value);
}
template <class T>
cudaError_t cudaFuncGetAttributes(cudaFuncAttributes* attr, T* func) {
    return cudaFuncGetAttributes(attr, reinterpret_cast<const void*>(func));
}

// ---- the emulator ---------------------------------------------------------------------------
namespace emu {

// The thread running device code now (a fiber of the block being run) and its block.
struct ThreadState {
    uint3 idx;
    unsigned linear;     // threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z)
    unsigned warp_sync;  // warp exchanges this thread has made (which exchange slot is next)
};
struct BlockState {
    uint3 idx;
    dim3 dim, grid;
    unsigned char* dynamic_smem;
};
extern ThreadState* current_thread;
extern BlockState current_block;

void syncthreads();
void syncwarp();
// Lane `from`'s 8-byte slot of this warp's exchange, after every lane of the warp has written its own.
uint64_t warp_exchange(uint64_t mine, int (*partner)(int lane, int arg, int width), int arg, int width);

template <class T>
T* dynamic_smem() {
    return reinterpret_cast<T*>(current_block.dynamic_smem);
}

// One launch: its configuration (with the launch site, for messages), then its arguments.
struct Config {
    dim3 grid, block;
    size_t smem;
    cudaStream_t stream;
    const char* file;
    int line;
    Config(dim3 g, dim3 b, size_t s = 0, cudaStream_t st = nullptr, const char* f = __builtin_FILE(), int l = __builtin_LINE())
        : grid(g), block(b), smem(s), stream(st), file(f), line(l) {}
};
template <class... A>
struct ArgPack {
    std::tuple<A...> values;
};
template <class... A>
ArgPack<std::decay_t<A>...> args(A&&... a) {
    return {std::tuple<std::decay_t<A>...>(std::forward<A>(a)...)};
}
template <class... P>
struct Launcher {
    void (*kernel)(P...);
    Config config;
};
template <class... P>
Launcher<P...> operator^(void (*kernel)(P...), const Config& c) {
    return {kernel, c};
}

// Runs (or, inside a capture, records) `body` for every thread of every block. False: a bad
// configuration (the error is then cudaGetLastError's, as for a real launch).
struct Body {
    virtual ~Body() = default;
    virtual void run() = 0;  // one thread's call of the kernel
};
bool launch(const void* kernel, const Config& c, Body* body);  // takes ownership of body

template <class... P, class... A>
void operator^(const Launcher<P...>& l, ArgPack<A...> a) {
    struct Call final : Body {
        void (*kernel)(P...);
        std::tuple<std::decay_t<P>...> params;
        Call(void (*k)(P...), std::tuple<A...>&& v)
            : kernel(k), params(std::make_from_tuple<std::tuple<std::decay_t<P>...>>(std::move(v))) {}
        void run() override { std::apply(kernel, params); }
    };
    static_assert(sizeof...(P) == sizeof...(A), "a kernel launched with the wrong number of arguments");
    launch(reinterpret_cast<const void*>(l.kernel), l.config, new Call(l.kernel, std::move(a.values)));
}

// Thrust's sort runs on the host, now: refused inside a capture (a real one would be recorded).
void require_not_capturing(cudaStream_t s, const char* what);

}  // namespace emu

// ---- device built-ins -------------------------------------------------------------------------
#define threadIdx (::emu::current_thread->idx)
#define blockIdx (::emu::current_block.idx)
#define blockDim (::emu::current_block.dim)
#define gridDim (::emu::current_block.grid)
constexpr int warpSize = 32;

inline void __syncthreads() { ::emu::syncthreads(); }
inline void __syncwarp(unsigned = 0xffffffffu) { ::emu::syncwarp(); }
inline void __threadfence() {}
inline void __threadfence_block() {}

namespace emu {
// Lane `partner(lane, arg, width)`'s value of v, once every lane of the warp has given its own.
template <class T>
T shuffle(T v, int (*partner)(int, int, int), int arg, int width) {
    static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value, "a warp exchange of at most 8 bytes");
    uint64_t u = 0;
    std::memcpy(&u, &v, sizeof(T));
    u = warp_exchange(u, partner, arg, width);
    T r;
    std::memcpy(&r, &u, sizeof(T));
    return r;
}
}  // namespace emu

template <class T>
T __shfl_xor_sync(unsigned, T v, int lane_mask, int width = 32) {
    return ::emu::shuffle(v, [](int lane, int m, int w) { return (lane & ~(w - 1)) | ((lane ^ m) & (w - 1)); }, lane_mask, width);
}
template <class T>
T __shfl_sync(unsigned, T v, int src, int width = 32) {
    return ::emu::shuffle(v, [](int lane, int s, int w) { return (lane & ~(w - 1)) | (s & (w - 1)); }, src, width);
}
template <class T>
T __shfl_down_sync(unsigned, T v, unsigned delta, int width = 32) {
    return ::emu::shuffle(v, [](int lane, int d, int w) { return (lane % w) + d < w ? lane + d : lane; }, int(delta), width);
}

// One host thread runs every block: atomics are plain read-modify-writes.
template <class T>
T atomicAdd(T* p, T v) {
    const T old = *p;
    *p = old + v;
    return old;
}
template <class T>
T atomicExch(T* p, T v) {
    const T old = *p;
    *p = v;
    return old;
}
template <class T>
T __ldg(const T* p) {
    return *p;
}
template <class T>
T __ldcg(const T* p) {
    return *p;
}
template <class T>
T __ldcs(const T* p) {
    return *p;
}
template <class T>
void __stcg(T* p, T v) {
    *p = v;
}

inline unsigned __float_as_uint(float f) {
    unsigned u;
    std::memcpy(&u, &f, 4);
    return u;
}
inline float __uint_as_float(unsigned u) {
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }

#include <cmath>
using std::fmaf;
using std::fmaxf;
using std::fminf;
