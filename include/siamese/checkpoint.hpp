// Model files in the safetensors format: an 8-byte little-endian header length, a JSON header
// (each tensor's dtype, shape and byte range; "__metadata__" with string values), then raw
// little-endian float32 data. numpy/PyTorch users load it as it is (safetensors.torch.load_file).
#pragma once
#include <map>
#include <string>
#include <vector>

#include "siamese/dataset.hpp"
#include "siamese/network.hpp"

namespace siamese {

struct Model {
    NetConfig net;
    Preprocess pre;
    float threshold = 0.5f;  // genuine when distance < threshold
    float margin = 1.0f;
    std::vector<float> params;                  // flat, in make_layout(net) order
    std::map<std::string, std::string> extra;   // further metadata (protocol, seed, ...)
};

// Writes atomically: a temporary file, fsync, rename.
void save_model(const std::string& path, const Model& m);
// Throws DataError naming the file: truncated, bad JSON, wrong checksum, missing or mis-sized tensors.
Model load_model(const std::string& path);
Model parse_model(const std::string& bytes, const std::string& name);  // same, from memory

// Generic safetensors pieces (also used by galleries and training state).
struct SafeTensor {
    std::vector<int64_t> shape;
    std::vector<float> data;
};
// Writing adds metadata "checksum": FNV-1a 64 of the data section; reading verifies it when present.
void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, SafeTensor>>& tensors,
                       const std::map<std::string, std::string>& metadata);
void read_safetensors(const std::string& path, std::map<std::string, SafeTensor>& tensors,
                      std::map<std::string, std::string>& metadata);
void parse_safetensors(const std::string& bytes, const std::string& name, std::map<std::string, SafeTensor>& tensors,
                       std::map<std::string, std::string>& metadata);

// FNV-1a 64-bit hash, as 16 hex digits.
std::string fnv1a64_hex(const char* data, size_t n);

// Writes bytes to path atomically (path.tmp, fsync, rename). Throws DataError.
void write_file_atomic(const std::string& path, const std::string& bytes);

}  // namespace siamese
