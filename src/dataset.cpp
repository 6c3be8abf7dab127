#include "siamese/dataset.hpp"
#include "siamese/image_io.hpp"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "siamese/common.hpp"
#include "siamese/half.hpp"

namespace fs = std::filesystem;

namespace siamese {

bool natural_less(const std::string& a, const std::string& b) {
    size_t i = 0, j = 0;
    while (i < a.size() && j < b.size()) {
        const bool da = std::isdigit(static_cast<unsigned char>(a[i]));
        const bool db = std::isdigit(static_cast<unsigned char>(b[j]));
        if (da && db) {
            size_t ie = i, je = j;
            while (ie < a.size() && std::isdigit(static_cast<unsigned char>(a[ie]))) ++ie;
            while (je < b.size() && std::isdigit(static_cast<unsigned char>(b[je]))) ++je;
            std::string na = a.substr(i, ie - i), nb = b.substr(j, je - j);
            na.erase(0, std::min(na.find_first_not_of('0'), na.size()));
            nb.erase(0, std::min(nb.find_first_not_of('0'), nb.size()));
            if (na.size() != nb.size()) return na.size() < nb.size();
            if (na != nb) return na < nb;
            i = ie; j = je;
        } else {
            if (a[i] != b[j]) return a[i] < b[j];
            ++i; ++j;
        }
    }
    if (a.size() - i != b.size() - j) return a.size() - i < b.size() - j;
    return a < b;
}

std::vector<float> preprocess(const PgmImage& raw, const Preprocess& pp, int* out_h, int* out_w) {
    const int f = pp.downsample;
    if (f < 1) throw UsageError("--downsample must be >= 1");
    if (f > raw.height || f > raw.width)
        throw UsageError("--downsample " + std::to_string(f) + " is larger than the image (" +
                         std::to_string(raw.width) + "x" + std::to_string(raw.height) + ")");
    const float scale = 1.0f / float(raw.maxval);
    std::vector<float> out;
    int h, w;
    if (pp.mode == ResizeMode::Stride) {  // img[::f, ::f]: ceil(H/f) rows
        h = (raw.height + f - 1) / f;
        w = (raw.width + f - 1) / f;
        out.resize(size_t(h) * w);
        for (int y = 0; y < h; ++y)
            for (int x = 0; x < w; ++x) out[size_t(y) * w + x] = raw.samples[size_t(y * f) * raw.width + x * f] * scale;
    } else {  // mean of each full f x f block
        h = raw.height / f;
        w = raw.width / f;
        out.resize(size_t(h) * w);
        for (int y = 0; y < h; ++y)
            for (int x = 0; x < w; ++x) {
                float s = 0;
                for (int dy = 0; dy < f; ++dy)
                    for (int dx = 0; dx < f; ++dx) s += raw.samples[size_t(y * f + dy) * raw.width + x * f + dx];
                out[size_t(y) * w + x] = s * scale / float(f * f);
            }
    }
    *out_h = h;
    *out_w = w;
    return out;
}

void ImageBank::add(const PgmImage& raw, int person_index, const std::string& file, const Preprocess& pp) {
    if (person.empty()) {
        raw_height = raw.height;
        raw_width = raw.width;
    } else if (raw.height != raw_height || raw.width != raw_width) {
        throw DataError(file + ": image is " + std::to_string(raw.width) + "x" + std::to_string(raw.height) +
                        " but the dataset's images are " + std::to_string(raw_width) + "x" +
                        std::to_string(raw_height));
    }
    int h, w;
    std::vector<float> img = preprocess(raw, pp, &h, &w);
    height = h;
    width = w;
    pixels.insert(pixels.end(), img.begin(), img.end());
    if (int(images_of.size()) <= person_index) images_of.resize(person_index + 1);
    images_of[person_index].push_back(int(person.size()));
    person.push_back(person_index);
    files.push_back(file);
}

ImageBank load_dataset(const std::string& dir, const Preprocess& pp, int raw_width, int raw_height, const char* size_is) {
    std::error_code ec;
    if (!fs::exists(dir, ec)) throw DataError(dir + ": data folder does not exist");
    if (!fs::is_directory(dir, ec)) throw DataError(dir + ": not a folder");
    std::vector<std::string> people;
    fs::directory_iterator it(dir, ec);
    if (ec) throw DataError(dir + ": cannot read folder (" + ec.message() + ")");
    for (; it != fs::directory_iterator(); it.increment(ec)) {
        std::error_code e_ec;
        if (it->is_directory(e_ec)) people.push_back(it->path().filename().string());
        else if (e_ec)  // a symlink loop or a dangling link: say so, go on
            std::fprintf(stderr, "warning: %s: skipped (%s)\n", it->path().c_str(), e_ec.message().c_str());
    }
    if (ec) throw DataError(dir + ": cannot read folder (" + ec.message() + ")");
    if (people.empty()) throw DataError(dir + ": no person folders (expected one sub-folder per person)");
    std::sort(people.begin(), people.end(), natural_less);

    ImageBank bank;
    int resized = 0;
    for (const auto& name : people) {
        const fs::path pdir = fs::path(dir) / name;
        std::vector<std::string> files;
        fs::directory_iterator pit(pdir, ec);
        if (ec) throw DataError(pdir.string() + ": cannot read folder (" + ec.message() + ")");
        for (; pit != fs::directory_iterator(); pit.increment(ec)) {
            std::error_code e_ec;
            const bool regular = pit->is_regular_file(e_ec);
            if (e_ec) {  // a symlink loop or a dangling link
                std::fprintf(stderr, "warning: %s: skipped (%s)\n", pit->path().c_str(), e_ec.message().c_str());
                continue;
            }
            if (!regular) continue;  // folders, FIFOs, devices
            if (!has_image_extension(pit->path().string())) {
                std::fprintf(stderr, "warning: %s: not a .pgm, .png or .jpg file, skipped\n", pit->path().c_str());
                continue;
            }
            files.push_back(pit->path().filename().string());
        }
        if (ec) throw DataError(pdir.string() + ": cannot read folder (" + ec.message() + ")");
        if (files.empty()) throw DataError(pdir.string() + ": person folder has no images (.pgm, .png, .jpg)");
        std::sort(files.begin(), files.end(), natural_less);
        const int pidx = int(bank.people.size());
        bank.people.push_back(name);
        for (const auto& f : files) {
            const std::string path = (pdir / f).string();
            PgmImage img = read_image(path);  // PGM, PNG or JPEG, by content
            // Photos of another size than the first are brought to it (centre crop to its
            // aspect, then area averaging or bilinear), and counted for one warning.
            const int want_w = raw_width > 0 ? raw_width : bank.person.empty() ? img.width : bank.raw_width;
            const int want_h = raw_height > 0 ? raw_height : bank.person.empty() ? img.height : bank.raw_height;
            if (img.width != want_w || img.height != want_h) {
                img = fit_image(img, want_w, want_h, Fit::Crop);
                ++resized;
            }
            bank.add(img, pidx, path, pp);
        }
    }
    // Asked for (a model's input, --image-size): a note; photos unlike the first: a warning.
    if (resized > 0)
        std::fprintf(stderr, "%s: %s: %d of %d images were not %dx%d (%s) and were resized to it\n",
                     raw_width > 0 ? "note" : "warning", dir.c_str(), resized,
                     bank.size(), bank.raw_width, bank.raw_height,
                     raw_width > 0 ? size_is : ("the size of the first, " + bank.files.front()).c_str());
    return bank;
}

ImageBank half_rounded(const ImageBank& bank) {
    ImageBank r = bank;
    for (float& p : r.pixels) p = half_round(p);
    return r;
}

}  // namespace siamese
