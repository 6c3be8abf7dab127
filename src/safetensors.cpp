// The safetensors container shared by models, galleries and training states.
#include "siamese/safetensors.hpp"

#include <cctype>
#include <cstring>
#include <nlohmann/json.hpp>

#define XXH_INLINE_ALL  // header-only: nothing to link (the GPU machine has no Debian packages)
#include <xxhash.h>

#include "siamese/common.hpp"
#include "siamese/files.hpp"

namespace siamese {

using nlohmann::json;

namespace {

// The checksum covers the whole content: the header (tensor entries and every metadata value,
// as canonical JSON without the checksum itself) and the data. Its prefix names the scheme:
//   "v3:" XXH3-64 (libxxhash) of that content: what this version writes;
//   "v2:" FNV-1a 64 of the same content: read still (files of 2026-11-29 to 12-01). FNV-1a is a
//         byte-serial chain, ~1 GB/s: the strong recipe's 12 MB state took 12 ms to hash at every
//         epoch end, on a thread competing with training's two;
// files of the first format had a checksum of the data alone, which let metadata flips through.
constexpr const char* kChecksumPrefix = "v3:";
constexpr const char* kFnvChecksumPrefix = "v2:";

std::string canonical_header(json header) {
    if (header.contains("__metadata__")) header["__metadata__"].erase("checksum");
    return header.dump();  // object keys sorted: canonical
}

// The content's checksum in the scheme `prefix` names (one of the two above): the header's bytes,
// then the data's pieces, hashed as their concatenation without copying them together.
std::string content_checksum(const char* prefix, const json& header, const std::vector<ByteSpan>& data) {
    const std::string head = canonical_header(header);
    if (std::strcmp(prefix, kFnvChecksumPrefix) == 0) {
        uint64_t h = fnv1a64(kFnv1a64Offset, head.data(), head.size());
        for (const ByteSpan& piece : data) h = fnv1a64(h, piece.data, piece.size);
        return prefix + hex64(h);
    }
    XXH3_state_t state;
    XXH3_INITSTATE(&state);
    XXH3_64bits_reset(&state);
    XXH3_64bits_update(&state, head.data(), head.size());
    for (const ByteSpan& piece : data) XXH3_64bits_update(&state, piece.data, piece.size);
    return prefix + hex64(XXH3_64bits_digest(&state));
}

}  // namespace

void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, SafeTensor>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
    std::vector<std::pair<std::string, SafeTensorView>> views;
    for (const auto& [name, t] : tensors) views.push_back({name, {t.shape, t.data.data(), t.data.size()}});
    write_safetensor_views(path, views, metadata);
}

void write_safetensor_views(const std::string& path, const std::vector<std::pair<std::string, SafeTensorView>>& tensors,
                            const std::map<std::string, std::string>& metadata) {
    json header = json::object();
    size_t offset = 0;
    for (const auto& [name, t] : tensors) {
        const size_t bytes = t.size * 4;
        header[name] = {{"dtype", "F32"}, {"shape", t.shape}, {"data_offsets", {offset, offset + bytes}}};
        offset += bytes;
    }
    // The data as pieces: on little-endian hosts each tensor's own bytes (the file's floats are
    // the host's), so a 12 MB state is hashed and written from where it lies, never copied.
    std::vector<ByteSpan> data;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    for (const auto& [name, t] : tensors) data.push_back({reinterpret_cast<const char*>(t.data), t.size * sizeof(float)});
#else
    std::string le;
    le.reserve(offset);
    for (const auto& [name, t] : tensors)
        for (size_t i = 0; i < t.size; ++i) {
            uint32_t u;
            std::memcpy(&u, &t.data[i], 4);
            for (int b = 0; b < 4; ++b) le.push_back(char((u >> (8 * b)) & 0xFF));
        }
    data.push_back({le.data(), le.size()});
#endif
    auto meta = metadata;
    meta.erase("checksum");
    header["__metadata__"] = meta;
    header["__metadata__"]["checksum"] = content_checksum(kChecksumPrefix, header, data);
    std::string h = header.dump();
    while ((h.size() + 8) % 8) h.push_back(' ');  // align the data to 8 bytes
    std::string head(8, '\0');
    for (int i = 0; i < 8; ++i) head[i] = char((uint64_t(h.size()) >> (8 * i)) & 0xFF);
    head += h;
    std::vector<ByteSpan> pieces = {{head.data(), head.size()}};
    pieces.insert(pieces.end(), data.begin(), data.end());
    write_file_atomic(path, pieces);
}

void read_safetensors(const std::string& path, std::map<std::string, SafeTensor>& tensors,
                      std::map<std::string, std::string>& metadata) {
    parse_safetensors(read_file_bytes(path), path, tensors, metadata);
}

