// The emulated CUDA runtime and cuBLAS (see include/cuda_runtime.h): one host thread runs
// every operation at once, in program order, unless a stream capture records it into a graph.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "cublas_v2.h"
#include "cuda_runtime.h"
#include "fiber.hpp"
#include "runtime_internal.hpp"

struct CUgraphNode_st {
    cudaGraphNodeType type;
    std::function<void()> run;
};
struct CUgraph_st {
    std::vector<std::unique_ptr<CUgraphNode_st>> nodes;
};
struct CUgraphExec_st {
    std::vector<std::function<void()>> ops;
};
struct Capture;
struct CUstream_st {
    Capture* capture = nullptr;  // the capture this stream takes part in, if any
    long ops = 0;                // operations recorded into it during that capture
    long joined = 0;             // of those, how many the origin stream has waited for
};
struct Capture {
    CUstream_st* origin;
    cudaStreamCaptureMode mode;
    bool invalidated = false;
    std::unique_ptr<CUgraph_st> graph = std::make_unique<CUgraph_st>();
    std::vector<CUstream_st*> members;
};
struct CUevent_st {
    unsigned flags = 0;
    bool recorded = false;
    double seconds = 0;
    Capture* capture = nullptr;  // recorded during this capture (a fork or join point)
    CUstream_st* stream = nullptr;
    long ops = 0;  // the stream's operations before this record
};
struct cublasContext {
    cudaStream_t stream = nullptr;
    cublasMath_t math = CUBLAS_DEFAULT_MATH;
    void* workspace = nullptr;
};

