// libFuzzer target: the gallery loader must refuse any malformed file with a DataError — never
// crash, read out of bounds, or allocate from forged sizes — and what it accepts must be
// consistent (every owner a person, embeddings n x width), as identify and enroll rely on it.
#include <cstddef>
#include <cstdint>
#include <string>

#include "siamese/common.hpp"
#include "siamese/gallery.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string bytes(reinterpret_cast<const char*>(data), size);
    try {
        const siamese::Gallery g = siamese::parse_gallery(bytes, "fuzz.gallery");
        if (g.embed_dim < 0 || g.embeddings.size() != size_t(g.size()) * size_t(g.embed_dim)) __builtin_trap();
        for (int o : g.owner)
            if (o < 0 || o >= int(g.people.size())) __builtin_trap();
        if (g.embed_dim > 0 && g.size() > 0) siamese::rank_people(g, g.embeddings.data(), true);
    } catch (const siamese::DataError&) {
    }
    return 0;
}
