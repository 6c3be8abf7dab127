#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "siamese/common.hpp"
#include "siamese/dataset.hpp"
#include "siamese/half.hpp"
#include "siamese/synth.hpp"
#include "test_util.hpp"

using namespace siamese;

namespace {
PgmImage ramp(int w, int h) {
    PgmImage img;
    img.width = w;
    img.height = h;
    img.maxval = 255;
    for (int i = 0; i < w * h; ++i) img.samples.push_back(uint16_t(i % 256));
    return img;
}
}  // namespace

TEST_CASE("natural order sorts numbers by value", "[dataset]") {
    CHECK(natural_less("s2", "s10"));
    CHECK_FALSE(natural_less("s10", "s2"));
    CHECK(natural_less("a", "b"));
    CHECK(natural_less("img9.pgm", "img10.pgm"));
    CHECK(natural_less("s01", "s2"));
}

TEST_CASE("stride and area preprocessing", "[dataset]") {
    const PgmImage img = ramp(5, 4);  // samples 0..19
    int h, w;
    Preprocess pp;
    pp.downsample = 2;
    auto s = preprocess(img, pp, &h, &w);
    CHECK((h == 2 && w == 3));  // img[::2, ::2]
    CHECK(s[0] == Approx(0.0));
    CHECK(s[1] == Approx(2 / 255.0));
    CHECK(s[3] == Approx(10 / 255.0));
    pp.mode = ResizeMode::Area;
    auto a = preprocess(img, pp, &h, &w);
    CHECK((h == 2 && w == 2));
    CHECK(a[0] == Approx((0 + 1 + 5 + 6) / 4.0 / 255.0));
    pp.downsample = 6;
    CHECK_THROWS_AS(preprocess(img, pp, &h, &w), UsageError);
}

TEST_CASE("dataset folders load in natural order with every image once", "[dataset]") {
    const std::string dir = testutil::temp_dir("dataset");
    for (int p : {1, 2, 10})
        for (int i : {1, 2, 3}) {
            std::filesystem::create_directories(dir + "/s" + std::to_string(p));
            write_pgm(dir + "/s" + std::to_string(p) + "/" + std::to_string(i) + ".pgm", ramp(8, 6));
        }
    testutil::write_bytes(dir + "/s2/notes.txt", "hello");
    const ImageBank bank = load_dataset(dir, Preprocess{});
    CHECK(bank.people == std::vector<std::string>{"s1", "s2", "s10"});
    CHECK(bank.size() == 9);
    CHECK(bank.height == 3);
    CHECK(bank.width == 4);
    CHECK(bank.pixels.size() == 9u * 12u);
    CHECK(bank.images_of[2] == std::vector<int>{6, 7, 8});
    CHECK(bank.person[4] == 1);
}

TEST_CASE("dataset errors name the folder or file, and other sizes are resized", "[dataset]") {
    const std::string dir = testutil::temp_dir("dataset_bad");
    CHECK(testutil::expect_data_error([&] { load_dataset(dir + "/nope", Preprocess{}); }).find("does not exist") != std::string::npos);
    CHECK(testutil::expect_data_error([&] { load_dataset(dir, Preprocess{}); }).find("no person folders") != std::string::npos);
    std::filesystem::create_directories(dir + "/a");
    std::filesystem::create_directories(dir + "/b");
    write_pgm(dir + "/a/1.pgm", ramp(8, 6));
    CHECK(testutil::expect_data_error([&] { load_dataset(dir, Preprocess{}); }).find(dir + "/b") != std::string::npos);
    // An image of another size is not an error: it is fit to the first image's size.
    write_pgm(dir + "/b/1.pgm", ramp(8, 8));
    const ImageBank bank = load_dataset(dir, Preprocess{1, ResizeMode::Stride});
    CHECK(bank.size() == 2);
    CHECK(bank.width == 8);
    CHECK(bank.height == 6);
}

TEST_CASE("built-in synthetic faces: ORL-shaped, deterministic, varied", "[dataset][synth]") {
    SynthOptions o;
    o.people = 3;
    o.images = 2;
    const auto f1 = synth_faces(o);
    const auto f2 = synth_faces(o);
    REQUIRE(f1.size() == 3);
    CHECK(f1[0][0].width == 92);
    CHECK(f1[0][0].height == 112);
    CHECK(f1[2][1].samples == f2[2][1].samples);
    CHECK(f1[0][0].samples != f1[0][1].samples);
    CHECK(f1[0][0].samples != f1[1][0].samples);
    o.seed = 2;
    CHECK(synth_faces(o)[0][0].samples != f1[0][0].samples);
}

// The --half-bank conversions against the compiler's own binary16 (GCC's _Float16: IEEE round to
// nearest, ties to even), where it has one.
TEST_CASE("FP16 conversions: every half widens exactly, floats round to nearest even", "[dataset][half]") {
#ifndef __FLT16_MAX__
    SKIP("this compiler has no _Float16 to compare with");
#else
    auto ref_bits = [](float f) {
        const _Float16 h = static_cast<_Float16>(f);
        uint16_t b;
        std::memcpy(&b, &h, sizeof b);
        return b;
    };
    auto same = [](float a, float b) { return std::isnan(a) ? std::isnan(b) : std::memcmp(&a, &b, sizeof a) == 0; };
    long bad_widen = 0, bad_round = 0;
    for (uint32_t h = 0; h < 65536; ++h) {
        _Float16 x;
        const uint16_t b = uint16_t(h);
        std::memcpy(&x, &b, sizeof b);
        bad_widen += !same(half_to_float(b), static_cast<float>(x));
        // The exact midpoints to the next half (ties), and a float either side of them.
        const float lo = static_cast<float>(x);
        if (std::isfinite(lo) && h != 0x7bff && h != 0xfbff) {
            _Float16 y;
            const uint16_t nb = uint16_t(h + 1);
            std::memcpy(&y, &nb, sizeof nb);
            const float hi = static_cast<float>(y);
            if (std::isfinite(hi) && (h & 0x7fff) != 0x7fff) {
                const float mid = lo + (hi - lo) / 2.0f;  // exact: 13 spare bits in a float
                for (float f : {mid, std::nextafter(mid, lo), std::nextafter(mid, hi)})
                    bad_round += half_from_float(f) != ref_bits(f);
            }
        }
    }
    CHECK(bad_widen == 0);
    CHECK(bad_round == 0);
    // Every 4099th float bit pattern (all exponents, both signs, NaN and infinities included).
    long checked = 0;
    for (uint64_t u = 0; u < (1ull << 32); u += 4099) {
        uint32_t b = uint32_t(u);
        float f;
        std::memcpy(&f, &b, sizeof f);
        const uint16_t got = half_from_float(f), want = ref_bits(f);
        const bool nan = std::isnan(f);
        bad_round += nan ? !((got & 0x7c00) == 0x7c00 && (got & 0x3ff)) : got != want;
        ++checked;
    }
    CHECK(checked > 1000000);
    CHECK(bad_round == 0);
    // A pixel k / 255 moves by at most half a unit in the last place of [0.5, 1): 2^-12.
    double worst = 0.0;
    for (int k = 0; k <= 255; ++k) {
        const float p = float(k) / 255.0f;
        worst = std::max(worst, std::fabs(double(half_round(p)) - double(p)));
    }
    CHECK(worst <= std::ldexp(1.0, -12));
    CHECK(worst > 0.0);  // the rounding does something: 1/255 is not a half
#endif
}