namespace emu {

ThreadState* current_thread = nullptr;
BlockState current_block{};

namespace {

[[noreturn]] void fatal(const std::string& what) { throw std::runtime_error("CUDA emulation: " + what); }

cudaError_t last_error = cudaSuccess;
cudaError_t fail(cudaError_t e, const std::string& why) {
    std::fprintf(stderr, "CUDA emulation: %s\n", why.c_str());
    last_error = e;
    return e;
}

// ---- memory: what is device memory, what is pinned, so copies and captures can be checked ----
std::map<uintptr_t, size_t> device_allocs, pinned_allocs;
bool inside(const std::map<uintptr_t, size_t>& m, const void* p, size_t bytes) {
    const auto u = reinterpret_cast<uintptr_t>(p);
    auto it = m.upper_bound(u);
    if (it == m.begin()) return false;
    --it;
    return u >= it->first && u + bytes <= it->first + it->second;
}

// Every allocation is followed by a red zone (to the next 256 bytes, then 256 more): a kernel
// writing past the end of a buffer changes it, found after each launch. It holds the float NaN
// 0x7fa5a5a5 (a read past the end gives NaN, which the tests see), byte by byte from the address.
constexpr size_t kRedZoneBytes = 256;
unsigned char red_zone_byte(uintptr_t address) { return address % 4 == 3 ? 0x7f : 0xa5; }
size_t red_zone_end(size_t bytes) { return (std::max<size_t>(bytes, 1) + 255) / 256 * 256 + kRedZoneBytes; }
void check_red_zones(const char* file, int line) {
    for (const auto& [base, bytes] : device_allocs) {
        const auto* p = reinterpret_cast<const unsigned char*>(base);
        size_t past = 0;  // how far past the end the farthest changed byte lies
        for (size_t k = bytes; k < red_zone_end(bytes); ++k)
            if (p[k] != red_zone_byte(base + k)) past = k - bytes + 1;
        if (past)
            throw std::runtime_error("CUDA emulation: the kernel launched at " + std::string(file) + ":" + std::to_string(line) +
                                     " wrote up to " + std::to_string(past) + " bytes past the end of a " +
                                     std::to_string(bytes) + "-byte allocation");
    }
}
bool is_pinned(const void* p, size_t bytes) { return inside(pinned_allocs, p, bytes); }

// ---- capture ----------------------------------------------------------------------------------
Capture* active = nullptr;  // one capture at a time (the engine never nests or overlaps them)

// A call that a non-relaxed capture forbids (it may synchronize or allocate): refused, and the
// capture is invalidated, as CUDA does.
cudaError_t unsafe_call(const char* what) {
    if (!active || active->mode == cudaStreamCaptureModeRelaxed) return cudaSuccess;
    active->invalidated = true;
    return fail(cudaErrorStreamCaptureUnsupported, std::string(what) + " during a stream capture (not relaxed)");
}

double now_seconds() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// ---- blocks as fibers -------------------------------------------------------------------------
enum class FiberState { Runnable, AtBarrier, AtWarp, Done };
struct Fiber {
    FiberState state;
    ThreadState ts;
};
FiberStacks stacks;
std::vector<Fiber> fibers;
std::vector<uint64_t> exchange;  // per warp: two rounds of 32 lanes' slots
size_t running = 0;
Body* body = nullptr;
const bool reverse_order = [] {
    const char* e = std::getenv("SIAMESE_EMU_REVERSE");
    return e && *e && *e != '0';
}();
// The k-th of n (threads, lanes, warps or blocks) to run: index order, or its reverse.
unsigned long long in_order(unsigned long long k, unsigned long long n) { return reverse_order ? n - 1 - k : k; }

void fiber_entry(void* arg) {
    const size_t i = reinterpret_cast<size_t>(arg);
    body->run();
    fibers[i].state = FiberState::Done;
    stacks.suspend(i);  // never resumed again
}

std::string where() {
    const BlockState& b = current_block;
    return "block (" + std::to_string(b.idx.x) + ", " + std::to_string(b.idx.y) + ", " + std::to_string(b.idx.z) + ")";
}

// While a warp's lanes run as plain calls (see run_block): the lane that returned without
// waiting; none of the others may wait.
constexpr unsigned kNone = ~0u;
unsigned direct_lane = kNone;

void suspend_as(FiberState s) {
    const size_t i = running;
    if (direct_lane != kNone)
        fatal(where() + ": thread " + std::to_string(i) + " waits at a barrier or warp exchange that thread " +
              std::to_string(direct_lane) + " of its warp returned without reaching (a barrier in divergent code)");
    fibers[i].state = s;
    stacks.suspend(i);
}

void run_block(unsigned n) {
    direct_lane = kNone;  // after an error thrown from the last block, the state starts afresh
    stacks.reserve(n);
    fibers.resize(n);
    const dim3 d = current_block.dim;
    for (unsigned i = 0; i < n; ++i) {
        Fiber& f = fibers[i];
        f.state = FiberState::Runnable;
        f.ts.linear = i;
        f.ts.idx = {i % d.x, i / d.x % d.y, i / (d.x * d.y)};
        f.ts.warp_sync = 0;
    }
    const unsigned warps = (n + 31) / 32;
    exchange.assign(size_t(warps) * 64, ~uint64_t(0));
    // Warp by warp, its first lane alone: if it returns without waiting, the warp's path has no
    // barrier or exchange, and its other lanes run as plain calls (no switches); one of them
    // waiting then is a barrier or exchange in divergent code, reported as such. Otherwise the
    // warp's lanes are fibers, run by the loop below. (Whole warps may return early: legal.)
    bool all_done = true;
    for (unsigned k = 0; k < warps; ++k) {
        const unsigned w = unsigned(in_order(k, warps));
        const unsigned a = 32 * w, b = std::min(n, a + 32), first = a + unsigned(in_order(0, b - a));
        running = first;
        current_thread = &fibers[first].ts;
        stacks.start(first, fiber_entry, reinterpret_cast<void*>(size_t(first)));
        stacks.resume(first);
        if (fibers[first].state == FiberState::Done) {
            direct_lane = first;
            for (unsigned j = 1; j < b - a; ++j) {
                const unsigned i = a + unsigned(in_order(j, b - a));
                running = i;
                current_thread = &fibers[i].ts;
                body->run();
                fibers[i].state = FiberState::Done;
            }
            direct_lane = kNone;
        } else {
            all_done = false;
            for (unsigned i = a; i < b; ++i)
                if (i != first) stacks.start(i, fiber_entry, reinterpret_cast<void*>(size_t(i)));
        }
    }
    if (all_done) return;
    for (;;) {
        for (unsigned k = 0; k < n; ++k) {
            const unsigned i = unsigned(in_order(k, n));
            if (fibers[i].state != FiberState::Runnable) continue;
            running = i;
            current_thread = &fibers[i].ts;
            stacks.resume(i);
        }
        unsigned done = 0, barrier = 0;
        for (const Fiber& f : fibers) {
            done += f.state == FiberState::Done;
            barrier += f.state == FiberState::AtBarrier;
        }
        if (done == n) return;
        bool released = false;
        for (unsigned w = 0; w < warps; ++w) {
            const unsigned a = 32 * w, b = std::min(n, a + 32);
            unsigned at = 0, gone = 0;
            for (unsigned i = a; i < b; ++i) {
                at += fibers[i].state == FiberState::AtWarp;
                gone += fibers[i].state == FiberState::Done;
            }
            if (at == 0 || at + gone != b - a) continue;
            if (gone)
                fatal(where() + ": a warp exchange or __syncwarp in warp " + std::to_string(w) + " reached by " +
                      std::to_string(at) + " lanes while " + std::to_string(gone) + " have returned");
            for (unsigned i = a; i < b; ++i) fibers[i].state = FiberState::Runnable;
            released = true;
        }
        if (released) continue;
        if (barrier && barrier + done == n) {
            if (done)
                fatal(where() + ": __syncthreads reached by " + std::to_string(barrier) + " of " + std::to_string(n) +
                      " threads; the others have returned (a barrier in divergent code)");
            for (Fiber& f : fibers) f.state = FiberState::Runnable;
            continue;
        }
        fatal(where() + ": deadlock: " + std::to_string(barrier) + " threads wait at __syncthreads, " +
              std::to_string(n - done - barrier) + " at a warp exchange or __syncwarp, " + std::to_string(done) + " returned");
    }
}

struct Grid {
    Config config;
    std::shared_ptr<Body> body;
};

std::vector<unsigned char> smem_buffer;
void run_grid(const Grid& g) {
    const dim3 gr = g.config.grid, bl = g.config.block;
    const unsigned n = bl.x * bl.y * bl.z;
    smem_buffer.resize(g.config.smem + 64);
    auto* smem = reinterpret_cast<unsigned char*>((reinterpret_cast<uintptr_t>(smem_buffer.data()) + 63) & ~uintptr_t(63));
    Body* saved = body;
    body = g.body.get();
    current_block.dim = bl;
    current_block.grid = gr;
    current_block.dynamic_smem = smem;
    const unsigned long long blocks = 1ull * gr.x * gr.y * gr.z;
    for (unsigned long long k = 0; k < blocks; ++k) {
        const unsigned long long b = in_order(k, blocks);
        current_block.idx = {unsigned(b % gr.x), unsigned(b / gr.x % gr.y), unsigned(b / (1ull * gr.x * gr.y))};
        std::memset(smem, 0xFF, g.config.smem);  // NaN: what a block reads before writing it shows
        run_block(n);
    }
    body = saved;
    current_thread = nullptr;
    check_red_zones(g.config.file, g.config.line);
}

// ---- kernels' attributes ----------------------------------------------------------------------
constexpr int kDefaultSmem = 48 * 1024;
constexpr int kOptinSmem = 232448;  // H100 and H200: 227 KB a block
std::map<const void*, int> max_dynamic_smem;

}  // namespace

bool is_device(const void* p, size_t bytes) { return inside(device_allocs, p, bytes); }

cudaError_t submit(cudaStream_t s, cudaGraphNodeType type, std::function<void()> op) {
    if (s && s->capture) {
        if (s->capture->invalidated) return cudaErrorStreamCaptureInvalidated;
        s->capture->graph->nodes.push_back(std::make_unique<CUgraphNode_st>(CUgraphNode_st{type, std::move(op)}));
        ++s->ops;
        return cudaSuccess;
    }
    op();
    return cudaSuccess;
}

void syncthreads() { suspend_as(FiberState::AtBarrier); }
void syncwarp() { suspend_as(FiberState::AtWarp); }

uint64_t warp_exchange(uint64_t mine, int (*partner)(int, int, int), int arg, int width) {
    ThreadState& t = *current_thread;
    const unsigned warp = t.linear / 32, lane = t.linear % 32, round = t.warp_sync & 1;
    uint64_t* slots = exchange.data() + size_t(warp) * 64 + round * 32;
    slots[lane] = mine;
    suspend_as(FiberState::AtWarp);
    const int src = partner(int(lane), arg, width);
    if (32 * warp + unsigned(src) >= fibers.size())
        fatal(where() + ": thread " + std::to_string(t.linear) + " reads lane " + std::to_string(src) +
              " of a warp that has no such thread");
    ++t.warp_sync;
    return slots[src];
}

bool launch(const void* kernel, const Config& c, Body* b) {
    std::shared_ptr<Body> owned(b);
    const std::string at = std::string(" (launch at ") + c.file + ":" + std::to_string(c.line) + ")";
    const unsigned long long threads = 1ull * c.block.x * c.block.y * c.block.z;
    if (threads == 0 || threads > 1024 || c.block.z > 64 || c.grid.x == 0 || c.grid.y == 0 || c.grid.z == 0 ||
        c.grid.x > 2147483647u || c.grid.y > 65535 || c.grid.z > 65535) {
        fail(cudaErrorInvalidConfiguration, "invalid launch configuration: grid (" + std::to_string(c.grid.x) + ", " +
                                                std::to_string(c.grid.y) + ", " + std::to_string(c.grid.z) + "), block (" +
                                                std::to_string(c.block.x) + ", " + std::to_string(c.block.y) + ", " +
                                                std::to_string(c.block.z) + ")" + at);
        return false;
    }
    const auto it = max_dynamic_smem.find(kernel);
    const size_t limit = it == max_dynamic_smem.end() ? size_t(kDefaultSmem) : size_t(it->second);
    if (c.smem > limit) {
        fail(cudaErrorInvalidValue, "dynamic shared memory " + std::to_string(c.smem) + " B exceeds the kernel's limit " +
                                        std::to_string(limit) + " B (cudaFuncSetAttribute raises it up to " +
                                        std::to_string(kOptinSmem) + ")" + at);
        return false;
    }
    if (c.stream && c.stream->capture && c.stream->capture->invalidated) {
        last_error = cudaErrorStreamCaptureInvalidated;
        return false;
    }
    Grid g{c, std::move(owned)};
    submit(c.stream, cudaGraphNodeTypeKernel, [g] { run_grid(g); });
    return true;
}

void require_not_capturing(cudaStream_t s, const char* what) {
    if (s && s->capture) fatal(std::string(what) + " runs on the host at once in the emulation: not inside a capture");
}

}  // namespace emu

