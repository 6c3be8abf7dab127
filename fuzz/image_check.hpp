// What every decoded image must satisfy, whatever bytes it came from (the fuzz targets trap
// otherwise): as many samples as pixels, none above maxval.
#pragma once
#include <cstddef>
#include <cstdint>

#include "siamese/pgm.hpp"

inline void check_decoded(const siamese::PgmImage& img) {
    if (img.samples.size() != size_t(img.width) * size_t(img.height)) __builtin_trap();
    for (uint16_t v : img.samples)
        if (v > img.maxval) __builtin_trap();
}
