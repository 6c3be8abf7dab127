// The emulated cuDNN (see include/cudnn.h): descriptors, heuristics, workspace sizes, and the
// operations (the convolution, its filter and data gradients, the bias gradient, the tensor add),
// summed in FP32 on the host, queued on the handle's stream. Each algorithm sums in an order of
// its own, as cuDNN's do: an engine that let one batch size's choice depend on history (another
// size met first) loses its bit-identical runs.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "cudnn.h"
#include "runtime_internal.hpp"

struct cudnnContext {
    cudaStream_t stream = nullptr;
};
struct cudnnTensorStruct {
    bool set = false;
    int n = 0, c = 0, h = 0, w = 0;
    size_t elems() const { return size_t(n) * c * h * w; }
};
struct cudnnFilterStruct {
    bool set = false;
    int k = 0, c = 0, h = 0, w = 0;
    size_t elems() const { return size_t(k) * c * h * w; }
};
struct cudnnConvolutionStruct {  // a cross-correlation, unpadded, unit stride and dilation, FP32 math
    bool set = false;
};

namespace {

cudnnStatus_t refuse(cudnnStatus_t s, const std::string& why) {
    std::fprintf(stderr, "CUDA emulation: cuDNN: %s\n", why.c_str());
    return s;
}
cudnnStatus_t bad(const std::string& why) { return refuse(CUDNN_STATUS_BAD_PARAM, why); }

std::string dims(const cudnnTensorStruct& t) {
    return "(" + std::to_string(t.n) + ", " + std::to_string(t.c) + ", " + std::to_string(t.h) + ", " + std::to_string(t.w) + ")";
}

// The convolution x (*) w -> y, its descriptors checked against one another.
struct Geometry {
    const cudnnTensorStruct* x;
    const cudnnFilterStruct* w;
    const cudnnConvolutionStruct* conv;
    const cudnnTensorStruct* y;
};
std::string check(const Geometry& g) {
    if (!g.x || !g.w || !g.conv || !g.y) return "a null descriptor";
    if (!g.x->set || !g.w->set || !g.conv->set || !g.y->set) return "a descriptor used before it was set";
    if (g.x->c != g.w->c) return "the input's " + std::to_string(g.x->c) + " channels against the filter's " + std::to_string(g.w->c);
    const int ho = g.x->h - g.w->h + 1, wo = g.x->w - g.w->w + 1;
    if (ho < 1 || wo < 1) return "a filter larger than its input";
    if (g.y->n != g.x->n || g.y->c != g.w->k || g.y->h != ho || g.y->w != wo)
        return "output descriptor " + dims(*g.y) + " where the convolution of " + dims(*g.x) + " gives (" +
               std::to_string(g.x->n) + ", " + std::to_string(g.w->k) + ", " + std::to_string(ho) + ", " + std::to_string(wo) + ")";
    return {};
}

// What each algorithm's workspace holds, in bytes: an im2col matrix (GEMM), precomputed offsets
// (PRECOMP), per-chunk partial filter gradients (filter ALGO_1), transforms (FFT, Winograd). Sizes
// a real cuDNN might ask for; that the engine allocates and passes what it is told is the check.
size_t fwd_workspace(const Geometry& g, cudnnConvolutionFwdAlgo_t a) {
    const size_t patch = size_t(g.w->c) * g.w->h * g.w->w, out = size_t(g.y->h) * g.y->w;
    switch (a) {
        case CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM: return 0;
        case CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM: return patch * out * sizeof(int);
        case CUDNN_CONVOLUTION_FWD_ALGO_GEMM: return size_t(g.x->n) * patch * out * sizeof(float);
        case CUDNN_CONVOLUTION_FWD_ALGO_DIRECT: return 0;
        default: return size_t(g.x->n) * (g.x->c + g.w->k) * 64 * 64 * sizeof(float);  // transforms
    }
}
// Images per partial sum of filter ALGO_1 (its workspace holds one partial gradient per chunk).
constexpr int kFilterChunk = 32;
size_t filter_workspace(const Geometry& g, cudnnConvolutionBwdFilterAlgo_t a) {
    const size_t chunks = (size_t(g.x->n) + kFilterChunk - 1) / kFilterChunk;
    switch (a) {
        case CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0:
        case CUDNN_CONVOLUTION_BWD_FILTER_ALGO_3: return 0;
        case CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1: return chunks * g.w->elems() * sizeof(float);
        default: return size_t(g.x->n) * (g.x->c + g.w->k) * 64 * 64 * sizeof(float);
    }
}
size_t data_workspace(const Geometry& g, cudnnConvolutionBwdDataAlgo_t a) {
    switch (a) {
        case CUDNN_CONVOLUTION_BWD_DATA_ALGO_0:
        case CUDNN_CONVOLUTION_BWD_DATA_ALGO_1: return 0;
        default: return size_t(g.x->n) * (g.x->c + g.w->k) * 64 * 64 * sizeof(float);
    }
}

// The heuristics' answer: entries the engine must refuse first, then acceptable ones, best first.
template <class Perf, class Algo>
Perf entry(Algo a, size_t bytes, cudnnDeterminism_t det = CUDNN_DETERMINISTIC, cudnnMathType_t math = CUDNN_FMA_MATH,
           cudnnStatus_t st = CUDNN_STATUS_SUCCESS) {
    Perf p{};
    p.algo = a, p.status = st, p.time = -1.0f, p.memory = bytes, p.determinism = det, p.mathType = math;
    return p;
}
template <class Perf>
cudnnStatus_t answer(const std::vector<Perf>& list, int requested, int* returned, Perf* perf) {
    if (requested < 1 || !returned || !perf) return bad("heuristics: no room for an answer");
    *returned = std::min<int>(requested, int(list.size()));
    std::copy(list.begin(), list.begin() + *returned, perf);
    return CUDNN_STATUS_SUCCESS;
}

// Every operand inside device memory: what a real call would fault on.
std::string operand(const char* name, const void* p, size_t elems) {
    if (!p) return std::string(name) + " is null";
    if (!emu::is_device(p, elems * sizeof(float)))
        return std::string(name) + " (" + std::to_string(elems) + " floats) is not inside one device allocation";
    return {};
}
// The workspace: at least what the algorithm needs, given and inside device memory. Scribbled
// over with NaN, as an algorithm uses it: nothing may live there between calls.
std::string workspace(void* p, size_t given, size_t need) {
    if (given < need) return "workspace of " + std::to_string(given) + " B where the algorithm needs " + std::to_string(need);
    if (need == 0) return {};
    if (!p || !emu::is_device(p, given)) return "the workspace is not inside one device allocation";
    return {};
}
void scribble(void* p, size_t bytes) {
    if (bytes) std::memset(p, 0xFF, bytes);
}

// What every convolution call checks, in order: the descriptors, the algorithm, the input (x),
// filter (w) and output (y) operands, then the workspace against what the algorithm needs
// (*need, from size_of). The first failure's text, or empty.
struct Operand {
    const char* name;
    const void* p;
};
template <class Algo>
std::string check_call(const Geometry& g, Algo algo, int algo_count, Operand x, Operand w, Operand y, void* ws, size_t given,
                       size_t (*size_of)(const Geometry&, Algo), size_t* need) {
    std::string e = check(g);
    if (e.empty() && (algo < 0 || int(algo) >= algo_count)) e = "no such algorithm";
    if (e.empty()) e = operand(x.name, x.p, g.x->elems());
    if (e.empty()) e = operand(w.name, w.p, g.w->elems());
    if (e.empty()) e = operand(y.name, y.p, g.y->elems());
    *need = e.empty() ? size_of(g, algo) : 0;
    if (e.empty()) e = workspace(ws, given, *need);
    return e;
}

// The call's work on the handle's stream (recorded when that stream is being captured).
cudnnStatus_t queue(cudnnHandle_t h, std::function<void()> op) {
    return emu::submit(h->stream, cudaGraphNodeTypeKernel, std::move(op)) == cudaSuccess
               ? CUDNN_STATUS_SUCCESS
               : refuse(CUDNN_STATUS_EXECUTION_FAILED, "the handle's stream refused the work (an invalidated capture)");
}

// out = alpha * sum + beta * out; out is not read when beta is 0 (cuDNN's rule: NaN there stays out).
inline void blend(float& out, float alpha, float sum, float beta) { out = beta == 0.0f ? alpha * sum : alpha * sum + beta * out; }

}  // namespace