using emu::fail;

// ---- runtime API ------------------------------------------------------------------------------
const char* cudaGetErrorString(cudaError_t e) {
    switch (e) {
        case cudaSuccess: return "no error";
        case cudaErrorInvalidValue: return "invalid argument";
        case cudaErrorMemoryAllocation: return "out of memory";
        case cudaErrorInvalidConfiguration: return "invalid configuration argument";
        case cudaErrorInvalidResourceHandle: return "invalid resource handle";
        case cudaErrorNotReady: return "device not ready";
        case cudaErrorIllegalState: return "the operation cannot be performed in the present state";
        case cudaErrorNoDevice: return "no CUDA-capable device is detected";
        case cudaErrorLaunchFailure: return "unspecified launch failure";
        case cudaErrorStreamCaptureUnsupported: return "operation not permitted when stream is capturing";
        case cudaErrorStreamCaptureInvalidated: return "operation failed due to a previous error during capture";
        case cudaErrorStreamCaptureUnjoined: return "capture was not joined";
        case cudaErrorStreamCaptureImplicit: return "operation would make the legacy stream depend on a capturing blocking stream";
    }
    return "unknown error";
}
cudaError_t cudaGetLastError() { return std::exchange(emu::last_error, cudaSuccess); }
cudaError_t cudaPeekAtLastError() { return emu::last_error; }
cudaError_t cudaGetDeviceCount(int* n) {
    *n = 1;
    return cudaSuccess;
}
cudaError_t cudaGetDevice(int* d) {
    *d = 0;
    return cudaSuccess;
}
cudaError_t cudaSetDevice(int d) { return d == 0 ? cudaSuccess : fail(cudaErrorInvalidValue, "cudaSetDevice: one device"); }
cudaError_t cudaDeviceGetAttribute(int* v, cudaDeviceAttr a, int) {
    if (a != cudaDevAttrMaxSharedMemoryPerBlockOptin) return fail(cudaErrorInvalidValue, "cudaDeviceGetAttribute: not emulated");
    *v = emu::kOptinSmem;
    return cudaSuccess;
}
cudaError_t cudaDeviceSynchronize() { return emu::unsafe_call("cudaDeviceSynchronize"); }

