// libFuzzer target behind fuzz_png and fuzz_jpeg (one source, two seed corpora): the image
// reader (libpng / libjpeg-turbo behind our wrapper, format by content) must refuse any malformed
// input with a DataError — never crash, exit, read out of bounds, or allocate from a forged header.
#include <cstddef>
#include <cstdint>
#include <string>

#include "image_check.hpp"
#include "siamese/common.hpp"
#include "siamese/image_io.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string bytes(reinterpret_cast<const char*>(data), size);
    try {
        check_decoded(siamese::decode_image(bytes, "fuzz.img"));
    } catch (const siamese::DataError&) {
    }
    return 0;
}
