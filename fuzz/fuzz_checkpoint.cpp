// libFuzzer target: the model (safetensors) loader must refuse any malformed file with a
// DataError — never crash, read out of bounds, or allocate from forged sizes.
#include <cstddef>
#include <cstdint>
#include <string>

#include "siamese/model.hpp"
#include "siamese/common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string bytes(reinterpret_cast<const char*>(data), size);
    try {
        const siamese::Model m = siamese::parse_model(bytes, "fuzz.safetensors");
        if (m.params.size() != siamese::make_layout(m.net).total) __builtin_trap();
    } catch (const siamese::DataError&) {
    } catch (const siamese::UsageError&) {
    }
    return 0;
}