namespace emu {
namespace {
// An allocation recorded in `allocs` (device or pinned), 256-byte aligned as cudaMalloc's are,
// with its red zone after it.
cudaError_t allocate(std::map<uintptr_t, size_t>& allocs, void** p, size_t bytes, const char* what) {
    if (const cudaError_t e = unsafe_call(what)) return e;
    const size_t end = red_zone_end(bytes);
    *p = std::aligned_alloc(256, end);
    if (!*p) return fail(cudaErrorMemoryAllocation, std::string(what) + ": out of memory");
    std::memset(*p, 0xFF, bytes);  // a real allocation holds garbage: NaN shows who reads it unwritten
    auto* bytes_of = static_cast<unsigned char*>(*p);
    for (size_t k = bytes; k < end; ++k) bytes_of[k] = red_zone_byte(reinterpret_cast<uintptr_t>(bytes_of + k));
    allocs[reinterpret_cast<uintptr_t>(*p)] = bytes;
    return cudaSuccess;
}
cudaError_t release(std::map<uintptr_t, size_t>& allocs, void* p, const char* what) {
    if (!p) return cudaSuccess;
    if (const cudaError_t e = unsafe_call(what)) return e;
    if (!allocs.erase(reinterpret_cast<uintptr_t>(p)))
        return fail(cudaErrorInvalidValue, std::string(what) + " of a pointer its allocator did not return");
    std::free(p);
    return cudaSuccess;
}
}  // namespace
}  // namespace emu

