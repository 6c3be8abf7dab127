// PNG and JPEG through libpng and libjpeg-turbo: every colour type to grey by the BT.601 luma,
// 16-bit kept, interlacing, progressive JPEG; corrupt, truncated and forged files refused with
// one message naming the file; resizing to a model's input; the same photo as PGM and as PNG
// giving the same distance; mixed formats and sizes in a data folder.
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <random>

#include <zlib.h>

#include <nlohmann/json.hpp>

#include "image_writers.hpp"
#include "siamese/common.hpp"
#include "siamese/files.hpp"
#include "siamese/image_io.hpp"
#include "siamese/synth.hpp"
#include "test_util.hpp"

using namespace siamese;
namespace fs = std::filesystem;

namespace {

std::vector<unsigned> random_samples(size_t n, unsigned max, uint64_t seed) {
    std::mt19937_64 r(seed);
    std::vector<unsigned> v(n);
    for (auto& x : v) x = unsigned(r() % (max + 1));
    return v;
}

unsigned luma601(unsigned r, unsigned g, unsigned b) { return unsigned(0.299 * r + 0.587 * g + 0.114 * b + 0.5); }

std::string refusal(const std::string& path) {
    return testutil::expect_data_error([&] { read_image(path); });
}

}  // namespace

TEST_CASE("PNG: grey, 16-bit, alpha, RGB, RGBA, palette, 1-bit and interlaced decode to the right grey", "[image]") {
    const std::string dir = testutil::temp_dir("png");
    const int w = 7, h = 5;
    const auto grey = random_samples(size_t(w) * h, 255, 1);
    testutil::write_png(dir + "/g8.png", w, h, PNG_COLOR_TYPE_GRAY, 8, grey);
    PgmImage img = read_image(dir + "/g8.png");
    CHECK(img.width == w);
    CHECK(img.height == h);
    CHECK(img.maxval == 255);
    CHECK(std::vector<unsigned>(img.samples.begin(), img.samples.end()) == grey);

    const auto g16 = random_samples(size_t(w) * h, 65535, 2);
    testutil::write_png(dir + "/g16.png", w, h, PNG_COLOR_TYPE_GRAY, 16, g16);
    img = read_image(dir + "/g16.png");
    CHECK(img.maxval == 65535);
    CHECK(std::vector<unsigned>(img.samples.begin(), img.samples.end()) == g16);

    // Grey + alpha: the alpha is ignored.
    std::vector<unsigned> ga;
    const auto alpha = random_samples(grey.size(), 255, 3);
    for (size_t i = 0; i < grey.size(); ++i) ga.insert(ga.end(), {grey[i], alpha[i]});
    testutil::write_png(dir + "/ga.png", w, h, PNG_COLOR_TYPE_GRAY_ALPHA, 8, ga);
    img = read_image(dir + "/ga.png");
    CHECK(std::vector<unsigned>(img.samples.begin(), img.samples.end()) == grey);

    // RGB and RGBA (8 and 16 bits): BT.601 luma, rounded.
    const auto rgb = random_samples(size_t(w) * h * 3, 255, 4);
    std::vector<unsigned> want, rgba;
    for (size_t i = 0; i < grey.size(); ++i) {
        want.push_back(luma601(rgb[3 * i], rgb[3 * i + 1], rgb[3 * i + 2]));
        rgba.insert(rgba.end(), {rgb[3 * i], rgb[3 * i + 1], rgb[3 * i + 2], 17});
    }
    testutil::write_png(dir + "/rgb.png", w, h, PNG_COLOR_TYPE_RGB, 8, rgb);
    testutil::write_png(dir + "/rgba.png", w, h, PNG_COLOR_TYPE_RGBA, 8, rgba);
    for (const char* f : {"/rgb.png", "/rgba.png"}) {
        INFO(f);
        img = read_image(dir + f);
        CHECK(std::vector<unsigned>(img.samples.begin(), img.samples.end()) == want);
    }
    const auto rgb16 = random_samples(size_t(w) * h * 3, 65535, 5);
    testutil::write_png(dir + "/rgb16.png", w, h, PNG_COLOR_TYPE_RGB, 16, rgb16);
    img = read_image(dir + "/rgb16.png");
    CHECK(img.maxval == 65535);
    for (size_t i = 0; i < grey.size(); ++i) CHECK(img.samples[i] == luma601(rgb16[3 * i], rgb16[3 * i + 1], rgb16[3 * i + 2]));

    // Palette: indices into RGB triples.
    const std::vector<unsigned char> pal = {0, 0, 0, 255, 0, 0, 0, 255, 0, 10, 20, 250};
    const auto idx = random_samples(grey.size(), 3, 6);
    testutil::write_png(dir + "/pal.png", w, h, PNG_COLOR_TYPE_PALETTE, 8, idx, false, pal);
    img = read_image(dir + "/pal.png");
    for (size_t i = 0; i < idx.size(); ++i)
        CHECK(img.samples[i] == luma601(pal[3 * idx[i]], pal[3 * idx[i] + 1], pal[3 * idx[i] + 2]));

    // 1-bit grey expands to 0 / 255; Adam7 interlacing gives the same pixels as none.
    const auto bits = random_samples(grey.size(), 1, 7);
    testutil::write_png(dir + "/g1.png", w, h, PNG_COLOR_TYPE_GRAY, 1, bits);
    img = read_image(dir + "/g1.png");
    for (size_t i = 0; i < bits.size(); ++i) CHECK(img.samples[i] == bits[i] * 255);
    testutil::write_png(dir + "/inter.png", w, h, PNG_COLOR_TYPE_RGB, 8, rgb, true);
    img = read_image(dir + "/inter.png");
    CHECK(std::vector<unsigned>(img.samples.begin(), img.samples.end()) == want);
}

