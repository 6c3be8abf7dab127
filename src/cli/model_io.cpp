#include "model_io.hpp"

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "commands.hpp"
#include "siamese/common.hpp"
#include "siamese/files.hpp"
#include "siamese/dataset.hpp"
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
    m.checksum = fnv1a64_hex(reinterpret_cast<const char*>(m.model.params.data()), m.model.params.size() * sizeof(float));
    return m;
}

std::vector<float> embed_files(LoadedModel& m, const std::vector<std::string>& files) {
    const int batch = 512, E = m.backend->embed_dim();
    std::vector<float> out;
    out.reserve(files.size() * size_t(E));
    std::vector<float> images;
    for (size_t s = 0; s < files.size(); s += batch) {
        images.clear();
        const size_t e = std::min(files.size(), s + batch);
        for (size_t i = s; i < e; ++i) {
            int h, w;
            const std::vector<float> img = preprocess(read_pgm(files[i]), m.model.pre, &h, &w);
            if (h != m.model.net.in_h || w != m.model.net.in_w)
                throw DataError(files[i] + ": image preprocesses to " + std::to_string(w) + "x" + std::to_string(h) +
                                " but the model takes " + std::to_string(m.model.net.in_w) + "x" +
                                std::to_string(m.model.net.in_h));
            images.insert(images.end(), img.begin(), img.end());
        }
        const std::vector<float> emb = m.backend->embed(images.data(), int(e - s));
        out.insert(out.end(), emb.begin(), emb.end());
    }
    return out;
}

std::vector<std::string> pgm_files_under(const std::string& path) {
    std::error_code ec;
    if (!fs::exists(path, ec)) throw DataError(path + ": no such file or folder");
    if (!fs::is_directory(path, ec)) return {path};
    std::vector<std::string> files;
    for (fs::recursive_directory_iterator it(path, ec), end; !ec && it != end; it.increment(ec)) {
        std::error_code e_ec;
        if (it->is_regular_file(e_ec) && has_pgm_extension(it->path().string())) files.push_back(it->path().string());
        else if (e_ec) std::fprintf(stderr, "warning: %s: skipped (%s)\n", it->path().c_str(), e_ec.message().c_str());
    }
    if (ec) throw DataError(path + ": cannot read folder (" + ec.message() + ")");
    std::sort(files.begin(), files.end(), natural_less);
    if (files.empty()) throw DataError(path + ": no .pgm files in this folder");
    return files;
}

}  // namespace siamese::cli