void parse_safetensors(const std::string& bytes, const std::string& path, std::map<std::string, SafeTensor>& tensors,
                       std::map<std::string, std::string>& metadata) {
    auto fail = [&](const std::string& why) -> DataError { return DataError(path + ": " + why); };
    if (bytes.size() < 8) throw fail("truncated: no safetensors header");
    uint64_t n = 0;
    for (int i = 0; i < 8; ++i) n |= uint64_t(static_cast<unsigned char>(bytes[i])) << (8 * i);
    if (n > bytes.size() - 8) throw fail("truncated: header length " + std::to_string(n) + " exceeds the file");
    json header;
    try {
        header = json::parse(bytes.begin() + 8, bytes.begin() + 8 + long(n));
    } catch (const json::exception& e) {
        throw fail(std::string("bad JSON header: ") + e.what());
    }
    if (!header.is_object()) throw fail("bad JSON header: not an object");
    const size_t data_start = 8 + n, data_size = bytes.size() - data_start;
    try {
        for (auto it = header.begin(); it != header.end(); ++it) {
            if (it.key() == "__metadata__") {
                if (!it.value().is_object()) throw fail("bad JSON header: __metadata__ is not an object");
                for (auto m = it.value().begin(); m != it.value().end(); ++m) metadata[m.key()] = m.value().get<std::string>();
                continue;
            }
            if (!it.value().is_object()) throw fail("bad JSON header: tensor " + it.key() + " is not an object");
            const json& t = it.value();
            if (t.at("dtype").get<std::string>() != "F32") throw fail("tensor " + it.key() + ": dtype must be F32");
            SafeTensor st;
            // Integers only: a float here (1e61, say) must not reach a float-to-integer cast.
            auto integers = [&](const char* key) {
                const json& a = t.at(key);
                if (!a.is_array()) throw fail("tensor " + it.key() + ": " + key + " is not an array");
                for (const auto& v : a)
                    if (!v.is_number_unsigned()) throw fail("tensor " + it.key() + ": " + key + " must hold non-negative integers");
                return a.get<std::vector<uint64_t>>();
            };
            for (uint64_t d : integers("shape")) {
                if (d > (uint64_t(1) << 31)) throw fail("tensor " + it.key() + ": bad shape");
                st.shape.push_back(int64_t(d));
            }
            const auto off = integers("data_offsets");
            if (off.size() != 2 || off[0] > off[1] || off[1] > data_size)
                throw fail("tensor " + it.key() + ": data offsets outside the file (truncated?)");
            uint64_t count = 1;
            for (auto d : st.shape) {
                count *= uint64_t(d);
                if (count > data_size) throw fail("tensor " + it.key() + ": shape larger than the file");
            }
            if (off[1] - off[0] != count * 4)
                throw fail("tensor " + it.key() + ": byte range does not match its shape");
            st.data.resize(count);
            const auto* p = reinterpret_cast<const unsigned char*>(bytes.data() + data_start + off[0]);
            for (uint64_t i = 0; i < count; ++i) {
                const uint32_t u = uint32_t(p[4 * i]) | uint32_t(p[4 * i + 1]) << 8 | uint32_t(p[4 * i + 2]) << 16 |
                                   uint32_t(p[4 * i + 3]) << 24;
                std::memcpy(&st.data[i], &u, 4);
            }
            tensors[it.key()] = std::move(st);
        }
    } catch (const json::exception& e) {
        throw fail(std::string("bad JSON header: ") + e.what());
    }
    // Every file this program writes carries a checksum; without one it was edited or is not ours.
    const auto it = metadata.find("checksum");
    if (it == metadata.end()) throw fail("no checksum: not written by siamese, or edited");
    const std::string& sum = it->second;
    const char* scheme = nullptr;
    for (const char* known : {kChecksumPrefix, kFnvChecksumPrefix})
        if (sum.rfind(known, 0) == 0) scheme = known;
    if (!scheme && sum.size() > 3 && sum[0] == 'v' && std::isdigit(static_cast<unsigned char>(sum[1])) && sum[2] == ':')
        throw fail("checksum of a newer format (" + sum.substr(0, 2) + "): written by a newer version of siamese");
    if (!scheme)
        throw fail("checksum of an older format (it covered the tensors only): write this file again with this version");
#ifndef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION  // fuzzers must get past it to reach the parsers
    if (sum != content_checksum(scheme, header, {{bytes.data() + data_start, data_size}}))
        throw fail("checksum mismatch: the file is corrupt or was edited");
#endif
}

}  // namespace siamese