TEST_CASE("JPEG: grey, colour and progressive decode close to the source, and CMYK is refused", "[image]") {
    const std::string dir = testutil::temp_dir("jpeg");
    const int w = 32, h = 24;
    // A smooth picture (JPEG is lossy: smooth content survives quality 95 within a few levels).
    std::vector<unsigned> grey, rgb, cmyk;
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x) {
            const unsigned r = unsigned(40 + 5 * x), g = unsigned(60 + 6 * y), b = unsigned(200 - 3 * x);
            grey.push_back(luma601(r, g, b));
            rgb.insert(rgb.end(), {r, g, b});
            cmyk.insert(cmyk.end(), {r, g, b, 0});
        }
    auto max_diff = [&](const PgmImage& img) {
        unsigned d = 0;
        for (size_t i = 0; i < grey.size(); ++i) d = std::max(d, unsigned(std::abs(int(img.samples[i]) - int(grey[i]))));
        return d;
    };
    testutil::write_jpeg(dir + "/grey.jpg", w, h, 1, grey);
    testutil::write_jpeg(dir + "/colour.jpg", w, h, 3, rgb);
    testutil::write_jpeg(dir + "/progressive.jpeg", w, h, 3, rgb, true);
    for (const char* f : {"/grey.jpg", "/colour.jpg", "/progressive.jpeg"}) {
        INFO(f);
        const PgmImage img = read_image(dir + f);
        REQUIRE(img.width == w);
        REQUIRE(img.height == h);
        CHECK(img.maxval == 255);
        CHECK(max_diff(img) <= 6);  // quantisation at quality 95 plus chroma subsampling
    }
    testutil::write_jpeg(dir + "/cmyk.jpg", w, h, 4, cmyk);
    CHECK(refusal(dir + "/cmyk.jpg").find("cmyk.jpg: CMYK JPEG images are not supported") != std::string::npos);
}

