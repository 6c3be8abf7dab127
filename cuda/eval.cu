// Evaluation on the GPU: test-time flip averaging (mirror images, mean embedding), pair
// distances from the embeddings, and the ROC AUC's sort by distance
// with Thrust (the O(n) rank sum over the sorted labels follows on the host).
#include <thrust/device_ptr.h>
#include <thrust/execution_policy.h>
#include <thrust/sort.h>

#include <limits>
#include <vector>

#include "buffer.hpp"
#include "check.hpp"
#include "kernels.hpp"
#include "launch.hpp"
#include "nvtx.hpp"
#include "siamese/rules.hpp"

namespace siamese::cuda {

namespace {

__global__ void pair_distance_kernel(const float* __restrict__ emb, int E, const int* __restrict__ a,
                                     const int* __restrict__ b, int n, float* __restrict__ d) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const float* x = emb + size_t(a[i]) * E;
    const float* y = emb + size_t(b[i]) * E;
    float s = 0.0f;
    for (int k = 0; k < E; ++k) s += (x[k] - y[k]) * (x[k] - y[k]);
    d[i] = safe_distance(s);
}

// One thread per output pixel: out (n, H, W) = in mirrored left-right.
template <class X>
__global__ void mirror_kernel(float* __restrict__ out, X in, long total, int W) {
    const long t = long(blockIdx.x) * blockDim.x + threadIdx.x;
    if (t >= total) return;
    const long row = t / W;
    const int x = int(t - row * W);
    out[t] = in[row * W + (W - 1 - x)];
}

// One thread per row, sequential over k as the CPU reference (E is ~50-128: not worth a warp).
__global__ void flip_average_kernel(float* __restrict__ a, const float* __restrict__ b, int n, int E, bool l2) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float* x = a + size_t(i) * E;
    const float* y = b + size_t(i) * E;
    float sq = 0.0f;
    for (int k = 0; k < E; ++k) {
        x[k] = (x[k] + y[k]) * 0.5f;
        sq += x[k] * x[k];
    }
    if (!l2) return;
    const float r = l2_norm_clamped(sq);
    for (int k = 0; k < E; ++k) x[k] /= r;
}

}  // namespace

void mirror_images(float* out, ImageIn in, int n, int H, int W, cudaStream_t stream) {
    NvtxRange r("mirror_images");
    const long total = long(n) * H * W;
    if (total == 0) return;
    in.visit([&](auto x) {
        mirror_kernel<decltype(x)><<<blocks_for(total), kThreads, 0, stream>>>(out, x, total, W);
        CUDA_CHECK_LAUNCH();
    });
}

void flip_average(float* a, const float* b, int n, int E, bool l2, cudaStream_t stream) {
    NvtxRange r("flip_average");
    if (n == 0) return;
    flip_average_kernel<<<blocks_for(n), kThreads, 0, stream>>>(a, b, n, E, l2);
    CUDA_CHECK_LAUNCH();
}

void pair_distances(float* d, const float* emb, int E, const int* a, const int* b, int n, cudaStream_t stream) {
    NvtxRange r("pair_distances");
    pair_distance_kernel<<<blocks_for(n), kThreads, 0, stream>>>(emb, E, a, b, n, d);
    CUDA_CHECK_LAUNCH();
}

double roc_auc_device(const float* d, const float* y, int n, cudaStream_t stream) {
    NvtxRange r("roc_auc_device");
    DeviceBuffer<float> keys(n), vals(n);
    CUDA_CHECK(cudaMemcpyAsync(keys.get(), d, size_t(n) * sizeof(float), cudaMemcpyDeviceToDevice, stream));
    CUDA_CHECK(cudaMemcpyAsync(vals.get(), y, size_t(n) * sizeof(float), cudaMemcpyDeviceToDevice, stream));
    thrust::stable_sort_by_key(thrust::cuda::par.on(stream), thrust::device_pointer_cast(keys.get()),
                               thrust::device_pointer_cast(keys.get() + n), thrust::device_pointer_cast(vals.get()));
    CUDA_CHECK(cudaStreamSynchronize(stream));
    const std::vector<float> ks = keys.download(), ys = vals.download();
    double rank_sum_imp = 0;
    long n_gen = 0, n_imp = 0;
    for (int k = 0; k < n;) {
        int e = k;
        while (e < n && ks[e] == ks[k]) ++e;
        const double avg_rank = 0.5 * double(k + 1 + e);
        for (int j = k; j < e; ++j) {
            if (ys[j] > 0.5f) {
                ++n_gen;
            } else {
                ++n_imp;
                rank_sum_imp += avg_rank;
            }
        }
        k = e;
    }
    if (n_gen == 0 || n_imp == 0) return std::numeric_limits<double>::quiet_NaN();
    return (rank_sum_imp - double(n_imp) * double(n_imp + 1) / 2.0) / (double(n_gen) * double(n_imp));
}

}  // namespace siamese::cuda