cudaError_t cudaMalloc(void** p, size_t bytes) { return emu::allocate(emu::device_allocs, p, bytes, "cudaMalloc"); }
cudaError_t cudaFree(void* p) { return emu::release(emu::device_allocs, p, "cudaFree"); }
cudaError_t cudaMallocHost(void** p, size_t bytes) { return emu::allocate(emu::pinned_allocs, p, bytes, "cudaMallocHost"); }
cudaError_t cudaFreeHost(void* p) { return emu::release(emu::pinned_allocs, p, "cudaFreeHost"); }

cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t s) {
    if (bytes == 0) return cudaSuccess;
    const bool dd = emu::is_device(dst, bytes), sd = emu::is_device(src, bytes);
    const bool ok = kind == cudaMemcpyDefault || (kind == cudaMemcpyHostToDevice && dd && !sd) ||
                    (kind == cudaMemcpyDeviceToHost && !dd && sd) || (kind == cudaMemcpyDeviceToDevice && dd && sd) ||
                    (kind == cudaMemcpyHostToHost && !dd && !sd);
    if (!ok)
        return fail(cudaErrorInvalidValue, "cudaMemcpy of " + std::to_string(bytes) + " B, kind " + std::to_string(int(kind)) +
                                               ": the " + (dd ? "destination is" : "destination is not") + " device memory, the " +
                                               (sd ? "source is" : "source is not") + " (or a range runs past its allocation)");
    if (s && s->capture) {
        const void* host = kind == cudaMemcpyHostToDevice ? src : kind == cudaMemcpyDeviceToHost ? dst : nullptr;
        if (host && !emu::is_pinned(host, bytes)) {
            s->capture->invalidated = true;
            return fail(cudaErrorStreamCaptureUnsupported, "a captured copy to or from pageable host memory");
        }
    }
    return emu::submit(s, cudaGraphNodeTypeMemcpy, [=] { std::memcpy(dst, src, bytes); });
}
cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
    if (const cudaError_t e = emu::unsafe_call("cudaMemcpy")) return e;
    return cudaMemcpyAsync(dst, src, bytes, kind, nullptr);
}
cudaError_t cudaMemsetAsync(void* p, int value, size_t bytes, cudaStream_t s) {
    if (bytes == 0) return cudaSuccess;
    if (!emu::is_device(p, bytes)) return fail(cudaErrorInvalidValue, "cudaMemset outside device memory");
    return emu::submit(s, cudaGraphNodeTypeMemset, [=] { std::memset(p, value, bytes); });
}
cudaError_t cudaMemset(void* p, int value, size_t bytes) {
    if (const cudaError_t e = emu::unsafe_call("cudaMemset")) return e;
    return cudaMemsetAsync(p, value, bytes, nullptr);
}

