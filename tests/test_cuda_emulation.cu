// The CPU emulation of CUDA (tests/cuda_emulation) checked on its own: what the emulated [cuda]
// tests rely on it to do. Small kernels written here, compiled as the engine's are (the same
// rewrite of launches and dynamic shared memory, cmake/cuda_emulate.cmake), run on the emulator.
#include <catch2/catch.hpp>
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <cmath>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

// Each thread writes its slot, waits, then reads its neighbour's: right only with the barrier.
__global__ void neighbour_kernel(float* out, bool barrier) {
    extern __shared__ float slots[];
    const unsigned t = threadIdx.x;
    slots[t] = float(t + 1);
    if (barrier) __syncthreads();
    out[blockIdx.x * blockDim.x + t] = slots[(t + 1) % blockDim.x];
}

// A warp's sum by xor shuffles: every lane ends with the sum of the 32.
__global__ void warp_sum_kernel(float* out) {
    float v = float(threadIdx.x % 32 + 1);
    for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
    out[threadIdx.x] = v;
}

// Only the first warp works (the others return at once, whole warps: legal), by shuffles.
__global__ void first_warp_sum_kernel(float* out) {
    if (threadIdx.x >= 32) return;
    float v = float(threadIdx.x + 1);
    for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
    out[threadIdx.x] = v;
}

// Half the threads return before a barrier the others wait at.
__global__ void divergent_barrier_kernel(float* out) {
    if (threadIdx.x % 2) return;
    __syncthreads();
    out[threadIdx.x] = 1.0f;
}

// Reads dynamic shared memory nobody wrote: the emulator poisons it (NaN) at each block's start.
__global__ void unwritten_smem_kernel(float* out) {
    extern __shared__ float sm[];
    out[threadIdx.x] = sm[threadIdx.x];
}

// Blocks and threads: each thread writes its own global index once.
__global__ void index_kernel(int* out) {
    const unsigned b = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
    const unsigned t = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
    out[b * blockDim.x * blockDim.y * blockDim.z + t] = int(b * 1000 + t);
}

// Which thread of which block ran when (one host thread runs them all, so a plain counter).
__global__ void order_kernel(int* order, int* counter) { order[blockIdx.x * blockDim.x + threadIdx.x] = (*counter)++; }

__global__ void copy_one_kernel(const float* in, int i, float* out) { *out = in[i]; }

__global__ void add_one_kernel(float* p, int n) {
    const int i = int(blockIdx.x * blockDim.x + threadIdx.x);
    if (i < n) p[i] += 1.0f;
}

template <class T>
std::vector<T> download(const T* d, size_t n) {
    std::vector<T> v(n);
    REQUIRE(cudaMemcpy(v.data(), d, n * sizeof(T), cudaMemcpyDeviceToHost) == cudaSuccess);
    return v;
}

float* device_floats(size_t n) {
    void* p = nullptr;
    REQUIRE(cudaMalloc(&p, n * sizeof(float)) == cudaSuccess);
    return static_cast<float*>(p);
}

}  // namespace

TEST_CASE("the emulator runs every thread of every block, with its own indices", "[cuda-emulation]") {
    int* d = nullptr;
    REQUIRE(cudaMalloc(&d, 2 * 3 * 4 * 24 * sizeof(int)) == cudaSuccess);
    index_kernel<<<dim3(2, 3, 4), dim3(2, 3, 4)>>>(d);
    REQUIRE(cudaGetLastError() == cudaSuccess);
    const auto v = download(d, 2 * 3 * 4 * 24);
    for (size_t k = 0; k < v.size(); ++k) CHECK(v[k] == int(k / 24 * 1000 + k % 24));
    cudaFree(d);
}

