// The machine's fp32 multiply-add peak, for tools/bench.sh's "fraction of the FLOP floor": every
// thread runs independent chains of vector FMAs (enough chains to hide the latency), with the
// same compiler flags as the CPU engine (-march=native). Prints GFLOP/s (2 flops per FMA).
//   usage: fma_peak [THREADS]      (default: OpenMP's)
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include <omp.h>

typedef float vf __attribute__((vector_size(64)));

int main(int argc, char** argv) {
    if (argc > 1 && (std::string_view(argv[1]) == "--help" || std::string_view(argv[1]) == "-h")) {
        std::printf("usage: fma_peak [THREADS]\nPrints the fp32 FMA peak of this machine in GFLOP/s.\n");
        return 0;
    }
    const int threads = argc > 1 ? std::atoi(argv[1]) : omp_get_max_threads();
    if (threads < 1) {
        std::fprintf(stderr, "fma_peak: THREADS must be a positive integer\n");
        return 2;
    }
    constexpr int kChains = 12;  // > latency (4) x ports (2) on current x86 cores
    const long iters = 40000000;
    double best = 0;
    for (int rep = 0; rep < 3; ++rep) {
        float sink = 0;
        const auto t0 = std::chrono::steady_clock::now();
#pragma omp parallel num_threads(threads) reduction(+ : sink)
        {
            vf acc[kChains];
            const vf a = vf{} + 0.999999f, b = vf{} + 1e-7f;
            for (int c = 0; c < kChains; ++c) acc[c] = vf{} + float(c + omp_get_thread_num());
            for (long i = 0; i < iters; ++i)
#pragma GCC unroll 12
                for (int c = 0; c < kChains; ++c) acc[c] = acc[c] * a + b;
            for (int c = 0; c < kChains; ++c) sink += acc[c][0];
        }
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        const double gflops = 2.0 * kChains * (sizeof(vf) / sizeof(float)) * double(iters) * threads / s / 1e9;
        if (gflops > best) best = gflops;
        if (sink == 12345.0f) std::printf(" ");  // keeps the chains alive
    }
    std::printf("%.1f\n", best);
    return 0;
}
