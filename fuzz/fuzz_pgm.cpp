// libFuzzer target: the PGM parser must refuse any malformed input with a DataError — never
// crash, read out of bounds, or allocate from a forged header.
#include <cstddef>
#include <cstdint>
#include <string>

#include "image_check.hpp"
#include "siamese/common.hpp"
#include "siamese/pgm.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string bytes(reinterpret_cast<const char*>(data), size);
    try {
        check_decoded(siamese::parse_pgm(bytes, "fuzz.pgm"));
    } catch (const siamese::DataError&) {
    }
    return 0;
}