TEST_CASE("truncated, corrupt and forged PNG/JPEG files are refused naming the file", "[image][badinput]") {
    const std::string dir = testutil::temp_dir("badimg");
    const auto px = random_samples(64 * 48 * 3, 255, 9);
    testutil::write_png(dir + "/ok.png", 64, 48, PNG_COLOR_TYPE_RGB, 8, px);
    testutil::write_jpeg(dir + "/ok.jpg", 64, 48, 3, px);
    for (const char* f : {"ok.png", "ok.jpg"}) {
        const std::string bytes = read_file_bytes(dir + "/" + f, 1 << 20);
        for (size_t keep : {size_t(10), bytes.size() / 2, bytes.size() - 3}) {
            const std::string cut = dir + "/cut_" + std::to_string(keep) + "_" + f;
            testutil::write_bytes(cut, bytes.substr(0, keep));
            const std::string why = refusal(cut);
            INFO(cut << ": " << why);
            CHECK(why.find(cut + ": bad ") == 0);
        }
        std::string flipped = bytes;  // corrupt the compressed data
        for (size_t k = bytes.size() / 2; k < bytes.size() / 2 + 16; ++k) flipped[k] = char(flipped[k] ^ 0x5A);
        testutil::write_bytes(dir + "/flip_" + std::string(f), flipped);
        const std::string why = refusal(dir + "/flip_" + std::string(f));
        INFO(why);
        CHECK(why.find("flip_") != std::string::npos);
    }
    // A PNG header claiming 20000 x 20000 (valid CRC): refused before any pixel is allocated.
    std::string png = read_file_bytes(dir + "/ok.png", 1 << 20);
    auto put32 = [&](size_t at, uint32_t v) {
        for (int k = 0; k < 4; ++k) png[at + k] = char((v >> (24 - 8 * k)) & 0xFF);
    };
    put32(16, 20000);
    put32(20, 20000);
    uint32_t crc = uint32_t(crc32(0, reinterpret_cast<const Bytef*>(png.data() + 12), 17));
    put32(29, crc);
    testutil::write_bytes(dir + "/huge.png", png);
    CHECK(refusal(dir + "/huge.png").find(dir + "/huge.png: ") == 0);
    // A JPEG frame header claiming 60000 x 60000.
    std::string jpg = read_file_bytes(dir + "/ok.jpg", 1 << 20);
    const size_t sof = jpg.find("\xff\xc0");
    REQUIRE(sof != std::string::npos);
    jpg[sof + 5] = char(0xEA);
    jpg[sof + 6] = char(0x60);
    jpg[sof + 7] = char(0xEA);
    jpg[sof + 8] = char(0x60);
    testutil::write_bytes(dir + "/huge.jpg", jpg);
    const std::string why = refusal(dir + "/huge.jpg");
    INFO(why);
    CHECK(why.find(dir + "/huge.jpg: image size 60000x60000") == 0);
    testutil::write_bytes(dir + "/text.png", "hello, not an image");
    CHECK(refusal(dir + "/text.png").find("not a PGM, PNG or JPEG image") != std::string::npos);
}

TEST_CASE("fit_image: identity, area averaging, bilinear growth, centre crop", "[image]") {
    PgmImage img;
    img.width = 4;
    img.height = 2;
    img.maxval = 255;
    img.samples = {10, 20, 30, 40, 50, 60, 70, 80};
    CHECK(fit_image(img, 4, 2, Fit::Crop).samples == img.samples);
    // Halving both sides: each output is the mean of a 2 x 2 block.
    const PgmImage half = fit_image(img, 2, 1, Fit::Stretch);
    CHECK(half.samples == std::vector<uint16_t>{35, 55});
    // Crop to a square first: the centre 2 x 2 (20, 30 / 60, 70), then 1 x 1 = their mean.
    CHECK(fit_image(img, 1, 1, Fit::Crop).samples == std::vector<uint16_t>{45});
    // A constant image stays constant when enlarged (bilinear weights sum to one).
    PgmImage flat = img;
    flat.samples.assign(8, 123);
    for (uint16_t v : fit_image(flat, 9, 5, Fit::Stretch).samples) CHECK(v == 123);
}

