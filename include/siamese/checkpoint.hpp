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
// Throws DataError naming the file: truncated, bad JSON, missing or mis-sized tensors.
Model load_model(const std::string& path);

// Generic safetensors pieces (also used by galleries and training state).
struct SafeTensor {
    std::vector<int64_t> shape;
    std::vector<float> data;
};
void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, SafeTensor>>& tensors,
                       const std::map<std::string, std::string>& metadata);
void read_safetensors(const std::string& path, std::map<std::string, SafeTensor>& tensors,
                      std::map<std::string, std::string>& metadata);

// Writes bytes to path atomically (path.tmp, fsync, rename). Throws DataError.
void write_file_atomic(const std::string& path, const std::string& bytes);

}  // namespace siamese
