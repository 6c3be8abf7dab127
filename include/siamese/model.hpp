// Model files (safetensors, see safetensors.hpp): numpy/PyTorch users load them as they are
// (safetensors.torch.load_file), with PyTorch's tensor names.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "siamese/dataset.hpp"
#include "siamese/network.hpp"
#include "siamese/pixel_branch.hpp"

namespace siamese {

struct Model {
    NetConfig net;
    Preprocess pre;
    float threshold = 0.5f;  // genuine when distance < threshold
    float margin = 1.0f;
    std::vector<float> params;                  // flat, in make_layout(net) order
    PixelBranch pixel;                          // saved only when set (tensors pixel.mean, pixel.basis)
    std::map<std::string, std::string> extra;   // further metadata (protocol, seed, ...)
};

// Writes atomically: a temporary file, fsync, rename.
void save_model(const std::string& path, const Model& m);
// Throws DataError naming the file: truncated, bad JSON, wrong checksum, missing or mis-sized tensors.
Model load_model(const std::string& path);
Model parse_model(const std::string& bytes, const std::string& name);  // same, from memory

}  // namespace siamese