TEST_CASE("the same photo as PGM and as PNG gives the same distance, and JPEGs of any size and colour verify", "[image][cli]") {
    const std::string dir = testutil::temp_dir("photos");
    SynthOptions o;
    o.people = 3;
    o.images = 3;
    REQUIRE(testutil::run_cli("synth --out " + dir + "/faces --people 3 --images 3").status == 0);
    REQUIRE(testutil::run_cli("train --data " + dir + "/faces --epochs 1 --downsample 4 --device cpu --quiet --out " + dir +
                              "/run").status == 0);
    const PgmImage a = read_pgm(dir + "/faces/s1/1.pgm");
    testutil::write_png(dir + "/a.png", a.width, a.height, PNG_COLOR_TYPE_GRAY, 8,
                        std::vector<unsigned>(a.samples.begin(), a.samples.end()));
    const std::string model = dir + "/run/model.safetensors", b = dir + "/faces/s1/2.pgm";
    const auto pgm = testutil::run_cli("verify --model " + model + " " + dir + "/faces/s1/1.pgm " + b);
    const auto png = testutil::run_cli("verify --model " + model + " " + dir + "/a.png " + b);
    INFO(pgm.out << png.out);
    REQUIRE(pgm.status == 0);
    REQUIRE(png.status == 0);
    CHECK(pgm.out == png.out);  // same grey, same preprocessing: the same distance to 4 decimals
    // A colour JPEG twice the size: resized to the model's input, with a note saying so.
    std::vector<unsigned> rgb;
    for (int y = 0; y < 2 * a.height; ++y)
        for (int x = 0; x < 2 * a.width; ++x) {
            const unsigned v = a.samples[size_t(y / 2) * a.width + x / 2];
            rgb.insert(rgb.end(), {v, v, v});
        }
    testutil::write_jpeg(dir + "/big.jpg", 2 * a.width, 2 * a.height, 3, rgb);
    const auto jpg = testutil::run_cli("verify --model " + model + " " + dir + "/big.jpg " + b);
    INFO(jpg.out);
    CHECK(jpg.status == 0);
    CHECK(jpg.out.find("note: 1 of 2 photos resized") != std::string::npos);
    CHECK(jpg.out.find("distance ") != std::string::npos);
    // A data folder mixing formats and sizes trains, with one warning for the resized photos.
    fs::copy(dir + "/faces", dir + "/mixed", fs::copy_options::recursive);
    fs::remove(dir + "/mixed/s2/1.pgm");
    testutil::write_jpeg(dir + "/mixed/s2/1.jpg", 2 * a.width, 2 * a.height, 3, rgb);
    const auto t = testutil::run_cli("train --data " + dir + "/mixed --epochs 1 --downsample 4 --device cpu --quiet --out " +
                                     dir + "/run2");
    INFO(t.out);
    CHECK(t.status == 0);
    CHECK(t.out.find("warning: " + dir + "/mixed: 1 of 9 images were not") != std::string::npos);
}