TEST_CASE("the emulator runs threads and blocks in index order, or in reverse with SIAMESE_EMU_REVERSE=1", "[cuda-emulation]") {
    int *order = nullptr, *counter = nullptr;
    REQUIRE(cudaMalloc(&order, 8 * sizeof(int)) == cudaSuccess);
    REQUIRE(cudaMalloc(&counter, sizeof(int)) == cudaSuccess);
    REQUIRE(cudaMemset(counter, 0, sizeof(int)) == cudaSuccess);
    order_kernel<<<2, 4>>>(order, counter);
    const char* e = std::getenv("SIAMESE_EMU_REVERSE");
    const bool reverse = e && *e && *e != '0';
    const auto got = download(order, 8);
    for (int k = 0; k < 8; ++k) CHECK(got[k] == (reverse ? 7 - k : k));
    cudaFree(order);
    cudaFree(counter);
}

TEST_CASE("the emulator's barriers order shared memory, and a missing one shows", "[cuda-emulation]") {
    const int threads = 64;
    float* d = device_floats(2 * threads);
    std::vector<float> want(2 * threads);
    for (int k = 0; k < 2 * threads; ++k) want[k] = float((k % threads + 1) % threads + 1);
    neighbour_kernel<<<2, threads, threads * sizeof(float)>>>(d, true);
    REQUIRE(cudaGetLastError() == cudaSuccess);
    CHECK(download(d, 2 * threads) == want);
    // Without the barrier a thread reads its neighbour's slot before the neighbour has run (in
    // index order the last thread's neighbour is thread 0, which ran first: only that one is right).
    neighbour_kernel<<<2, threads, threads * sizeof(float)>>>(d, false);
    const auto got = download(d, 2 * threads);
    int right = 0;
    for (int k = 0; k < 2 * threads; ++k) right += got[k] == want[k];
    CHECK(right < 2 * threads);
    cudaFree(d);
}

TEST_CASE("the emulator's warp shuffles exchange lanes' values", "[cuda-emulation]") {
    float* d = device_floats(96);
    warp_sum_kernel<<<1, 96>>>(d);
    for (float v : download(d, 96)) CHECK(v == 528.0f);  // 1 + ... + 32
    first_warp_sum_kernel<<<1, 96>>>(d);  // whole warps returning early is no divergence
    for (float v : download(d, 32)) CHECK(v == 528.0f);
    cudaFree(d);
}

TEST_CASE("the emulator reports a barrier in divergent code instead of hanging", "[cuda-emulation]") {
    float* d = device_floats(64);
    try {
        divergent_barrier_kernel<<<1, 64>>>(d);
        FAIL("no error");
    } catch (const std::runtime_error& e) {
        CHECK(std::string(e.what()).find("divergent") != std::string::npos);
    }
    cudaFree(d);
}

TEST_CASE("the emulator poisons dynamic shared memory and new allocations", "[cuda-emulation]") {
    float* d = device_floats(32);
    for (float v : download(d, 32)) CHECK(std::isnan(v));  // cudaMalloc: never zeroed
    unwritten_smem_kernel<<<1, 32, 32 * sizeof(float)>>>(d);
    for (float v : download(d, 32)) CHECK(std::isnan(v));
    cudaFree(d);
}

TEST_CASE("the emulator finds a kernel writing past the end of its buffer, and gives NaN to reads there", "[cuda-emulation]") {
    float* d = device_floats(30);  // 30 floats; the kernel writes 32 (4 bytes each)
    try {
        index_kernel<<<1, 32>>>(reinterpret_cast<int*>(d));
        FAIL("no error");
    } catch (const std::runtime_error& e) {
        CHECK(std::string(e.what()).find("wrote up to 8 bytes past the end of a 120-byte allocation") != std::string::npos);
    }
    cudaFree(d);
    // A read past the end finds NaN (the red zone's value), which poisons what it reaches.
    float *in = device_floats(3), *out = device_floats(1);
    REQUIRE(cudaMemset(in, 0, 3 * sizeof(float)) == cudaSuccess);
    copy_one_kernel<<<1, 1>>>(in, 2, out);
    CHECK(download(out, 1)[0] == 0.0f);
    for (int past : {3, 4, 60}) {
        copy_one_kernel<<<1, 1>>>(in, past, out);
        CHECK(std::isnan(download(out, 1)[0]));
    }
    cudaFree(in);
    cudaFree(out);
}

