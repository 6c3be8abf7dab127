// What enroll, identify, verify and eval share: a loaded model with its backend, and photos
// embedded in batches with the model's own preprocessing.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "siamese/backend.hpp"
#include "siamese/model.hpp"

namespace siamese::cli {

struct LoadedModel {
    Model model;
    std::unique_ptr<Backend> backend;
    std::string checksum;  // of the weights: a gallery remembers which model made it
};

LoadedModel open_model(const std::string& path, const std::string& device, int threads);

// Embeddings (n, E) of PGM files, preprocessed as the model was trained; batches of 512.
std::vector<float> embed_files(LoadedModel& m, const std::vector<std::string>& files);

// A PGM file as itself; a folder as every .pgm below it (natural order). Throws DataError.
std::vector<std::string> pgm_files_under(const std::string& path);

}  // namespace siamese::cli