cudaError_t cudaStreamCreate(cudaStream_t* s) { return cudaStreamCreateWithFlags(s, cudaStreamDefault); }
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned) {
    *s = new CUstream_st;
    return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t s) {
    if (s && s->capture) return fail(cudaErrorIllegalState, "cudaStreamDestroy of a capturing stream");
    delete s;
    return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t s) {
    if (s && s->capture) {
        s->capture->invalidated = true;
        return fail(cudaErrorStreamCaptureUnsupported, "cudaStreamSynchronize of a capturing stream");
    }
    return emu::unsafe_call("cudaStreamSynchronize");
}
cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode mode) {
    if (!s) return fail(cudaErrorStreamCaptureUnsupported, "the legacy default stream cannot be captured");
    if (emu::active) return fail(cudaErrorIllegalState, "a second capture while one is active (not emulated)");
    emu::active = new Capture{s, mode, false, std::make_unique<CUgraph_st>(), {}};
    emu::active->members.push_back(s);
    s->capture = emu::active;
    s->ops = s->joined = 0;
    return cudaSuccess;
}
cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t* g) {
    *g = nullptr;
    Capture* c = s ? s->capture : nullptr;
    if (!c || c->origin != s) return fail(cudaErrorIllegalState, "cudaStreamEndCapture on a stream that did not begin one");
    std::unique_ptr<Capture> owned(c);
    emu::active = nullptr;
    bool unjoined = false;
    for (CUstream_st* m : c->members) {
        if (m != s && m->ops > m->joined) unjoined = true;
        m->capture = nullptr;
    }
    if (c->invalidated) return fail(cudaErrorStreamCaptureInvalidated, "the capture was invalidated by an earlier error");
    if (unjoined)
        return fail(cudaErrorStreamCaptureUnjoined,
                    "a stream forked into the capture has work the origin stream never waited for (join it back with an event)");
    *g = c->graph.release();
    return cudaSuccess;
}
cudaError_t cudaStreamIsCapturing(cudaStream_t s, cudaStreamCaptureStatus* status) {
    *status = s && s->capture ? (s->capture->invalidated ? cudaStreamCaptureStatusInvalidated : cudaStreamCaptureStatusActive)
                              : cudaStreamCaptureStatusNone;
    return cudaSuccess;
}
cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned) {
    if (!e) return fail(cudaErrorInvalidResourceHandle, "cudaStreamWaitEvent: no event");
    Capture* c = e->capture;
    if (c && c == emu::active) {
        if (!s) return fail(cudaErrorStreamCaptureImplicit, "the legacy stream waits on a captured event");
        if (!s->capture) {  // a fork: s joins the capture
            s->capture = c;
            s->ops = s->joined = 0;
            c->members.push_back(s);
        } else if (e->stream && e->stream != s) {  // a join: s has waited for e's stream up to e
            e->stream->joined = std::max(e->stream->joined, e->ops);
        }
    }
    return cudaSuccess;
}