TEST_CASE("the emulator refuses launches a real GPU refuses", "[cuda-emulation]") {
    float* d = device_floats(1024);
    cudaGetLastError();
    add_one_kernel<<<1, 2048>>>(d, 1);  // over 1,024 threads a block
    CHECK(cudaGetLastError() == cudaErrorInvalidConfiguration);
    add_one_kernel<<<0, 32>>>(d, 1);  // an empty grid
    CHECK(cudaGetLastError() == cudaErrorInvalidConfiguration);
    add_one_kernel<<<dim3(1, 70000), 32>>>(d, 1);  // grid y over 65,535
    CHECK(cudaGetLastError() == cudaErrorInvalidConfiguration);
    // Dynamic shared memory over 48 KB only after the kernel's limit is raised, and never past
    // the device's 227 KB.
    unwritten_smem_kernel<<<1, 32, 64 * 1024>>>(d);
    CHECK(cudaGetLastError() == cudaErrorInvalidValue);
    CHECK(cudaFuncSetAttribute(unwritten_smem_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 64 * 1024) == cudaSuccess);
    unwritten_smem_kernel<<<1, 32, 64 * 1024>>>(d);
    CHECK(cudaGetLastError() == cudaSuccess);
    CHECK(cudaFuncSetAttribute(unwritten_smem_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 300 * 1024) ==
          cudaErrorInvalidValue);
    cudaGetLastError();
    cudaFree(d);
}

