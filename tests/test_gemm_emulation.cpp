// The custom GEMM (--gemm custom, cuda/gemm.cu) run on the CPU phase by phase, thread by thread
// (gemm_reference.hpp): every output written once and nothing else, its documented order bit for
// bit, a double reference within FP32 rounding, and its plan (tiles, splits, scratch) held for
// the reference step's three products.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <random>
#include <tuple>
#include <vector>

#include "gemm_reference.hpp"
#include "test_util.hpp"

using namespace siamese::cuda;

namespace {

struct Case {
    int M, N, K;
    bool a_kc, b_kc;
};

// max |got - ref| / max |ref| over the outputs: FP32 sums of K products in [-1, 1] land near
// sqrt(K) x 6e-8 of the largest output; 1e-5 leaves room for K up to a few thousand and still
// catches any product added twice, dropped or misplaced (an error of one product is ~1/sqrt(K)
// of an output: 3e-2 at K = 1440).
double max_rel(const std::vector<float>& got, const std::vector<double>& ref) {
    double err = 0, scale = 0;
    for (size_t i = 0; i < ref.size(); ++i) {
        err = std::max(err, std::fabs(double(got[i]) - ref[i]));
        scale = std::max(scale, std::fabs(ref[i]));
    }
    return scale > 0 ? err / scale : err;
}

}  // namespace

TEST_CASE("the custom GEMM's phases run on the CPU give its documented order's bits and the double products",
          "[gemm][emulation]") {
    std::mt19937_64 r(907);
    // The reference step's three dense1 products at batch 128 (forward: x . W^T; dW = d^T . x;
    // dx = d . W), the unfused dense2 forward, batch-1 and odd shapes in every direction, K = 0.
    std::vector<Case> cases = {{256, 128, 1440, true, true}, {128, 1440, 256, false, false}, {256, 1440, 128, true, false},
                               {256, 50, 128, true, true},   {2, 128, 1440, true, true},     {1, 1, 1, true, true},
                               {3, 5, 17, false, true},      {70, 33, 257, true, false},     {65, 31, 1000, false, false},
                               {129, 97, 64, true, true},    {4, 3, 0, true, true}};
    std::vector<float> partial(kGemmPartialFloats);
    for (const Case& cs : cases) {
        INFO("M " << cs.M << " N " << cs.N << " K " << cs.K << " a_kc " << cs.a_kc << " b_kc " << cs.b_kc);
        const auto ad = testutil::random_vector(size_t(cs.M) * cs.K, r, -1, 1),
                   bd = testutil::random_vector(size_t(cs.K) * cs.N, r, -1, 1);
        const std::vector<float> a(ad.begin(), ad.end()), b(bd.begin(), bd.end());
        const int ldc = cs.N + 3;  // columns past N must stay untouched
        std::vector<float> c(size_t(cs.M) * ldc, std::nanf("")), want(c.size(), std::nanf(""));
        const GemmArgs g = gemmtest::args(c.data(), ldc, a.data(), cs.a_kc, b.data(), cs.b_kc, cs.M, cs.N, cs.K, partial.data());

        // The plan: no empty split, every k in one, scratch and counters within their bounds.
        CHECK(g.splits >= 1);
        CHECK(g.kchunk % kGemmBK == 0);
        CHECK(long(g.splits) * g.kchunk >= cs.K);
        CHECK((cs.K == 0 || long(g.splits - 1) * g.kchunk < cs.K));
        if (g.splits > 1) {
            CHECK(size_t(gemm_tiles(g)) * g.splits * kGemmTileFloats <= kGemmPartialFloats);
            CHECK(size_t(gemm_tiles(g)) <= kGemmCounters);
        }

        gemmtest::emulate_gemm(g);
        GemmArgs doc = g;
        doc.c = want.data();
        gemmtest::documented_product(doc, want.data());
        std::vector<double> ref(size_t(cs.M) * cs.N, 0.0);
        std::vector<float> got(ref.size());
        bool outside_untouched = true;
        for (int m = 0; m < cs.M; ++m) {
            for (int n = 0; n < cs.N; ++n) {
                double s = 0;
                for (int k = 0; k < cs.K; ++k) s += double(gemmtest::a_at(g, m, k)) * gemmtest::b_at(g, k, n);
                ref[size_t(m) * cs.N + n] = s;
                got[size_t(m) * cs.N + n] = c[size_t(m) * ldc + n];
            }
            for (int n = cs.N; n < ldc; ++n) outside_untouched &= std::isnan(c[size_t(m) * ldc + n]);
        }
        CHECK(outside_untouched);
        bool finite = true;
        for (float v : got) finite &= std::isfinite(v);
        REQUIRE(finite);  // every output written
        CHECK(std::memcmp(c.data(), want.data(), c.size() * sizeof(float)) == 0);  // NaN columns included
        CHECK(max_rel(got, ref) < 1e-5);
    }
}

TEST_CASE("the custom GEMM's plan for the reference step's products", "[gemm][plan]") {
    // Held where they are: what the first GPU run measures (docs/gpu-speed.md). tiles x splits
    // is the launch's block count.
    auto plan = [](int M, int N, int K) { return gemmtest::args(nullptr, N, nullptr, true, nullptr, true, M, N, K, nullptr); };
    const GemmArgs fwd = plan(256, 128, 1440), dw = plan(128, 1440, 256), dx = plan(256, 1440, 128);
    CHECK(std::make_tuple(gemm_tiles(fwd), fwd.splits, fwd.kchunk) == std::make_tuple(16, 9, 160));
    CHECK(std::make_tuple(gemm_tiles(dw), dw.splits, dw.kchunk) == std::make_tuple(90, 2, 128));
    CHECK(std::make_tuple(gemm_tiles(dx), dx.splits) == std::make_tuple(180, 1));
    // Large batches are not split (8192 pairs: 16,384 images).
    CHECK(plan(16384, 128, 1440).splits == 1);
    // K is split at most into ceil(K / kGemmMinSplitK) parts, whatever the tiles.
    CHECK(plan(4, 4, 100).splits == 2);
}
