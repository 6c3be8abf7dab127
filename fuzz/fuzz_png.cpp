// libFuzzer target: the PNG path of the image reader (libraries behind our wrapper) must refuse
// any malformed input with a DataError — never crash, exit, read out of bounds, or allocate
// from a forged header. Seeds in fuzz/corpus/png.
#include <cstddef>
#include <cstdint>
#include <string>

#include "siamese/common.hpp"
#include "siamese/image_io.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string bytes(reinterpret_cast<const char*>(data), size);
    try {
        const siamese::PgmImage img = siamese::decode_image(bytes, "fuzz.png");
        // A decoded image is consistent.
        if (img.samples.size() != size_t(img.width) * size_t(img.height)) __builtin_trap();
        for (uint16_t v : img.samples)
            if (v > img.maxval) __builtin_trap();
    } catch (const siamese::DataError&) {
    }
    return 0;
}