TEST_CASE("train --image-size brings large photos to a trainable size, and the size they came from does not matter", "[image][cli]") {
    const std::string dir = testutil::temp_dir("image_size");
    REQUIRE(testutil::run_cli("synth --out " + dir + "/faces --people 4 --images 3 --seed 4").status == 0);
    // The same photos three times as large (each pixel a 3x3 block), as PNGs: a phone's photos
    // in miniature. Area averaging brings each block back to its one value exactly.
    for (int p = 1; p <= 4; ++p) {
        fs::create_directories(dir + "/large/s" + std::to_string(p));
        for (int i = 1; i <= 3; ++i) {
            const std::string name = "/s" + std::to_string(p) + "/" + std::to_string(i);
            const PgmImage a = read_pgm(dir + "/faces" + name + ".pgm");
            std::vector<unsigned> big;
            for (int y = 0; y < 3 * a.height; ++y)
                for (int x = 0; x < 3 * a.width; ++x) big.push_back(a.samples[size_t(y / 3) * a.width + x / 3]);
            testutil::write_png(dir + "/large" + name + ".png", 3 * a.width, 3 * a.height, PNG_COLOR_TYPE_GRAY, 8, big);
        }
    }
    // Without --image-size the first photo's size is the network's input: a note says so.
    const auto plan = testutil::run_cli("plan --count --data " + dir + "/large");
    INFO(plan.out);
    REQUIRE(plan.status == 0);
    CHECK(plan.out.find("the photos are 276x336") != std::string::npos);
    CHECK(plan.out.find("--image-size 92x112") != std::string::npos);
    CHECK(testutil::run_cli("plan --count --data " + dir + "/faces").out.find("note:") == std::string::npos);
    // With it, the large photos train the model the originals train (same seed, same figures).
    const std::string opts = " --protocol people --epochs 2 --downsample 4 --device cpu --quiet --seed 3";
    const auto small = testutil::run_cli("train --data " + dir + "/faces" + opts + " --out " + dir + "/run_small");
    const auto large = testutil::run_cli("train --data " + dir + "/large --image-size 92x112" + opts + " --out " + dir + "/run_large");
    INFO(small.out << large.out);
    REQUIRE(small.status == 0);
    REQUIRE(large.status == 0);
    CHECK(large.out.find("note: " + dir + "/large: 12 of 12 images were not 92x112 (--image-size)") != std::string::npos);
    const auto js = nlohmann::json::parse(siamese::read_file_bytes(dir + "/run_small/summary.json"));
    const auto jl = nlohmann::json::parse(siamese::read_file_bytes(dir + "/run_large/summary.json"));
    CHECK(jl["test"] == js["test"]);
    CHECK(jl["threshold"] == js["threshold"]);
    CHECK(jl["image_size"] == "92x112");
    CHECK(!js.contains("image_size"));
    // The model's input is 92x112: an original photo verifies without resizing, a large one is fit.
    const std::string model = dir + "/run_large/model.safetensors";
    const auto v1 = testutil::run_cli("verify --model " + model + " " + dir + "/faces/s1/1.pgm " + dir + "/faces/s1/2.pgm");
    const auto v2 = testutil::run_cli("verify --model " + model + " " + dir + "/large/s1/1.png " + dir + "/faces/s1/2.pgm");
    INFO(v1.out << v2.out);
    CHECK(v1.out.find("note:") == std::string::npos);
    CHECK(v2.out.find("resized to 92x112") != std::string::npos);
    CHECK(v1.out.substr(v1.out.find("distance")) == v2.out.substr(v2.out.find("distance")));
    // Enrolling the large folder: every photo fit to the model's input, one note for all of them.
    const auto en = testutil::run_cli("enroll --model " + model + " --data " + dir + "/large --out " + dir + "/g.gallery --device cpu");
    INFO(en.out);
    CHECK(en.status == 0);
    CHECK(en.out.find("note: 12 of 12 photos resized to 92x112") != std::string::npos);
    CHECK(en.out.find("note:") == en.out.rfind("note:"));
    // A resumed run keeps its size; --image-size without --data is refused.
    const auto r = testutil::run_cli("train --resume " + dir + "/run_large --image-size 46x56 --device cpu");
    CHECK(r.status == 2);
    CHECK(r.out.find("image-size") != std::string::npos);
    CHECK(testutil::run_cli("train --image-size 92x112 --out " + dir + "/x").status == 2);
    CHECK(testutil::run_cli("train --data " + dir + "/faces --image-size 92 --out " + dir + "/x").status == 2);
}
