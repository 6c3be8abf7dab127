// PGM (netpbm greyscale) reading and writing: P5 (binary) and P2 (ASCII), maxval 1..65535.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace siamese {

struct PgmImage {
    int width = 0, height = 0, maxval = 0;
    std::vector<uint16_t> samples;  // row-major, height * width raw samples
};

constexpr int kPgmMaxSide = 16384;  // refuse larger sides: a forged header must not allocate GBs
constexpr size_t kPgmTrailingBytes = 64;  // bytes tolerated after a P5 raster (a newline or two)

// Parses a whole file's bytes; `name` is used in error messages. Throws DataError.
PgmImage parse_pgm(const std::string& bytes, const std::string& name);
// Reads and parses a file. Throws DataError naming the path.
PgmImage read_pgm(const std::string& path);
// Writes binary P5 (one byte per sample when maxval <= 255, else two, big-endian).
void write_pgm(const std::string& path, const PgmImage& img);


}  // namespace siamese
