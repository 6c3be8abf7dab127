// The image bank: every image of a dataset stored once, preprocessed, in one contiguous float
// buffer; pairs refer to images by index.
#pragma once
#include <string>
#include <vector>

#include "siamese/pgm.hpp"

namespace siamese {

enum class ResizeMode { Stride, Area };

struct Preprocess {
    int downsample = 2;                  // stride (img[::2, ::2]) or area-averaging factor
    ResizeMode mode = ResizeMode::Stride;
};

struct ImageBank {
    int height = 0, width = 0;           // after preprocessing
    int raw_height = 0, raw_width = 0;   // as stored in the files
    std::vector<float> pixels;           // n_images * height * width, values in [0,1]
    std::vector<int> person;             // person index of every image
    std::vector<std::string> files;      // source of every image ("synthetic:..." for built-in)
    std::vector<std::string> people;     // person names (folder names), natural order
    std::vector<std::vector<int>> images_of;  // image indices of every person

    int size() const { return int(person.size()); }
    int image_elems() const { return height * width; }
    const float* image(int i) const { return pixels.data() + size_t(i) * image_elems(); }
    // Appends one raw image for `person_index`, preprocessed. All images must share raw size.
    void add(const PgmImage& raw, int person_index, const std::string& file, const Preprocess& pp);
};

// Preprocess one raw image into [0,1] floats (out has (h/f) x (w/f) or ceil for stride).
std::vector<float> preprocess(const PgmImage& raw, const Preprocess& pp, int* out_h, int* out_w);

// Natural ordering of names: "s2" < "s10".
bool natural_less(const std::string& a, const std::string& b);

// Loads DIR/<person>/<image> (.pgm, .png, .jpg/.jpeg; read by content, image_io.hpp). Throws
// DataError for missing or empty folders, no people, a bad image (naming it); warns (stderr)
// about skipped files. Images of another size than raw_width x raw_height (default: the first
// image's) are fit to it (centre crop, then resampled), with one warning saying how many and,
// when a size is given, what it is (size_is).
ImageBank load_dataset(const std::string& dir, const Preprocess& pp, int raw_width = 0, int raw_height = 0,
                       const char* size_is = "the model's input");

// The bank with every pixel rounded to the nearest FP16 value (siamese/half.hpp): what the
// engines train on with --half-bank (EngineOptions::half_bank).
ImageBank half_rounded(const ImageBank& bank);


}  // namespace siamese