const char* cudnnGetErrorString(cudnnStatus_t s) {
    switch (s) {
        case CUDNN_STATUS_SUCCESS: return "CUDNN_STATUS_SUCCESS";
        case CUDNN_STATUS_NOT_INITIALIZED: return "CUDNN_STATUS_NOT_INITIALIZED";
        case CUDNN_STATUS_BAD_PARAM: return "CUDNN_STATUS_BAD_PARAM";
        case CUDNN_STATUS_NOT_SUPPORTED: return "CUDNN_STATUS_NOT_SUPPORTED";
        case CUDNN_STATUS_INTERNAL_ERROR: return "CUDNN_STATUS_INTERNAL_ERROR";
        case CUDNN_STATUS_EXECUTION_FAILED: return "CUDNN_STATUS_EXECUTION_FAILED";
    }
    return "CUDNN_STATUS_UNKNOWN";
}

cudnnStatus_t cudnnCreate(cudnnHandle_t* h) {
    if (!h) return bad("cudnnCreate: null");
    *h = new cudnnContext;
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnDestroy(cudnnHandle_t h) {
    delete h;
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetStream(cudnnHandle_t h, cudaStream_t s) {
    if (!h) return CUDNN_STATUS_NOT_INITIALIZED;
    h->stream = s;
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnGetStream(cudnnHandle_t h, cudaStream_t* s) {
    if (!h) return CUDNN_STATUS_NOT_INITIALIZED;
    *s = h->stream;
    return CUDNN_STATUS_SUCCESS;
}

// ---- descriptors ----------------------------------------------------------------------------
namespace {
template <class D>
cudnnStatus_t create(D** d) {
    if (!d) return bad("a descriptor's create: null");
    *d = new D;
    return CUDNN_STATUS_SUCCESS;
}
template <class D>
cudnnStatus_t destroy(D* d) {
    delete d;
    return CUDNN_STATUS_SUCCESS;
}
// A tensor's (n, c, h, w) or a filter's (k, c, h, w).
template <class D>
cudnnStatus_t set4d(const char* what, D* d, cudnnTensorFormat_t format, cudnnDataType_t type, int a, int b, int c, int e) {
    if (!d) return bad(std::string(what) + ": null descriptor");
    if (format != CUDNN_TENSOR_NCHW || type != CUDNN_DATA_FLOAT)
        return refuse(CUDNN_STATUS_NOT_SUPPORTED, std::string(what) + ": only NCHW float is emulated");
    if (a < 1 || b < 1 || c < 1 || e < 1)
        return bad(std::string(what) + ": dimensions (" + std::to_string(a) + ", " + std::to_string(b) + ", " +
                   std::to_string(c) + ", " + std::to_string(e) + ") must all be positive");
    *d = D{true, a, b, c, e};
    return CUDNN_STATUS_SUCCESS;
}
}  // namespace

cudnnStatus_t cudnnCreateTensorDescriptor(cudnnTensorDescriptor_t* d) { return create(d); }
cudnnStatus_t cudnnDestroyTensorDescriptor(cudnnTensorDescriptor_t d) { return destroy(d); }
cudnnStatus_t cudnnSetTensor4dDescriptor(cudnnTensorDescriptor_t d, cudnnTensorFormat_t format, cudnnDataType_t type, int n,
                                         int c, int h, int w) {
    return set4d("cudnnSetTensor4dDescriptor", d, format, type, n, c, h, w);
}
cudnnStatus_t cudnnCreateFilterDescriptor(cudnnFilterDescriptor_t* d) { return create(d); }
cudnnStatus_t cudnnDestroyFilterDescriptor(cudnnFilterDescriptor_t d) { return destroy(d); }
cudnnStatus_t cudnnSetFilter4dDescriptor(cudnnFilterDescriptor_t d, cudnnDataType_t type, cudnnTensorFormat_t format, int k,
                                         int c, int h, int w) {
    return set4d("cudnnSetFilter4dDescriptor", d, format, type, k, c, h, w);
}
cudnnStatus_t cudnnCreateConvolutionDescriptor(cudnnConvolutionDescriptor_t* d) { return create(d); }
cudnnStatus_t cudnnDestroyConvolutionDescriptor(cudnnConvolutionDescriptor_t d) { return destroy(d); }
cudnnStatus_t cudnnSetConvolution2dDescriptor(cudnnConvolutionDescriptor_t d, int pad_h, int pad_w, int u, int v,
                                              int dil_h, int dil_w, cudnnConvolutionMode_t mode, cudnnDataType_t type) {
    if (!d) return bad("cudnnSetConvolution2dDescriptor: null descriptor");
    if (pad_h < 0 || pad_w < 0 || u < 1 || v < 1 || dil_h < 1 || dil_w < 1)
        return bad("cudnnSetConvolution2dDescriptor: negative padding, or a stride or dilation below 1");
    // What the engine asks for, and all that is emulated (and tested).
    if (pad_h || pad_w || u != 1 || v != 1 || dil_h != 1 || dil_w != 1 || mode != CUDNN_CROSS_CORRELATION ||
        type != CUDNN_DATA_FLOAT)
        return refuse(CUDNN_STATUS_NOT_SUPPORTED,
                      "cudnnSetConvolution2dDescriptor: only an unpadded, unit-stride, undilated float cross-correlation is emulated");
    d->set = true;
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetConvolutionMathType(cudnnConvolutionDescriptor_t d, cudnnMathType_t math) {
    if (!d) return bad("cudnnSetConvolutionMathType: null descriptor");
    // FP32 sums whatever the math type: the heuristics' tensor-op entries are there to be refused.
    return math >= CUDNN_DEFAULT_MATH && math <= CUDNN_FMA_MATH ? CUDNN_STATUS_SUCCESS : bad("no such math type");
}

// ---- heuristics and workspace sizes -----------------------------------------------------------
// Forward: refused first (Winograd; tensor-op math; a failed status); then GEMM, whose im2col
// workspace grows with the batch (over the engine's 64 MiB cap for a large one: then refused
// too), then PRECOMP_GEMM, then IMPLICIT_GEMM. So a small batch may need a larger workspace than
// the large batch a block was made for.
cudnnStatus_t cudnnGetConvolutionForwardAlgorithm_v7(cudnnHandle_t h, const cudnnTensorDescriptor_t x,
                                                     const cudnnFilterDescriptor_t w, const cudnnConvolutionDescriptor_t conv,
                                                     const cudnnTensorDescriptor_t y, const int requested, int* returned,
                                                     cudnnConvolutionFwdAlgoPerf_t* perf) {
    if (!h) return CUDNN_STATUS_NOT_INITIALIZED;
    const Geometry g{x, w, conv, y};
    if (const std::string e = check(g); !e.empty()) return bad("forward heuristics: " + e);
    using P = cudnnConvolutionFwdAlgoPerf_t;
    auto ws = [&](cudnnConvolutionFwdAlgo_t a) { return fwd_workspace(g, a); };
    return answer<P>({entry<P>(CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED, ws(CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED)),
                      entry<P>(CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM, ws(CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM),
                               CUDNN_DETERMINISTIC, CUDNN_TENSOR_OP_MATH),
                      entry<P>(CUDNN_CONVOLUTION_FWD_ALGO_DIRECT, 0, CUDNN_DETERMINISTIC, CUDNN_FMA_MATH,
                               CUDNN_STATUS_NOT_SUPPORTED),
                      entry<P>(CUDNN_CONVOLUTION_FWD_ALGO_GEMM, ws(CUDNN_CONVOLUTION_FWD_ALGO_GEMM)),
                      entry<P>(CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM, ws(CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM)),
                      entry<P>(CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, 0)},
                     requested, returned, perf);
}
// Filter gradient: the non-deterministic ALGO_0 and ALGO_3 and the FFT first, then ALGO_1.
cudnnStatus_t cudnnGetConvolutionBackwardFilterAlgorithm_v7(cudnnHandle_t h, const cudnnTensorDescriptor_t x,
                                                            const cudnnTensorDescriptor_t dy,
                                                            const cudnnConvolutionDescriptor_t conv,
                                                            const cudnnFilterDescriptor_t dw, const int requested,
                                                            int* returned, cudnnConvolutionBwdFilterAlgoPerf_t* perf) {
    if (!h) return CUDNN_STATUS_NOT_INITIALIZED;
    const Geometry g{x, dw, conv, dy};
    if (const std::string e = check(g); !e.empty()) return bad("filter-gradient heuristics: " + e);
    using P = cudnnConvolutionBwdFilterAlgoPerf_t;
    auto ws = [&](cudnnConvolutionBwdFilterAlgo_t a) { return filter_workspace(g, a); };
    return answer<P>({entry<P>(CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0, 0, CUDNN_NON_DETERMINISTIC),
                      entry<P>(CUDNN_CONVOLUTION_BWD_FILTER_ALGO_3, 0, CUDNN_NON_DETERMINISTIC),
                      entry<P>(CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT, ws(CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT)),
                      entry<P>(CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1, ws(CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1))},
                     requested, returned, perf);
}
// Data gradient: the non-deterministic ALGO_0 and Winograd first, then ALGO_1.
cudnnStatus_t cudnnGetConvolutionBackwardDataAlgorithm_v7(cudnnHandle_t h, const cudnnFilterDescriptor_t w,
                                                          const cudnnTensorDescriptor_t dy,
                                                          const cudnnConvolutionDescriptor_t conv,
                                                          const cudnnTensorDescriptor_t dx, const int requested,
                                                          int* returned, cudnnConvolutionBwdDataAlgoPerf_t* perf) {
    if (!h) return CUDNN_STATUS_NOT_INITIALIZED;
    const Geometry g{dx, w, conv, dy};
    if (const std::string e = check(g); !e.empty()) return bad("data-gradient heuristics: " + e);
    using P = cudnnConvolutionBwdDataAlgoPerf_t;
    auto ws = [&](cudnnConvolutionBwdDataAlgo_t a) { return data_workspace(g, a); };
    return answer<P>({entry<P>(CUDNN_CONVOLUTION_BWD_DATA_ALGO_0, 0, CUDNN_NON_DETERMINISTIC),
                      entry<P>(CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD_NONFUSED, ws(CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD_NONFUSED)),
                      entry<P>(CUDNN_CONVOLUTION_BWD_DATA_ALGO_1, 0)},
                     requested, returned, perf);
}

cudnnStatus_t cudnnGetConvolutionForwardWorkspaceSize(cudnnHandle_t h, const cudnnTensorDescriptor_t x,
                                                      const cudnnFilterDescriptor_t w, const cudnnConvolutionDescriptor_t conv,
                                                      const cudnnTensorDescriptor_t y, cudnnConvolutionFwdAlgo_t algo,
                                                      size_t* bytes) {
    if (!h) return CUDNN_STATUS_NOT_INITIALIZED;
    const Geometry g{x, w, conv, y};
    if (const std::string e = check(g); !e.empty()) return bad("forward workspace size: " + e);
    if (algo < 0 || algo >= CUDNN_CONVOLUTION_FWD_ALGO_COUNT) return bad("forward workspace size: no such algorithm");
    *bytes = fwd_workspace(g, algo);
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnGetConvolutionBackwardFilterWorkspaceSize(cudnnHandle_t h, const cudnnTensorDescriptor_t x,
                                                             const cudnnTensorDescriptor_t dy,
                                                             const cudnnConvolutionDescriptor_t conv,
                                                             const cudnnFilterDescriptor_t dw,
                                                             cudnnConvolutionBwdFilterAlgo_t algo, size_t* bytes) {
    if (!h) return CUDNN_STATUS_NOT_INITIALIZED;
    const Geometry g{x, dw, conv, dy};
    if (const std::string e = check(g); !e.empty()) return bad("filter-gradient workspace size: " + e);
    if (algo == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_WINOGRAD) return refuse(CUDNN_STATUS_NOT_SUPPORTED, "filter WINOGRAD");
    if (algo < 0 || algo >= CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT) return bad("filter-gradient workspace size: no such algorithm");
    *bytes = filter_workspace(g, algo);
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnGetConvolutionBackwardDataWorkspaceSize(cudnnHandle_t h, const cudnnFilterDescriptor_t w,
                                                           const cudnnTensorDescriptor_t dy,
                                                           const cudnnConvolutionDescriptor_t conv,
                                                           const cudnnTensorDescriptor_t dx,
                                                           cudnnConvolutionBwdDataAlgo_t algo, size_t* bytes) {
    if (!h) return CUDNN_STATUS_NOT_INITIALIZED;
    const Geometry g{dx, w, conv, dy};
    if (const std::string e = check(g); !e.empty()) return bad("data-gradient workspace size: " + e);
    if (algo < 0 || algo >= CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT) return bad("data-gradient workspace size: no such algorithm");
    *bytes = data_workspace(g, algo);
    return CUDNN_STATUS_SUCCESS;
}

// ---- the operations ---------------------------------------------------------------------------
// y = alpha * x (*) w + beta * y. GEMM sums each output's taps from the last to the first; the
// others from the first.
cudnnStatus_t cudnnConvolutionForward(cudnnHandle_t h, const void* alpha, const cudnnTensorDescriptor_t x_desc,
                                      const void* x, const cudnnFilterDescriptor_t w_desc, const void* w,
                                      const cudnnConvolutionDescriptor_t conv, cudnnConvolutionFwdAlgo_t algo,
                                      void* ws, size_t ws_bytes, const void* beta, const cudnnTensorDescriptor_t y_desc,
                                      void* y) {
    if (!h) return CUDNN_STATUS_NOT_INITIALIZED;
    const Geometry g{x_desc, w_desc, conv, y_desc};
    size_t need = 0;
    const std::string e = check_call(g, algo, CUDNN_CONVOLUTION_FWD_ALGO_COUNT, {"x", x}, {"w", w}, {"y", y}, ws, ws_bytes,
                                     fwd_workspace, &need);
    if (!e.empty()) return bad("cudnnConvolutionForward: " + e);
    const float al = *static_cast<const float*>(alpha), be = *static_cast<const float*>(beta);
    const cudnnTensorStruct X = *x_desc, Y = *y_desc;
    const cudnnFilterStruct W = *w_desc;
    const auto* xp = static_cast<const float*>(x);
    const auto* wp = static_cast<const float*>(w);
    auto* yp = static_cast<float*>(y);
    const bool backwards = algo == CUDNN_CONVOLUTION_FWD_ALGO_GEMM;
    return queue(h, [=] {
        scribble(ws, need);
        const int taps = W.c * W.h * W.w;
        for (int i = 0; i < Y.n; ++i)
            for (int f = 0; f < Y.c; ++f)
                for (int oy = 0; oy < Y.h; ++oy)
                    for (int ox = 0; ox < Y.w; ++ox) {
                        float sum = 0.0f;
                        for (int q = 0; q < taps; ++q) {
                            const int k = backwards ? taps - 1 - q : q;
                            const int c = k / (W.h * W.w), ky = k / W.w % W.h, kx = k % W.w;
                            sum += xp[((size_t(i) * X.c + c) * X.h + oy + ky) * X.w + ox + kx] * wp[size_t(f) * taps + k];
                        }
                        blend(yp[((size_t(i) * Y.c + f) * Y.h + oy) * Y.w + ox], al, sum, be);
                    }
    });
}

// dw = alpha * (x against dy) + beta * dw. ALGO_1 sums chunks of kFilterChunk images into its
// workspace, then the chunks in order; the others sum every image in one pass.
cudnnStatus_t cudnnConvolutionBackwardFilter(cudnnHandle_t h, const void* alpha, const cudnnTensorDescriptor_t x_desc,
                                             const void* x, const cudnnTensorDescriptor_t dy_desc, const void* dy,
                                             const cudnnConvolutionDescriptor_t conv, cudnnConvolutionBwdFilterAlgo_t algo,
                                             void* ws, size_t ws_bytes, const void* beta,
                                             const cudnnFilterDescriptor_t dw_desc, void* dw) {
    if (!h) return CUDNN_STATUS_NOT_INITIALIZED;
    const Geometry g{x_desc, dw_desc, conv, dy_desc};
    if (check(g).empty() && algo == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_WINOGRAD)
        return refuse(CUDNN_STATUS_NOT_SUPPORTED, "filter WINOGRAD");
    size_t need = 0;
    const std::string e = check_call(g, algo, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, {"x", x}, {"dw", dw}, {"dy", dy}, ws,
                                     ws_bytes, filter_workspace, &need);
    if (!e.empty()) return bad("cudnnConvolutionBackwardFilter: " + e);
    const float al = *static_cast<const float*>(alpha), be = *static_cast<const float*>(beta);
    const cudnnTensorStruct X = *x_desc, Y = *dy_desc;
    const cudnnFilterStruct W = *dw_desc;
    const auto* xp = static_cast<const float*>(x);
    const auto* gp = static_cast<const float*>(dy);
    auto* wp = static_cast<float*>(dw);
    const int chunk = algo == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1 ? kFilterChunk : X.n;
    return queue(h, [=] {
        scribble(ws, need);
        for (int f = 0; f < W.k; ++f)
            for (int c = 0; c < W.c; ++c)
                for (int ky = 0; ky < W.h; ++ky)
                    for (int kx = 0; kx < W.w; ++kx) {
                        float total = 0.0f;
                        for (int i0 = 0; i0 < X.n; i0 += chunk) {
                            float part = 0.0f;
                            for (int i = i0; i < std::min(X.n, i0 + chunk); ++i)
                                for (int oy = 0; oy < Y.h; ++oy)
                                    for (int ox = 0; ox < Y.w; ++ox)
                                        part += gp[((size_t(i) * Y.c + f) * Y.h + oy) * Y.w + ox] *
                                                xp[((size_t(i) * X.c + c) * X.h + oy + ky) * X.w + ox + kx];
                            total += part;
                        }
                        blend(wp[((size_t(f) * W.c + c) * W.h + ky) * W.w + kx], al, total, be);
                    }
    });
}

// dx = alpha * (dy against w) + beta * dx: each input element gathers the outputs it fed.
cudnnStatus_t cudnnConvolutionBackwardData(cudnnHandle_t h, const void* alpha, const cudnnFilterDescriptor_t w_desc,
                                           const void* w, const cudnnTensorDescriptor_t dy_desc, const void* dy,
                                           const cudnnConvolutionDescriptor_t conv, cudnnConvolutionBwdDataAlgo_t algo,
                                           void* ws, size_t ws_bytes, const void* beta,
                                           const cudnnTensorDescriptor_t dx_desc, void* dx) {
    if (!h) return CUDNN_STATUS_NOT_INITIALIZED;
    const Geometry g{dx_desc, w_desc, conv, dy_desc};
    size_t need = 0;
    const std::string e = check_call(g, algo, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, {"dx", dx}, {"w", w}, {"dy", dy}, ws,
                                     ws_bytes, data_workspace, &need);
    if (!e.empty()) return bad("cudnnConvolutionBackwardData: " + e);
    const float al = *static_cast<const float*>(alpha), be = *static_cast<const float*>(beta);
    const cudnnTensorStruct X = *dx_desc, Y = *dy_desc;
    const cudnnFilterStruct W = *w_desc;
    const auto* wp = static_cast<const float*>(w);
    const auto* gp = static_cast<const float*>(dy);
    auto* xp = static_cast<float*>(dx);
    return queue(h, [=] {
        scribble(ws, need);
        for (int i = 0; i < X.n; ++i)
            for (int c = 0; c < X.c; ++c)
                for (int iy = 0; iy < X.h; ++iy)
                    for (int ix = 0; ix < X.w; ++ix) {
                        float sum = 0.0f;
                        for (int f = 0; f < W.k; ++f)
                            for (int ky = 0; ky < W.h; ++ky)
                                for (int kx = 0; kx < W.w; ++kx) {
                                    const int oy = iy - ky, ox = ix - kx;
                                    if (oy < 0 || ox < 0 || oy >= Y.h || ox >= Y.w) continue;
                                    sum += gp[((size_t(i) * Y.c + f) * Y.h + oy) * Y.w + ox] *
                                           wp[((size_t(f) * W.c + c) * W.h + ky) * W.w + kx];
                                }
                        blend(xp[((size_t(i) * X.c + c) * X.h + iy) * X.w + ix], al, sum, be);
                    }
    });
}

// db (1, C, 1, 1) = alpha * dy summed over images and positions + beta * db.
cudnnStatus_t cudnnConvolutionBackwardBias(cudnnHandle_t h, const void* alpha, const cudnnTensorDescriptor_t dy_desc,
                                           const void* dy, const void* beta, const cudnnTensorDescriptor_t db_desc, void* db) {
    if (!h) return CUDNN_STATUS_NOT_INITIALIZED;
    std::string e;
    if (!dy_desc || !db_desc || !dy_desc->set || !db_desc->set) e = "a descriptor not set";
    else if (db_desc->n != 1 || db_desc->c != dy_desc->c || db_desc->h != 1 || db_desc->w != 1)
        e = "bias descriptor " + dims(*db_desc) + " for a gradient " + dims(*dy_desc);
    if (e.empty()) e = operand("dy", dy, dy_desc->elems());
    if (e.empty()) e = operand("db", db, db_desc->elems());
    if (!e.empty()) return bad("cudnnConvolutionBackwardBias: " + e);
    const float al = *static_cast<const float*>(alpha), be = *static_cast<const float*>(beta);
    const cudnnTensorStruct Y = *dy_desc;
    const auto* gp = static_cast<const float*>(dy);
    auto* bp = static_cast<float*>(db);
    return queue(h, [=] {
        for (int c = 0; c < Y.c; ++c) {
            float sum = 0.0f;
            for (int i = 0; i < Y.n; ++i)
                for (size_t k = 0; k < size_t(Y.h) * Y.w; ++k) sum += gp[(size_t(i) * Y.c + c) * Y.h * Y.w + k];
            blend(bp[c], al, sum, be);
        }
    });
}

// C = alpha * A + beta * C, A broadcast along each dimension where it has size 1.
cudnnStatus_t cudnnAddTensor(cudnnHandle_t h, const void* alpha, const cudnnTensorDescriptor_t a_desc, const void* a,
                             const void* beta, const cudnnTensorDescriptor_t c_desc, void* c) {
    if (!h) return CUDNN_STATUS_NOT_INITIALIZED;
    std::string e;
    if (!a_desc || !c_desc || !a_desc->set || !c_desc->set) e = "a descriptor not set";
    else if ((a_desc->n != 1 && a_desc->n != c_desc->n) || (a_desc->c != 1 && a_desc->c != c_desc->c) ||
             (a_desc->h != 1 && a_desc->h != c_desc->h) || (a_desc->w != 1 && a_desc->w != c_desc->w))
        e = "A " + dims(*a_desc) + " does not broadcast to C " + dims(*c_desc);
    if (e.empty()) e = operand("A", a, a_desc->elems());
    if (e.empty()) e = operand("C", c, c_desc->elems());
    if (!e.empty()) return bad("cudnnAddTensor: " + e);
    const float al = *static_cast<const float*>(alpha), be = *static_cast<const float*>(beta);
    const cudnnTensorStruct A = *a_desc, Cd = *c_desc;
    const auto* ap = static_cast<const float*>(a);
    auto* cp = static_cast<float*>(c);
    return queue(h, [=] {
        for (int i = 0; i < Cd.n; ++i)
            for (int ch = 0; ch < Cd.c; ++ch)
                for (int y = 0; y < Cd.h; ++y)
                    for (int x = 0; x < Cd.w; ++x) {
                        const size_t ai = ((size_t(A.n == 1 ? 0 : i) * A.c + (A.c == 1 ? 0 : ch)) * A.h + (A.h == 1 ? 0 : y)) * A.w +
                                          (A.w == 1 ? 0 : x);
                        float& out = cp[((size_t(i) * Cd.c + ch) * Cd.h + y) * Cd.w + x];
                        out = be == 0.0f ? al * ap[ai] : al * ap[ai] + be * out;
                    }
    });
}
