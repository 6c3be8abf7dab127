#include <catch2/catch.hpp>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>

#include "siamese/common.hpp"
#include "siamese/files.hpp"
#include "siamese/pgm.hpp"
#include "test_util.hpp"

using namespace siamese;

namespace {
std::string p5_header(int w, int h, int maxval) {
    return "P5\n" + std::to_string(w) + " " + std::to_string(h) + "\n" + std::to_string(maxval) + "\n";
}
// The DataError message for parsing `bytes`, or "" when it parses.
std::string error_of(const std::string& bytes) {
    try {
        parse_pgm(bytes, "bad.pgm");
    } catch (const DataError& e) {
        return e.what();
    }
    return "";
}
}  // namespace

TEST_CASE("P5 8-bit image parses with its samples", "[pgm]") {
    std::string bytes = p5_header(3, 2, 255) + std::string("\x00\x10\x20\x30\x40\xff", 6);
    const PgmImage img = parse_pgm(bytes, "x.pgm");
    CHECK(img.width == 3);
    CHECK(img.height == 2);
    CHECK(img.maxval == 255);
    CHECK(img.samples == std::vector<uint16_t>{0, 16, 32, 48, 64, 255});
}

TEST_CASE("P5 16-bit samples are big-endian", "[pgm]") {
    std::string bytes = p5_header(2, 1, 1000) + std::string("\x01\x02\x03\xe8", 4);
    const PgmImage img = parse_pgm(bytes, "x.pgm");
    CHECK(img.samples == std::vector<uint16_t>{0x0102, 1000});
}

TEST_CASE("P2 with comments and odd whitespace parses", "[pgm]") {
    const std::string bytes = "P2 # comment after magic\n# full-line comment\n 3\t2 \r\n# another\n15\n1 2 3\n\n4   5 15";
    const PgmImage img = parse_pgm(bytes, "x.pgm");
    CHECK(img.width == 3);
    CHECK(img.height == 2);
    CHECK(img.maxval == 15);
    CHECK(img.samples == std::vector<uint16_t>{1, 2, 3, 4, 5, 15});
}

TEST_CASE("P5 header comments and one whitespace byte before the raster", "[pgm]") {
    // The raster starts right after ONE whitespace byte, even when that byte's successor is a
    // space (value 32) or '#' (value 35).
    std::string bytes = "P5\n#c\n2 1\n#d\n255\n" + std::string(" #", 2);
    const PgmImage img = parse_pgm(bytes, "x.pgm");
    CHECK(img.samples == std::vector<uint16_t>{32, 35});
}

TEST_CASE("malformed PGM files are refused with the file name and the fault", "[pgm]") {
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"", "magic"},
        {"P6\n1 1\n255\n\x01", "magic"},
        {"P5", "truncated header"},
        {"P5\n3", "truncated header"},
        {"P5\n3 2\n", "truncated header"},
        {"P5\n3 2\n255", "no raster"},
        {p5_header(3, 2, 255) + "abc", "truncated raster"},
        {p5_header(2, 1, 1000) + "\x01\x02\x03", "truncated raster"},
        {"P5\n0 2\n255\n", "zero"},
        {"P5\n2 0\n255\n", "zero"},
        {"P5\n-2 2\n255\n", "negative"},
        {"P5\n16385 2\n255\n", "too large"},
        {"P5\n99999999999999999999 2\n255\n", "too large"},
        {"P5\n16384 16384\n255\n\x01", "truncated raster"},  // no 256 MiB allocation from a forged header
        {"P5\n2 2\n0\n\x00\x00\x00\x00", "maxval 0"},
        {"P5\n2 2\n65536\n", "too large"},
        {"P5\nab 2\n255\n", "not a number"},
        {"P5\n2 2\n100\n" + std::string("\x01\x02\x03\xc8", 4), "over maxval"},
        {"P2\n2 2\n10\n1 2 3 11", "over maxval"},
        {"P2\n2 2\n10\n1 2 x 3", "not a number"},
        {"P2\n2 2\n10\n1 2 3", "truncated raster"},
        {"P2\n16384 16384\n10\n1 2 3", "truncated raster"},
    };
    for (const auto& [bytes, fault] : cases) {
        INFO("input: " << bytes.substr(0, 40));
        const std::string err = error_of(bytes);
        CHECK(err.find("bad.pgm") != std::string::npos);
        CHECK(err.find(fault) != std::string::npos);
    }
}

TEST_CASE("read_pgm names a missing file and write_pgm round-trips 8 and 16 bit", "[pgm]") {
    const std::string dir = testutil::temp_dir("pgm");
    try {
        read_pgm(dir + "/missing.pgm");
        FAIL("no error for a missing file");
    } catch (const DataError& e) {
        CHECK(std::string(e.what()).find("missing.pgm") != std::string::npos);
    }
    for (int maxval : {255, 4095}) {
        PgmImage img;
        img.width = 5;
        img.height = 3;
        img.maxval = maxval;
        for (int i = 0; i < 15; ++i) img.samples.push_back(uint16_t(i * maxval / 14));
        write_pgm(dir + "/x.pgm", img);
        const PgmImage back = read_pgm(dir + "/x.pgm");
        CHECK(back.samples == img.samples);
        CHECK(back.maxval == maxval);
    }
}

TEST_CASE("a comment or a CRLF after maxval does not shift the raster, trailing garbage is refused", "[pgm]") {
    // "255#c\n": the comment ends at the newline, which is the one whitespace byte.
    PgmImage img = parse_pgm("P5\n2 1\n255#c\n" + std::string("\x07\x08", 2), "c.pgm");
    CHECK(img.samples == std::vector<uint16_t>{7, 8});
    // CRLF after maxval (files written on Windows): read, not shifted by one byte.
    img = parse_pgm("P5\r\n2 1\r\n255\r\n" + std::string("\x07\x08", 2), "crlf.pgm");
    CHECK(img.samples == std::vector<uint16_t>{7, 8});
    // A second image's worth of bytes after the raster: not one image.
    CHECK(error_of(p5_header(4, 4, 255) + std::string(16 + 200, '\x01')).find("after the raster") != std::string::npos);
    CHECK(error_of(p5_header(4, 4, 255) + std::string(16 + 1, '\x01')).empty());  // a newline is fine
}

TEST_CASE("only regular files are read, and no more than the header implies", "[pgm][reliability]") {
    const std::string dir = testutil::temp_dir("pgm_files");
    // A FIFO named x.pgm once blocked inspect and verify forever.
    REQUIRE(::mkfifo((dir + "/fifo.pgm").c_str(), 0644) == 0);
    const std::string cmd = "timeout 20 " + std::string(SIAMESE_BINARY) + " inspect " + dir + "/fifo.pgm > " + dir +
                            "/out.txt 2>&1";
    const int st = std::system(cmd.c_str());
    CHECK(WEXITSTATUS(st) == 1);  // refused, not 124 (timed out)
    CHECK(read_file_bytes(dir + "/out.txt").find("not a regular file") != std::string::npos);
    // A 1 GB sparse file behind a 16x16 header: refused from its size, never read into memory.
    const std::string big = dir + "/big.pgm";
    testutil::write_bytes(big, p5_header(16, 16, 255) + std::string(256, '\x01'));
    REQUIRE(::truncate(big.c_str(), off_t(1) << 30) == 0);
    try {
        read_pgm(big);
        FAIL("read");
    } catch (const DataError& e) {
        CHECK(std::string(e.what()).find("header allows") != std::string::npos);
    }
}
