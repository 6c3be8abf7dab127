// libFuzzer target: the PGM parser must refuse any malformed input with a DataError — never
// crash, read out of bounds, or allocate from a forged header.
#include <cstddef>
#include <cstdint>
#include <string>

#include "siamese/common.hpp"
#include "siamese/pgm.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string bytes(reinterpret_cast<const char*>(data), size);
    try {
        const siamese::PgmImage img = siamese::parse_pgm(bytes, "fuzz.pgm");
        // A parsed image is consistent.
        if (img.samples.size() != size_t(img.width) * size_t(img.height)) __builtin_trap();
        for (uint16_t v : img.samples)
            if (v > img.maxval) __builtin_trap();
    } catch (const siamese::DataError&) {
    }
    return 0;
}
