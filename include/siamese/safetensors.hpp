// The safetensors format: an 8-byte little-endian header length, a JSON header (each tensor's
// dtype, shape and byte range; "__metadata__" with string values), then raw little-endian
// float32 data. Models, galleries and training states are safetensors files.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace siamese {

// Generic safetensors pieces (also used by galleries and training state).
struct SafeTensor {
    std::vector<int64_t> shape;
    std::vector<float> data;
};
// A tensor's shape and floats, held by its owner (written without a copy).
struct SafeTensorView {
    std::vector<int64_t> shape;
    const float* data;
    size_t size;
};
// Writing adds metadata "checksum": "v3:" and the XXH3-64 of the header (without the checksum)
// and the data; reading verifies it, and the "v2:" FNV-1a checksums of earlier files, and refuses
// a file without one.
void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, SafeTensor>>& tensors,
                       const std::map<std::string, std::string>& metadata);
void write_safetensor_views(const std::string& path, const std::vector<std::pair<std::string, SafeTensorView>>& tensors,
                            const std::map<std::string, std::string>& metadata);
void read_safetensors(const std::string& path, std::map<std::string, SafeTensor>& tensors,
                      std::map<std::string, std::string>& metadata);
void parse_safetensors(const std::string& bytes, const std::string& name, std::map<std::string, SafeTensor>& tensors,
                       std::map<std::string, std::string>& metadata);

}  // namespace siamese