cudaError_t cudaEventCreate(cudaEvent_t* e) { return cudaEventCreateWithFlags(e, cudaEventDefault); }
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned flags) {
    *e = new CUevent_st;
    (*e)->flags = flags;
    return cudaSuccess;
}
cudaError_t cudaEventDestroy(cudaEvent_t e) {
    delete e;
    return cudaSuccess;
}
cudaError_t cudaEventRecordWithFlags(cudaEvent_t e, cudaStream_t s, unsigned flags) {
    if (!e) return fail(cudaErrorInvalidResourceHandle, "cudaEventRecord: no event");
    if (s && s->capture) {
        if (flags & cudaEventRecordExternal) {  // a node: the time is taken when the graph runs there
            e->capture = nullptr;
            e->recorded = false;
            return emu::submit(s, cudaGraphNodeTypeEventRecord, [e] {
                e->recorded = true;
                e->seconds = emu::now_seconds();
            });
        }
        e->capture = s->capture;  // a point in the capture for other streams to wait on: no node
        e->stream = s;
        e->ops = s->ops;
        e->recorded = false;
        return cudaSuccess;
    }
    e->capture = nullptr;
    e->stream = s;
    e->recorded = true;
    e->seconds = emu::now_seconds();
    return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s) { return cudaEventRecordWithFlags(e, s, cudaEventRecordDefault); }
cudaError_t cudaEventSynchronize(cudaEvent_t e) {
    if (e && e->capture) return fail(cudaErrorStreamCaptureUnsupported, "cudaEventSynchronize of a captured event");
    return cudaSuccess;
}
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t a, cudaEvent_t b) {
    if (!a || !b || (a->flags & cudaEventDisableTiming) || (b->flags & cudaEventDisableTiming))
        return fail(cudaErrorInvalidResourceHandle, "cudaEventElapsedTime of an event without timing");
    if (!a->recorded || !b->recorded) return fail(cudaErrorNotReady, "cudaEventElapsedTime of an event never recorded (or only captured)");
    *ms = float((b->seconds - a->seconds) * 1e3);
    return cudaSuccess;
}

cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t g, unsigned long long) {
    if (!g) return fail(cudaErrorInvalidValue, "cudaGraphInstantiate: no graph");
    *exec = new CUgraphExec_st;
    for (const auto& n : g->nodes) (*exec)->ops.push_back(n->run);
    return cudaSuccess;
}
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t s) {
    if (!exec) return fail(cudaErrorInvalidValue, "cudaGraphLaunch: no graph");
    if (s && s->capture) return fail(cudaErrorStreamCaptureUnsupported, "a graph launched into a capture (not emulated)");
    for (const auto& op : exec->ops) op();
    return cudaSuccess;
}
cudaError_t cudaGraphDestroy(cudaGraph_t g) {
    delete g;
    return cudaSuccess;
}
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
    delete exec;
    return cudaSuccess;
}
cudaError_t cudaGraphGetNodes(cudaGraph_t g, cudaGraphNode_t* nodes, size_t* count) {
    if (!g) return fail(cudaErrorInvalidValue, "cudaGraphGetNodes: no graph");
    if (nodes)
        for (size_t i = 0; i < std::min(*count, g->nodes.size()); ++i) nodes[i] = g->nodes[i].get();
    *count = g->nodes.size();
    return cudaSuccess;
}
cudaError_t cudaGraphNodeGetType(cudaGraphNode_t node, cudaGraphNodeType* type) {
    if (!node) return fail(cudaErrorInvalidValue, "cudaGraphNodeGetType: no node");
    *type = node->type;
    return cudaSuccess;
}
cudaError_t cudaFuncSetAttribute(const void* func, cudaFuncAttribute attr, int value) {
    if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize) return fail(cudaErrorInvalidValue, "cudaFuncSetAttribute: not emulated");
    if (value < 0 || value > emu::kOptinSmem)
        return fail(cudaErrorInvalidValue, "cudaFuncSetAttribute: " + std::to_string(value) + " B of dynamic shared memory is over the device's " +
                                               std::to_string(emu::kOptinSmem));
    emu::max_dynamic_smem[func] = value;
    return cudaSuccess;
}
cudaError_t cudaFuncGetAttributes(cudaFuncAttributes* attr, const void* func) {
    *attr = cudaFuncAttributes{};
    const auto it = emu::max_dynamic_smem.find(func);
    if (it != emu::max_dynamic_smem.end()) attr->maxDynamicSharedSizeBytes = it->second;
    return cudaSuccess;
}