TEST_CASE("the emulator's captures record, replay, and enforce capture's rules", "[cuda-emulation]") {
    cudaStream_t s = nullptr, side = nullptr;
    REQUIRE(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking) == cudaSuccess);
    REQUIRE(cudaStreamCreateWithFlags(&side, cudaStreamNonBlocking) == cudaSuccess);
    cudaEvent_t fork = nullptr, join = nullptr;
    REQUIRE(cudaEventCreateWithFlags(&fork, cudaEventDisableTiming) == cudaSuccess);
    REQUIRE(cudaEventCreateWithFlags(&join, cudaEventDisableTiming) == cudaSuccess);
    float* d = device_floats(4);
    REQUIRE(cudaMemsetAsync(d, 0, 4 * sizeof(float), s) == cudaSuccess);

    SECTION("kernels are recorded, not run, and run at each replay; a forked stream joined back") {
        REQUIRE(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal) == cudaSuccess);
        add_one_kernel<<<1, 32, 0, s>>>(d, 4);
        REQUIRE(cudaEventRecord(fork, s) == cudaSuccess);
        REQUIRE(cudaStreamWaitEvent(side, fork, 0) == cudaSuccess);
        add_one_kernel<<<1, 32, 0, side>>>(d, 2);
        REQUIRE(cudaEventRecord(join, side) == cudaSuccess);
        REQUIRE(cudaStreamWaitEvent(s, join, 0) == cudaSuccess);
        cudaGraph_t g = nullptr;
        REQUIRE(cudaStreamEndCapture(s, &g) == cudaSuccess);
        CHECK(download(d, 4) == std::vector<float>{0, 0, 0, 0});
        size_t count = 0;
        REQUIRE(cudaGraphGetNodes(g, nullptr, &count) == cudaSuccess);
        CHECK(count == 2);
        cudaGraphExec_t exec = nullptr;
        REQUIRE(cudaGraphInstantiate(&exec, g, 0) == cudaSuccess);
        cudaGraphDestroy(g);
        REQUIRE(cudaGraphLaunch(exec, s) == cudaSuccess);
        REQUIRE(cudaGraphLaunch(exec, s) == cudaSuccess);
        CHECK(download(d, 4) == std::vector<float>{4, 4, 2, 2});
        cudaGraphExecDestroy(exec);
    }
    SECTION("a forked stream never joined back fails the capture") {
        REQUIRE(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal) == cudaSuccess);
        REQUIRE(cudaEventRecord(fork, s) == cudaSuccess);
        REQUIRE(cudaStreamWaitEvent(side, fork, 0) == cudaSuccess);
        add_one_kernel<<<1, 32, 0, side>>>(d, 2);
        cudaGraph_t g = nullptr;
        CHECK(cudaStreamEndCapture(s, &g) == cudaErrorStreamCaptureUnjoined);
        CHECK(g == nullptr);
    }
    SECTION("allocating, synchronizing or copying pageable memory inside a capture is refused") {
        std::vector<float> pageable(4);
        REQUIRE(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal) == cudaSuccess);
        CHECK(cudaMemcpyAsync(pageable.data(), d, 4 * sizeof(float), cudaMemcpyDeviceToHost, s) ==
              cudaErrorStreamCaptureUnsupported);
        void* p = nullptr;
        CHECK(cudaMalloc(&p, 16) == cudaErrorStreamCaptureUnsupported);
        CHECK(cudaStreamSynchronize(s) == cudaErrorStreamCaptureUnsupported);
        cudaGraph_t g = nullptr;
        CHECK(cudaStreamEndCapture(s, &g) == cudaErrorStreamCaptureInvalidated);
        // A relaxed capture may allocate, and copy through pinned memory.
        float* pinned = nullptr;
        REQUIRE(cudaMallocHost(&pinned, 4 * sizeof(float)) == cudaSuccess);
        REQUIRE(cudaStreamBeginCapture(s, cudaStreamCaptureModeRelaxed) == cudaSuccess);
        CHECK(cudaMalloc(&p, 16) == cudaSuccess);
        CHECK(cudaMemcpyAsync(pinned, d, 4 * sizeof(float), cudaMemcpyDeviceToHost, s) == cudaSuccess);
        REQUIRE(cudaStreamEndCapture(s, &g) == cudaSuccess);
        cudaGraphDestroy(g);
        cudaFree(p);
        cudaFreeHost(pinned);
        cudaGetLastError();
    }
    SECTION("copies are checked against the allocations they name") {
        std::vector<float> host(8);
        CHECK(cudaMemcpyAsync(d, host.data(), 8 * sizeof(float), cudaMemcpyHostToDevice, s) == cudaErrorInvalidValue);
        CHECK(cudaMemcpyAsync(host.data(), d, 4 * sizeof(float), cudaMemcpyHostToDevice, s) == cudaErrorInvalidValue);
        cudaGetLastError();
    }
    cudaFree(d);
    cudaEventDestroy(fork);
    cudaEventDestroy(join);
    cudaStreamDestroy(s);
    cudaStreamDestroy(side);
}

TEST_CASE("the emulated cuBLAS SGEMM computes op(A) op(B) column-major, on its stream", "[cuda-emulation]") {
    // A (2 x 3) and B (3 x 2) column-major; C = A^T^T B etc. checked against plain loops.
    const int m = 2, n = 2, k = 3;
    const std::vector<float> a = {1, 2, 3, 4, 5, 6}, b = {7, 8, 9, 10, 11, 12};  // A col-major m x k; B col-major k x n
    float *da = device_floats(6), *db = device_floats(6), *dc = device_floats(4);
    cudaMemcpy(da, a.data(), 24, cudaMemcpyHostToDevice);
    cudaMemcpy(db, b.data(), 24, cudaMemcpyHostToDevice);
    cublasHandle_t h = nullptr;
    REQUIRE(cublasCreate(&h) == CUBLAS_STATUS_SUCCESS);
    const float one = 1, zero = 0;
    REQUIRE(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &one, da, m, db, k, &zero, dc, m) == CUBLAS_STATUS_SUCCESS);
    std::vector<float> want(4);
    for (int j = 0; j < n; ++j)
        for (int i = 0; i < m; ++i)
            for (int p = 0; p < k; ++p) want[i + j * m] += a[i + p * m] * b[p + j * k];
    CHECK(download(dc, 4) == want);
    // op(A) = A^T with A stored k x m: the same product from the transposed storage.
    std::vector<float> at(6);
    for (int i = 0; i < m; ++i)
        for (int p = 0; p < k; ++p) at[p + i * k] = a[i + p * m];
    cudaMemcpy(da, at.data(), 24, cudaMemcpyHostToDevice);
    REQUIRE(cublasSgemm(h, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &one, da, k, db, k, &zero, dc, m) == CUBLAS_STATUS_SUCCESS);
    CHECK(download(dc, 4) == want);
    // Refused: a leading dimension that runs C past its allocation; B in host memory.
    CHECK(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &one, da, m, db, k, &zero, dc, m + 1) == CUBLAS_STATUS_INVALID_VALUE);
    CHECK(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &one, da, m, b.data(), k, &zero, dc, m) == CUBLAS_STATUS_INVALID_VALUE);
    cublasDestroy(h);
    cudaFree(da);
    cudaFree(db);
    cudaFree(dc);
}

