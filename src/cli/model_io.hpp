// What enroll, identify, verify and eval share: a loaded model with its backend, and photos
// embedded in batches with the model's own preprocessing.
#pragma once
#include <CLI/CLI.hpp>
#include <memory>
#include <string>
#include <vector>

#include "siamese/backend.hpp"
#include "siamese/image_io.hpp"
#include "siamese/model.hpp"

namespace siamese::cli {

struct LoadedModel {
    Model model;
    std::unique_ptr<Backend> backend;
    std::string checksum;  // of the weights: a gallery remembers which model made it
};

LoadedModel open_model(const std::string& path, const std::string& device, int threads);

// Embeddings (n, E) of image files (PGM, PNG, JPEG), preprocessed as the model was trained;
// photos of another size are first fit to the model's input (one note on stderr says how
// many); batches of 512.
std::vector<float> embed_files(LoadedModel& m, const std::vector<std::string>& files, Fit fit = Fit::Crop);

// A file as itself; a folder as every .pgm/.png/.jpg below it (natural order). Throws DataError.
std::vector<std::string> image_files_under(const std::string& path);

// --fit crop|stretch, shared by verify, enroll and identify.
Fit parse_fit(const std::string& s);
void add_fit_option(CLI::App* sub, std::string& fit);
// --threshold T, shared by verify and identify: a finite distance >= 0 (0 accepts nothing);
// threshold keeps its negative default (the model's own) when not given.
void add_threshold_option(CLI::App* sub, double& threshold);

}  // namespace siamese::cli
