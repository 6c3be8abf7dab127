#include "model_io.hpp"

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "commands.hpp"
#include "siamese/common.hpp"
#include "siamese/files.hpp"
#include "siamese/dataset.hpp"
#include "siamese/image_io.hpp"
#include "siamese/pgm.hpp"

namespace fs = std::filesystem;

namespace siamese::cli {

LoadedModel open_model(const std::string& path, const std::string& device, int threads) {
    LoadedModel m;
    m.model = load_model(path);
    Recipe r;
    r.net = m.model.net;
    r.margin = m.model.margin;
    EngineOptions e;
    e.device = device;
    e.threads = threads;
    m.backend = make_backend(r, e);
    m.backend->set_params(m.model.params);
    m.backend->set_pixel_branch(m.model.pixel);
    m.checksum = fnv1a64_hex(reinterpret_cast<const char*>(m.model.params.data()), m.model.params.size() * sizeof(float));
    return m;
}

Fit parse_fit(const std::string& s) {
    if (s == "crop") return Fit::Crop;
    if (s == "stretch") return Fit::Stretch;
    throw UsageError("--fit must be crop or stretch, not '" + s + "'");
}

void add_fit_option(CLI::App* sub, std::string& fit) {
    sub->add_option("--fit", fit,
                    "Photos of another size than the model's input: crop (centre crop to its aspect, then resample) or stretch")
        ->capture_default_str()->check(CLI::IsMember({"crop", "stretch"}));
}

void add_threshold_option(CLI::App* sub, double& threshold) {
    sub->add_option("--threshold", threshold, "Decision threshold: a pair is the same person when its distance is below it (a finite number >= 0; default: the model's)")
        ->check(CLI::Validator(
            [](std::string& s) -> std::string {
                double v;
                return parse_finite(s, &v) && v >= 0 ? "" : "must be a finite number >= 0";
            },
            "DISTANCE"));
}

std::vector<float> embed_files(LoadedModel& m, const std::vector<std::string>& files, Fit fit) {
    const int batch = 512, E = m.backend->embed_dim();
    const int f = m.model.pre.downsample, raw_w = m.model.net.in_w * f, raw_h = m.model.net.in_h * f;
    int resized = 0;
    std::vector<float> out;
    out.reserve(files.size() * size_t(E));
    std::vector<float> images;
    for (size_t s = 0; s < files.size(); s += batch) {
        images.clear();
        const size_t e = std::min(files.size(), s + batch);
        for (size_t i = s; i < e; ++i) {
            int h, w;
            PgmImage raw = read_image(files[i]);
            std::vector<float> img = preprocess(raw, m.model.pre, &h, &w);
            if (h != m.model.net.in_h || w != m.model.net.in_w) {
                // Another size than the model's: brought to the raw size its preprocessing
                // turns into the model's input (a centre crop to that aspect, or a stretch).
                img = preprocess(fit_image(raw, raw_w, raw_h, fit), m.model.pre, &h, &w);
                ++resized;
            }
            images.insert(images.end(), img.begin(), img.end());
        }
        const std::vector<float> emb = m.backend->embed(images.data(), int(e - s));
        out.insert(out.end(), emb.begin(), emb.end());
    }
    if (resized > 0)
        std::fprintf(stderr, "note: %d of %zu photos resized to %dx%d, the model's input (%s)\n", resized, files.size(),
                     raw_w, raw_h, fit == Fit::Crop ? "centre crop to its aspect, then resampled" : "stretched");
    return out;
}

std::vector<std::string> image_files_under(const std::string& path) {
    std::error_code ec;
    if (!fs::exists(path, ec)) throw DataError(path + ": no such file or folder");
    if (!fs::is_directory(path, ec)) return {path};
    std::vector<std::string> files;
    for (fs::recursive_directory_iterator it(path, ec), end; !ec && it != end; it.increment(ec)) {
        std::error_code e_ec;
        if (it->is_regular_file(e_ec) && has_image_extension(it->path().string())) files.push_back(it->path().string());
        else if (e_ec) std::fprintf(stderr, "warning: %s: skipped (%s)\n", it->path().c_str(), e_ec.message().c_str());
    }
    if (ec) throw DataError(path + ": cannot read folder (" + ec.message() + ")");
    std::sort(files.begin(), files.end(), natural_less);
    if (files.empty()) throw DataError(path + ": no .pgm, .png or .jpg files in this folder");
    return files;
}

}  // namespace siamese::cli