TEST_CASE("the emulated cuDNN convolves on its handle's stream, and refuses what a real one fails on", "[cuda-emulation]") {
    // x (2, 2, 5, 4) (*) w (3, 2, 3, 2) -> y (2, 3, 3, 3), each operation against double loops.
    // An FP32 sum of n terms is within n * 2^-24 of the sum of their magnitudes (n <= 36 here).
    const int N = 2, C = 2, H = 5, W = 4, F = 3, KH = 3, KW = 2, HO = H - KH + 1, WO = W - KW + 1;
    const size_t nx = size_t(N) * C * H * W, nw = size_t(F) * C * KH * KW, ny = size_t(N) * F * HO * WO;
    std::vector<float> x(nx), w(nw), g(ny);
    for (size_t i = 0; i < nx; ++i) x[i] = float(std::sin(0.7 * double(i)));
    for (size_t i = 0; i < nw; ++i) w[i] = float(std::cos(1.3 * double(i)));
    for (size_t i = 0; i < ny; ++i) g[i] = float(std::sin(2.1 * double(i) + 0.5));
    auto X = [&](int i, int c, int y, int z) { return double(x[((size_t(i) * C + c) * H + y) * W + z]); };
    auto Wt = [&](int f, int c, int y, int z) { return double(w[((size_t(f) * C + c) * KH + y) * KW + z]); };
    auto G = [&](int i, int f, int y, int z) { return double(g[((size_t(i) * F + f) * HO + y) * WO + z]); };
    struct Ref {  // each output's exact sum, and the sum of its terms' magnitudes
        std::vector<double> sum, mag;
        explicit Ref(size_t n) : sum(n), mag(n) {}
        void add(size_t k, double t) { sum[k] += t, mag[k] += std::fabs(t); }
    };
    Ref y_ref(ny), dw_ref(nw), dx_ref(nx), db_ref(F);
    for (int i = 0; i < N; ++i)
        for (int f = 0; f < F; ++f)
            for (int oy = 0; oy < HO; ++oy)
                for (int ox = 0; ox < WO; ++ox) {
                    db_ref.add(f, G(i, f, oy, ox));
                    for (int c = 0; c < C; ++c)
                        for (int ky = 0; ky < KH; ++ky)
                            for (int kx = 0; kx < KW; ++kx) {
                                y_ref.add(((size_t(i) * F + f) * HO + oy) * WO + ox, X(i, c, oy + ky, ox + kx) * Wt(f, c, ky, kx));
                                dw_ref.add(((size_t(f) * C + c) * KH + ky) * KW + kx, G(i, f, oy, ox) * X(i, c, oy + ky, ox + kx));
                                dx_ref.add(((size_t(i) * C + c) * H + oy + ky) * W + ox + kx, G(i, f, oy, ox) * Wt(f, c, ky, kx));
                            }
                }
    auto close = [](const std::vector<float>& got, const Ref& want) {
        for (size_t i = 0; i < want.sum.size(); ++i)
            if (!(std::fabs(double(got[i]) - want.sum[i]) <= 37 * 0x1p-24 * want.mag[i])) return false;
        return true;
    };
    float *dx = device_floats(nx), *dw = device_floats(nw), *dy = device_floats(ny), *dg = device_floats(ny);
    float *db = device_floats(F), *ddx = device_floats(nx), *ddw = device_floats(nw);
    cudaMemcpy(dx, x.data(), nx * 4, cudaMemcpyHostToDevice);
    cudaMemcpy(dw, w.data(), nw * 4, cudaMemcpyHostToDevice);
    cudaMemcpy(dg, g.data(), ny * 4, cudaMemcpyHostToDevice);
    cudnnHandle_t h = nullptr;
    REQUIRE(cudnnCreate(&h) == CUDNN_STATUS_SUCCESS);
    cudaStream_t s = nullptr;
    REQUIRE(cudaStreamCreate(&s) == cudaSuccess);
    REQUIRE(cudnnSetStream(h, s) == CUDNN_STATUS_SUCCESS);
    cudnnTensorDescriptor_t xd, yd, bd, bad_yd;
    cudnnFilterDescriptor_t wd;
    cudnnConvolutionDescriptor_t cd;
    for (auto* d : {&xd, &yd, &bd, &bad_yd}) REQUIRE(cudnnCreateTensorDescriptor(d) == CUDNN_STATUS_SUCCESS);
    REQUIRE(cudnnCreateFilterDescriptor(&wd) == CUDNN_STATUS_SUCCESS);
    REQUIRE(cudnnCreateConvolutionDescriptor(&cd) == CUDNN_STATUS_SUCCESS);
    REQUIRE(cudnnSetTensor4dDescriptor(xd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, N, C, H, W) == CUDNN_STATUS_SUCCESS);
    REQUIRE(cudnnSetTensor4dDescriptor(yd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, N, F, HO, WO) == CUDNN_STATUS_SUCCESS);
    REQUIRE(cudnnSetTensor4dDescriptor(bd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, F, 1, 1) == CUDNN_STATUS_SUCCESS);
    REQUIRE(cudnnSetTensor4dDescriptor(bad_yd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, N, F, HO, WO + 1) == CUDNN_STATUS_SUCCESS);
    REQUIRE(cudnnSetFilter4dDescriptor(wd, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, F, C, KH, KW) == CUDNN_STATUS_SUCCESS);
    CHECK(cudnnSetConvolution2dDescriptor(cd, 1, 1, 1, 1, 1, 1, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT) ==
          CUDNN_STATUS_NOT_SUPPORTED);  // padding: not emulated
    REQUIRE(cudnnSetConvolution2dDescriptor(cd, 0, 0, 1, 1, 1, 1, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT) ==
            CUDNN_STATUS_SUCCESS);
    // The heuristics' first answer is one an engine must refuse (here: Winograd); a deterministic
    // FP32 choice follows.
    cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    int got = 0;
    REQUIRE(cudnnGetConvolutionForwardAlgorithm_v7(h, xd, wd, cd, yd, CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &got, perf) ==
            CUDNN_STATUS_SUCCESS);
    REQUIRE(got > 1);
    CHECK(perf[0].algo == CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED);
    bool fp32 = false;
    for (int i = 0; i < got; ++i)
        fp32 |= perf[i].status == CUDNN_STATUS_SUCCESS && perf[i].determinism == CUDNN_DETERMINISTIC &&
                perf[i].mathType == CUDNN_FMA_MATH && perf[i].algo == CUDNN_CONVOLUTION_FWD_ALGO_GEMM;
    CHECK(fp32);
    size_t need = 0;
    REQUIRE(cudnnGetConvolutionForwardWorkspaceSize(h, xd, wd, cd, yd, CUDNN_CONVOLUTION_FWD_ALGO_GEMM, &need) ==
            CUDNN_STATUS_SUCCESS);
    REQUIRE(need > 0);
    void* ws = nullptr;
    REQUIRE(cudaMalloc(&ws, need) == cudaSuccess);
    const float one = 1, zero = 0;
    const auto gemm = CUDNN_CONVOLUTION_FWD_ALGO_GEMM;
    // Refused: an output descriptor that is not the convolution's; an operand in host memory; a
    // workspace shorter than the algorithm's.
    CHECK(cudnnConvolutionForward(h, &one, xd, dx, wd, dw, cd, gemm, ws, need, &zero, bad_yd, dy) == CUDNN_STATUS_BAD_PARAM);
    CHECK(cudnnConvolutionForward(h, &one, xd, x.data(), wd, dw, cd, gemm, ws, need, &zero, yd, dy) == CUDNN_STATUS_BAD_PARAM);
    CHECK(cudnnConvolutionForward(h, &one, xd, dx, wd, dw, cd, gemm, ws, need - 4, &zero, yd, dy) == CUDNN_STATUS_BAD_PARAM);
    // Captured on the handle's stream: nothing runs until the graph does.
    cudaMemset(dy, 0, ny * 4);
    REQUIRE(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal) == cudaSuccess);
    REQUIRE(cudnnConvolutionForward(h, &one, xd, dx, wd, dw, cd, gemm, ws, need, &zero, yd, dy) == CUDNN_STATUS_SUCCESS);
    REQUIRE(cudnnAddTensor(h, &one, bd, dg, &one, yd, dy) == CUDNN_STATUS_SUCCESS);  // + g's first F values per channel
    cudaGraph_t graph = nullptr;
    REQUIRE(cudaStreamEndCapture(s, &graph) == cudaSuccess);
    size_t nodes = 0;
    REQUIRE(cudaGraphGetNodes(graph, nullptr, &nodes) == cudaSuccess);
    CHECK(nodes == 2);
    CHECK(download(dy, ny) == std::vector<float>(ny, 0.0f));
    cudaGraphExec_t exec = nullptr;
    REQUIRE(cudaGraphInstantiate(&exec, graph, 0) == cudaSuccess);
    REQUIRE(cudaGraphLaunch(exec, s) == cudaSuccess);
    REQUIRE(cudaStreamSynchronize(s) == cudaSuccess);
    Ref y_bias = y_ref;
    for (size_t i = 0; i < ny; ++i) y_bias.add(i, g[i / (HO * WO) % F]);
    CHECK(close(download(dy, ny), y_bias));
    // The gradients (filter ALGO_1, which sums chunks of images in its workspace; data ALGO_1; bias).
    size_t need_w = 0;
    REQUIRE(cudnnGetConvolutionBackwardFilterWorkspaceSize(h, xd, yd, cd, wd, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1, &need_w) ==
            CUDNN_STATUS_SUCCESS);
    REQUIRE(need_w <= need);
    CHECK(cudnnConvolutionBackwardFilter(h, &one, xd, dx, yd, dg, cd, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1, ws, need, &zero, wd,
                                         ddw) == CUDNN_STATUS_SUCCESS);
    CHECK(cudnnConvolutionBackwardData(h, &one, wd, dw, yd, dg, cd, CUDNN_CONVOLUTION_BWD_DATA_ALGO_1, ws, need, &zero, xd,
                                       ddx) == CUDNN_STATUS_SUCCESS);
    CHECK(cudnnConvolutionBackwardBias(h, &one, yd, dg, &zero, bd, db) == CUDNN_STATUS_SUCCESS);
    REQUIRE(cudaStreamSynchronize(s) == cudaSuccess);
    CHECK(close(download(ddw, nw), dw_ref));
    CHECK(close(download(ddx, nx), dx_ref));
    CHECK(close(download(db, F), db_ref));
    cudaGraphExecDestroy(exec);
    cudaGraphDestroy(graph);
    for (auto d : {xd, yd, bd, bad_yd}) cudnnDestroyTensorDescriptor(d);
    cudnnDestroyFilterDescriptor(wd);
    cudnnDestroyConvolutionDescriptor(cd);
    cudnnDestroy(h);
    cudaStreamDestroy(s);
    for (void* p : {(void*)dx, (void*)dw, (void*)dy, (void*)dg, (void*)db, (void*)ddx, (void*)ddw, ws}) cudaFree(p);
}