// ---- cuBLAS -----------------------------------------------------------------------------------
cublasStatus_t cublasCreate(cublasHandle_t* h) {
    *h = new cublasContext;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasDestroy(cublasHandle_t h) {
    delete h;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetStream(cublasHandle_t h, cudaStream_t s) {
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    h->stream = s;
    h->workspace = nullptr;  // as cuBLAS documents: setting the stream resets the workspace
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasGetStream(cublasHandle_t h, cudaStream_t* s) {
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    *s = h->stream;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetWorkspace(cublasHandle_t h, void* w, size_t) {
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    h->workspace = w;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetMathMode(cublasHandle_t h, cublasMath_t mode) {
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    h->math = mode;
    return CUBLAS_STATUS_SUCCESS;
}

namespace {
float tf32_round(float x) {  // to nearest, ties to even, on the 13 dropped fraction bits
    uint32_t u;
    std::memcpy(&u, &x, 4);
    if ((u & 0x7f800000u) != 0x7f800000u) u = (u + 0xfffu + ((u >> 13) & 1u)) & ~0x1fffu;
    std::memcpy(&x, &u, 4);
    return x;
}
}  // namespace

cublasStatus_t cublasSgemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                           const float* alpha, const float* a, int lda, const float* b, int ldb, const float* beta, float* c,
                           int ldc) {
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (m < 0 || n < 0 || k < 0 || ldc < std::max(1, m) || lda < std::max(1, ta == CUBLAS_OP_N ? m : k) ||
        ldb < std::max(1, tb == CUBLAS_OP_N ? k : n))
        return CUBLAS_STATUS_INVALID_VALUE;
    // Each matrix inside one device allocation (its last column ends at ld * (cols - 1) + rows):
    // where a real SGEMM would fault.
    auto in_device = [](const float* p, int rows, int cols, int ld) {
        return rows == 0 || cols == 0 || emu::is_device(p, (size_t(ld) * (cols - 1) + rows) * sizeof(float));
    };
    const bool na = ta == CUBLAS_OP_N, nb = tb == CUBLAS_OP_N;
    if (!in_device(a, na ? m : k, na ? k : m, lda) || !in_device(b, nb ? k : n, nb ? n : k, ldb) || !in_device(c, m, n, ldc)) {
        std::fprintf(stderr, "CUDA emulation: cublasSgemm (m %d, n %d, k %d): a matrix is not inside one device allocation\n",
                     m, n, k);
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    const float al = *alpha, be = *beta;  // host pointers: read now, as cuBLAS's host pointer mode does
    const bool tf32 = h->math == CUBLAS_TF32_TENSOR_OP_MATH;
    emu::submit(h->stream, cudaGraphNodeTypeKernel, [=] {
        auto in = [tf32](float v) { return tf32 ? tf32_round(v) : v; };
        // op(A) as m rows of k, op(B)^T as n rows of k: each product a walk along two rows, in
        // eight float lanes (vectorised), added at the end: FP32 sums in another order than
        // cuBLAS's, which no test may depend on.
        std::vector<float> ar(size_t(m) * k), br(size_t(n) * k);
        for (int i = 0; i < m; ++i)
            for (int p = 0; p < k; ++p) ar[size_t(i) * k + p] = in(ta == CUBLAS_OP_N ? a[i + size_t(p) * lda] : a[p + size_t(i) * lda]);
        for (int j = 0; j < n; ++j)
            for (int p = 0; p < k; ++p) br[size_t(j) * k + p] = in(tb == CUBLAS_OP_N ? b[p + size_t(j) * ldb] : b[j + size_t(p) * ldb]);
        for (int j = 0; j < n; ++j)
            for (int i = 0; i < m; ++i) {
                const float* x = ar.data() + size_t(i) * k;
                const float* y = br.data() + size_t(j) * k;
                float lane[8] = {};
                int p = 0;
                for (; p + 8 <= k; p += 8)
                    for (int l = 0; l < 8; ++l) lane[l] += x[p + l] * y[p + l];
                for (; p < k; ++p) lane[0] += x[p] * y[p];
                const float s = ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
                float& out = c[i + size_t(j) * ldc];
                out = be == 0.0f ? al * s : al * s + be * out;
            }
    });
    return CUBLAS_STATUS_SUCCESS;
}
